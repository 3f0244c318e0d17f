"""The conversion table and everything decided per column: plans, rules, reflected schemas."""

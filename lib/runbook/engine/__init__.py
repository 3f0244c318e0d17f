"""The machinery that moves and checks rows: preflight, loader, constraints, checksums, ledgers."""

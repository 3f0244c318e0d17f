"""The column plan: which source column lands in which target column by which conversion, and
what every step that moves or checks rows shares about the tables (load order, the rows that
are left out, the integer key a table is cut by). Written by step 02 into `schema.json`, read by
the steps after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runbook.columns.conversions import conversion_for
from runbook.columns.types import Conversion, TargetType
from runbook.core.source import Table, quote_ident


@dataclass(frozen=True)
class ColumnPlan:
    """One source column, the target column it lands in, and the conversion between them."""

    table: str
    column: str
    source_type: str
    target_type: str
    nullable: bool
    conversion: str
    options: tuple[str, ...] = ()  # explicit extra rules the operator switched on (`rules`)
    target_table: str = ""  # PostgreSQL names, where they differ from SQLite's (reflect mode)
    target_column: str = ""

    @property
    def pg_table(self) -> str:
        return self.target_table or self.table

    @property
    def pg_column(self) -> str:
        return self.target_column or self.column

    @property
    def rule(self) -> Conversion:
        """The Conversion object (rendering, misfit checks, canonical form)."""
        where = f"{self.table}.{self.column}"
        base = self.conversion.split("+")[0]
        return conversion_for(self.target_type, tuple(self.options), where=where, name=base)

    @property
    def kind(self) -> TargetType:
        """The parsed target type."""
        return TargetType(self.target_type)

    @property
    def plain(self) -> bool:
        """True when the column takes its target type's own conversion, with no explicit rule
        (so the conversion's SQL forms, binary wire and SQL canonical text, apply)."""
        return not self.options and self.rule is conversion_for(self.target_type)


def plans_from(schema: dict[str, Any]) -> list[ColumnPlan]:
    """The column plans stored in `schema.json`."""
    fields = ColumnPlan.__dataclass_fields__
    plans = []
    for row in schema["columns"]:
        values = {k: v for k, v in row.items() if k in fields}
        values["options"] = tuple(values.get("options", ()))
        plans.append(ColumnPlan(**values))
    return plans


def by_table(plans: list[ColumnPlan]) -> dict[str, list[ColumnPlan]]:
    """Plans grouped per table, in source order."""
    grouped: dict[str, list[ColumnPlan]] = {}
    for plan in plans:
        grouped.setdefault(plan.table, []).append(plan)
    return grouped


def load_order(tables: list[Table]) -> list[str]:
    """Tables with parents before children (cycles, like drivers ↔ vehicles, broken in source
    order); foreign keys are re-added after all data, so the order only keeps the log readable
    (and puts parents first where rows go in with their keys checked: re-insert, sync)."""
    remaining = {
        t.name: {fk.parent for fk in t.foreign_keys if fk.parent != t.name} for t in tables
    }
    order: list[str] = []
    while remaining:
        ready = [name for name, parents in remaining.items() if not parents - set(order)]
        pick = ready[0] if ready else next(iter(remaining))
        order.append(pick)
        del remaining[pick]
    return order


INTEGER_TYPES = ("smallint", "integer", "bigint")


def integer_key(table: Table, plans: list[ColumnPlan] | None = None) -> str | None:
    """The table's single integer primary-key column, by which it is cut into key ranges and
    checksum segments; None for a composite, text or missing key, or one whose target column
    is not an integer (reflect mode keeps a key holding text as text)."""
    if len(table.primary_key) != 1:
        return None
    column = next(c for c in table.columns if c.name == table.primary_key[0])
    plan = next((p for p in plans or () if p.column == column.name), None)
    if plan is not None and plan.kind.base not in INTEGER_TYPES:
        return None
    return column.name if "INT" in column.declared.upper() else None


@dataclass(frozen=True)
class RejectedRows:
    """The rows of one table that are not loaded (the reject ledger's): their identities, and
    the SQL naming a row's identity (its rowid, or its primary key's text in a WITHOUT ROWID
    table: `Table.row_identity`)."""

    identity: str
    ids: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.ids)


def rejected_rows(preflight: dict[str, Any]) -> dict[str, RejectedRows]:
    """The rows that are not loaded, per table."""
    identities = preflight.get("identity", {})
    return {
        table: RejectedRows(identities.get(table, "rowid"), tuple(r[0] for r in rows))
        for table, rows in preflight.get("rejected", {}).items()
    }


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def row_filter(table: str, rejected: dict[str, RejectedRows]) -> str:
    """The SQL predicate choosing the rows of `table` that are loaded (and verified): every row
    but those the reject ledger holds. The one place that decides which rows move."""
    rows = rejected.get(table)
    if not rows:
        return ""
    return f"{rows.identity} NOT IN ({', '.join(_literal(i) for i in rows.ids)})"


def copy_line_sql(table: str, plans: list[ColumnPlan], where: str = "") -> str:
    """A SELECT that makes SQLite render each row as one line of COPY text format (by each
    column's conversion, explicit rules included)."""
    fields = []
    for plan in plans:
        col = quote_ident(plan.column)
        render = plan.rule.render(col, plan.kind)
        fields.append(f"CASE WHEN {col} IS NULL THEN '\\N' ELSE {render} END")
    return f"SELECT {' || char(9) || '.join(fields)} || char(10) FROM {quote_ident(table)}" + (
        f" WHERE {where}" if where else ""
    )

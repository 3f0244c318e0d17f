"""What a SQLite column becomes in PostgreSQL in reflect mode: its name (lower case unless two
would collide, never longer than 63 bytes), its type (the declared type, unless the data holds
values that type cannot: SQLite's dynamic typing) and its default (SQLite's time functions
translated, anything else reported)."""

from __future__ import annotations

import hashlib
import re

MAX_IDENTIFIER = 63  # bytes, PostgreSQL's NAMEDATALEN - 1


def short_name(name: str) -> str:
    """The name cut to 63 bytes with a hash of the whole name, when longer."""
    raw = name.encode()
    if len(raw) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:8]
    cut = raw[: MAX_IDENTIFIER - 9].decode("utf-8", "ignore")
    return f"{cut}_{digest}"


def target_names(names: list[str]) -> dict[str, str]:
    """PostgreSQL names for a set of SQLite names in one namespace: lower case where no two
    collide, as written otherwise, and never longer than 63 bytes."""
    lowered = [n.lower() for n in names]
    mapped = {
        name: short_name(low if lowered.count(low) == 1 else name)
        for name, low in zip(names, lowered, strict=True)
    }
    seen: dict[str, str] = {}
    for name, new in mapped.items():
        if new in seen:  # only possible through truncation; hash the whole name to separate
            mapped[name] = short_name(new + "_" + hashlib.sha1(name.encode()).hexdigest())
        seen[mapped[name]] = name
    return mapped


# --- types -------------------------------------------------------------------------------------

_DECLARED = [  # (pattern on the upper-cased declared type, PostgreSQL type, conversion name)
    (r"^ANY$", "", None),  # a STRICT table's column of any type: the data decides
    (r"^(BOOL|BOOLEAN)\b", "boolean", None),
    (r"^YEAR\b", "integer", None),  # MySQL's YEAR: a year number
    (r"^LONG$", "bigint", None),  # Access/Jet's Long Integer
    (r"^(BLOB|LONGBLOB|MEDIUMBLOB|TINYBLOB|BINARY|VARBINARY|BYTEA)\b", "bytea", None),
    (r"^(DATETIME|TIMESTAMP)\b", "timestamp without time zone", None),
    (r"^DATE$", "date", None),
    (r"^TIME$", "time without time zone", None),
    (r"^JSONB?\b", "jsonb", None),
    (r"^(NUMERIC|DECIMAL)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", "numeric({2},{3})", None),
    (r"^(NUMERIC|DECIMAL|NUMBER)\b", "numeric", None),
    (
        r"^(N?VARCHAR|NCHAR|CHAR|CHARACTER|VARYING CHARACTER|NATIVE CHARACTER)\s*\(\s*(\d+)\s*\)",
        "character varying({2})",
        None,
    ),
]


def declared_type(declared: str) -> str:
    """The PostgreSQL type a SQLite declared type maps to (SQLite's affinity rules otherwise)."""
    upper = declared.upper().strip()
    for pattern, pg_type, _ in _DECLARED:
        match = re.match(pattern, upper)
        if match:
            return pg_type.format(*([None] + list(match.groups())))
    if "INT" in upper:
        return "bigint"  # SQLite integers are 64-bit
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if any(word in upper for word in ("REAL", "FLOA", "DOUB")):
        return "double precision"
    if upper == "":
        return ""  # no type: the data decides
    if "BLOB" in upper:
        return "bytea"
    return "numeric"


def data_type(counts: dict[str, int]) -> str:
    """The narrowest PostgreSQL type that holds every value of these SQLite storage classes."""
    kinds = {k for k, n in counts.items() if n and k != "null"}
    if not kinds or kinds == {"text"}:
        return "text"
    if kinds == {"integer"}:
        return "bigint"
    if kinds <= {"integer", "real"}:
        return "double precision" if "integer" not in kinds else "numeric"
    if kinds == {"blob"}:
        return "bytea"
    if "blob" in kinds:
        return "bytea"  # text and blobs mixed: the text values are misfits, shown in 02
    return "text"  # text mixed with numbers: numbers are kept as their exact text


_HOLDS = {  # storage classes each declared mapping holds without a misfit of kind wrong_type
    "bigint": {"integer"},
    "integer": {"integer"},
    "double precision": {"integer", "real"},
    "numeric": {"integer", "real"},
    "text": {"text"},
    "bytea": {"blob"},
}


def choose_type(declared: str, counts: dict[str, int]) -> tuple[str, str, str | None]:
    """(PostgreSQL type, why, conversion name when not the type's default) for one column."""
    by_declared = declared_type(declared)
    if not by_declared:
        chosen = data_type(counts)
        return chosen, f"no declared type; the data holds {_kinds(counts)}", _text_from_any(chosen)
    base = re.sub(r"\(.*\)", "", by_declared)
    holds = _HOLDS.get(base)
    present = {k for k, n in counts.items() if n and k != "null"}
    # a value of another class is a misfit the preflight names; blobs only where the declared
    # type is not bytea (text beside blobs in a BLOB column chooses text, else bytea)
    if holds is not None and not present <= holds and ("blob" not in present or base == "bytea"):
        chosen = data_type(counts)
        if chosen != by_declared:
            return (
                chosen,
                f"declared {declared} but the data holds {_kinds(counts)}",
                _text_from_any(chosen),
            )
    return by_declared, f"declared {declared}", None


def _text_from_any(pg_type: str) -> str | None:
    return "text-from-any" if pg_type == "text" else None


def _kinds(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()) if n and k != "null") or (
        "no values"
    )


# --- one type per foreign-key group ------------------------------------------------------------

Member = tuple[str, str]  # (table, column)
_FAMILIES = {"smallint": "integer", "integer": "integer", "bigint": "integer"}
_FAMILIES |= {"character varying": "text", "character": "text", "text": "text"}


def _family(pg_type: str) -> str:
    """Types PostgreSQL compares with each other in a foreign key without a cast."""
    base = re.sub(r"\(.*\)", "", pg_type).strip()
    return _FAMILIES.get(base, base)


def key_groups(edges: list[tuple[Member, Member]]) -> list[list[Member]]:
    """Columns joined by foreign keys (child, parent), transitively: each group in the order
    its columns were first named."""
    parent: dict[Member, Member] = {}

    def root(member: Member) -> Member:
        while parent.setdefault(member, member) != member:
            member = parent[member]
        return member

    for child, referenced in edges:
        parent[root(child)] = root(referenced)
    groups: dict[Member, list[Member]] = {}
    for member in parent:
        groups.setdefault(root(member), []).append(member)
    return [group for group in groups.values() if len(group) > 1]


def choose_group_types(
    members: dict[Member, tuple[str, dict[str, int]]], children: set[Member]
) -> dict[Member, tuple[str, str, str | None]]:
    """(type, why, conversion) of each column of one foreign-key group ({column: (declared
    type, storage classes)}): each column's own, unless that puts two columns in types a
    foreign key cannot join; then the referenced column's declared type judged by all the
    group's data decides for every column outside its family, so equal keys stay equal (an
    integer among text codes becomes the same decimal text in every column)."""
    own = {m: choose_type(declared, counts) for m, (declared, counts) in members.items()}
    if len({_family(t) for t, _, _ in own.values()}) == 1:
        return own
    combined: dict[str, int] = {}
    for _, counts in members.values():
        for kind, n in counts.items():
            combined[kind] = combined.get(kind, 0) + n
    root = next((m for m in members if m not in children), next(iter(members)))
    chosen = choose_type(members[root][0], combined)[0]
    names = ", ".join(f"{t}.{c}" for t, c in members)
    group = f"one type for the foreign-key group {names} (its data holds {_kinds(combined)})"
    decided = {}
    for member, (pg_type, why, conversion) in own.items():
        if _family(pg_type) != _family(chosen):
            mixed = {k for k, n in members[member][1].items() if n} - {"null", "text"}
            pg_type, conversion = chosen, "text-from-any" if chosen == "text" and mixed else None
        decided[member] = (pg_type, f"{why}; {group}", conversion)
    return decided


# --- defaults ----------------------------------------------------------------------------------

_NOW_UTC = "(now() AT TIME ZONE 'UTC')"
_DEFAULTS = {
    "current_timestamp": _NOW_UTC,
    "datetime('now')": _NOW_UTC,
    "(datetime('now'))": _NOW_UTC,
    "datetime('now','localtime')": "LOCALTIMESTAMP",
    "(datetime('now','localtime'))": "LOCALTIMESTAMP",
    "(strftime('%y-%m-%d %h:%m:%f','now'))": _NOW_UTC,
    "strftime('%y-%m-%d %h:%m:%f','now')": _NOW_UTC,
    "current_date": f"{_NOW_UTC}::date",
    "date('now')": f"{_NOW_UTC}::date",
    "current_time": f"{_NOW_UTC}::time",
}


def translate_default(default: str | None, pg_type: str) -> tuple[str | None, str | None]:
    """(PostgreSQL default, note) for a SQLite column default; the note says what was done."""
    if default is None:
        return None, None
    text = default.strip()
    key = re.sub(r"\s+", "", text).lower()
    if key in _DEFAULTS:
        return _DEFAULTS[key], f"SQLite {text} → {_DEFAULTS[key]}"
    if key == "null":
        return None, None
    if re.fullmatch(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?", text):
        if pg_type == "boolean":
            return ("true" if float(text) else "false"), None
        return text, None
    if re.fullmatch(r"'([^']|'')*'", text):
        return text, None
    if key in ("true", "false") and pg_type == "boolean":
        return key, None
    return None, f"default {text} not translated (no PostgreSQL equivalent known); left out"

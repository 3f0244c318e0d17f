"""SQLite SQL as text: what PRAGMAs do not report of a CREATE TABLE (CHECK constraints, COLLATE,
DEFERRABLE foreign keys), and SQLite expressions rewritten for PostgreSQL (identifiers renamed
to their PostgreSQL names, a few functions that differ only in name). A tokenizer, not a parser:
what it cannot rewrite is left for PostgreSQL to refuse, and reflect mode then lists it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runbook.core.source import quote_ident

Token = tuple[str, str]  # (kind, text): space, string, ident (quoted), word, number, op

_TOKEN = re.compile(
    r"""(?P<space>\s+|--[^\n]*|/\*.*?(?:\*/|\Z))
      |(?P<string>'(?:[^']|'')*')
      |(?P<blob>[xX]'[0-9a-fA-F]*')
      |(?P<ident>"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`)
      |(?P<word>[^\W\d]\w*)
      |(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
      |(?P<op>\|\||==|!=|<>|<=|>=|<<|>>|\S)""",
    re.S | re.X,
)


def tokens(sql: str) -> list[Token]:
    """The tokens of SQLite SQL, whitespace and comments included (joined, they give it back)."""
    return [(m.lastgroup or "op", m.group()) for m in _TOKEN.finditer(sql)]


def text(toks: list[Token]) -> str:
    return "".join(t for _, t in toks).strip()


def name_of(token: Token) -> str:
    """An identifier token's name, unquoted."""
    kind, raw = token
    if kind != "ident":
        return raw
    if raw[0] == "[":
        return raw[1:-1]
    return raw[1:-1].replace(raw[0] * 2, raw[0])


def _word(token: Token, *words: str) -> bool:
    return token[0] == "word" and token[1].upper() in words


def closing(toks: list[Token], start: int) -> int:
    """The index of the parenthesis closing the one at `start`."""
    depth = 0
    for i in range(start, len(toks)):
        if toks[i] == ("op", "("):
            depth += 1
        elif toks[i] == ("op", ")"):
            depth -= 1
            if depth == 0:
                return i
    return len(toks) - 1


def split_top(toks: list[Token], separator: str = ",") -> list[list[Token]]:
    """The tokens cut at each `separator` outside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in toks:
        if token == ("op", "("):
            depth += 1
        elif token == ("op", ")"):
            depth -= 1
        if depth == 0 and token == ("op", separator):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def split_text(sql: str, separator: str = ",") -> list[str]:
    """The SQL's parts between top-level separators, as text."""
    return [text(part) for part in split_top(tokens(sql), separator)]


# --- what PRAGMAs do not report of a CREATE TABLE ----------------------------------------------


@dataclass
class Clauses:
    """The clauses of one CREATE TABLE that SQLite's PRAGMAs do not report."""

    collations: dict[str, str] = field(default_factory=dict)  # column → collation name
    # (constraint name or "", column or "", SQLite expression)
    checks: list[tuple[str, str, str]] = field(default_factory=list)
    # (child columns, parent table) → (deferrable, initially deferred), and the name given
    timing: dict[tuple[tuple[str, ...], str], tuple[bool, bool]] = field(default_factory=dict)
    fk_names: dict[tuple[tuple[str, ...], str], str] = field(default_factory=dict)
    generated: dict[str, str] = field(default_factory=dict)  # column → SQLite expression


def _deferral(toks: list[Token]) -> tuple[bool, bool]:
    words = [t[1].upper() for t in toks if t[0] == "word"]
    for i, word in enumerate(words):
        if word == "DEFERRABLE":
            if i and words[i - 1] == "NOT":
                return False, False
            return True, words[i + 1 : i + 3] == ["INITIALLY", "DEFERRED"]
    return False, False


def _next(toks: list[Token], i: int) -> int:
    """The index of the first token after `i` that is not whitespace (len(toks) if none)."""
    i += 1
    while i < len(toks) and toks[i][0] == "space":
        i += 1
    return i


def _at(toks: list[Token], i: int) -> Token:
    return toks[i] if i < len(toks) else ("space", "")


def _references(toks: list[Token], i: int) -> tuple[str, int]:
    """The parent table of a REFERENCES clause at `i`, and where the clause's options start."""
    at = _next(toks, i)
    parent = name_of(_at(toks, at))
    after = _next(toks, at)
    if _at(toks, after) == ("op", "("):
        after = closing(toks, after) + 1
    return parent, after


def _column_clauses(part: list[Token], found: Clauses) -> None:
    first = _next(part, -1)
    column = name_of(part[first])
    named = ""
    i = _next(part, first)
    while i < len(part):
        token, following = part[i], _next(part, i)
        if _word(token, "CONSTRAINT") and following < len(part):
            named, i = name_of(part[following]), _next(part, following)
            continue
        if _word(token, "COLLATE") and following < len(part):
            found.collations[column] = name_of(part[following])
        elif _word(token, "CHECK") and _at(part, following) == ("op", "("):
            end = closing(part, following)
            found.checks.append((named, column, text(part[following + 1 : end])))
            named, following = "", _next(part, end)
        elif _word(token, "AS") and _at(part, following) == ("op", "("):
            end = closing(part, following)
            found.generated[column] = text(part[following + 1 : end])
            following = _next(part, end)
        elif token == ("op", "("):  # a type's size, a DEFAULT expression: nothing to read
            following = _next(part, closing(part, i))
        elif _word(token, "REFERENCES"):
            parent, after = _references(part, i)
            stop = next((j for j in range(after, len(part)) if _word(part[j], "CONSTRAINT")), None)
            found.timing[((column,), parent.lower())] = _deferral(part[after:stop])
            if named:
                found.fk_names[((column,), parent.lower())] = named
            named = ""
        i = following


def _table_constraint(part: list[Token], found: Clauses) -> None:
    named = ""
    i = _next(part, -1)
    if _word(part[i], "CONSTRAINT"):
        named, i = name_of(_at(part, _next(part, i))), _next(part, _next(part, i))
    opening = _next(part, _next(part, i)) if _word(_at(part, i), "FOREIGN") else _next(part, i)
    if _word(_at(part, i), "CHECK") and _at(part, opening) == ("op", "("):
        found.checks.append((named, "", text(part[opening + 1 : closing(part, opening)])))
    elif _word(_at(part, i), "FOREIGN") and _at(part, opening) == ("op", "("):
        end = closing(part, opening)
        columns = tuple(name_of(t) for t in part[opening + 1 : end] if t[0] in ("ident", "word"))
        at = next((j for j in range(end, len(part)) if _word(part[j], "REFERENCES")), None)
        if at is not None:
            parent, after = _references(part, at)
            found.timing[(columns, parent.lower())] = _deferral(part[after:])
            if named:
                found.fk_names[(columns, parent.lower())] = named


def table_clauses(sql: str) -> Clauses:
    """COLLATE per column, CHECK constraints and foreign-key deferral of a CREATE TABLE."""
    toks = tokens(sql or "")
    found = Clauses()
    start = next((i for i, t in enumerate(toks) if t == ("op", "(")), None)
    if start is None:
        return found
    for part in split_top(toks[start + 1 : closing(toks, start)]):
        first = _at(part, _next(part, -1))
        if first[0] == "space":
            continue
        if _word(first, "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"):
            _table_constraint(part, found)
        else:
            _column_clauses(part, found)
    return found


# --- SQLite expressions rewritten for PostgreSQL -----------------------------------------------


def renamer(pairs: list[tuple[str, str]]) -> Callable[[str], str | None]:
    """Look-up of PostgreSQL names by SQLite name: exact first, then case-insensitively (SQLite's
    identifiers ignore ASCII case), each only where it is unambiguous."""
    exact: dict[str, set[str]] = {}
    folded: dict[str, set[str]] = {}
    for name, target in pairs:
        exact.setdefault(name, set()).add(target)
        folded.setdefault(name.lower(), set()).add(target)

    def rename(name: str) -> str | None:
        for found in (exact.get(name, set()), folded.get(name.lower(), set())):
            if len(found) == 1:
                return next(iter(found))
        return None

    return rename


_FUNCTIONS = {"IFNULL": "coalesce", "INSTR": "strpos"}  # same arguments, another name


def _group_concat(arguments: list[Token], rename: Callable[[str], str | None]) -> str:
    """string_agg for SQLite's group_concat(x [, separator]) (its default separator ',')."""
    parts = split_top(arguments)
    value = parts[0]
    first = _next(value, -1)
    distinct = "DISTINCT " if _word(_at(value, first), "DISTINCT") else ""
    value = value[first + 1 :] if distinct else value
    separator = postgres(text(parts[1]), rename) if len(parts) > 1 else "','"
    return f"string_agg({distinct}({postgres(text(value), rename)})::text, {separator})"


def postgres(sql: str, rename: Callable[[str], str | None]) -> str:
    """SQLite SQL rewritten for PostgreSQL: quoted identifiers in PostgreSQL's quotes and
    names, unquoted ones renamed where their PostgreSQL name differs from the lower case,
    == as =, and ifnull, instr, group_concat by their PostgreSQL names."""
    toks = tokens(sql)
    out: list[str] = []
    i = 0
    while i < len(toks):
        kind, raw = toks[i]
        following = next((t for t in toks[i + 1 :] if t[0] != "space"), None)
        if kind == "word" and following == ("op", "(") and raw.upper() == "GROUP_CONCAT":
            start = toks.index(("op", "("), i)
            end = closing(toks, start)
            out.append(_group_concat(toks[start + 1 : end], rename))
            i = end + 1
            continue
        if kind == "word" and following == ("op", "(") and raw.upper() in _FUNCTIONS:
            out.append(_FUNCTIONS[raw.upper()])
        elif kind == "ident":
            out.append(quote_ident(rename(name_of(toks[i])) or name_of(toks[i])))
        elif kind == "word" and (target := rename(raw)) and target != raw.lower():
            out.append(quote_ident(target))
        elif (kind, raw) == ("op", "=="):
            out.append("=")
        else:
            out.append(raw)
        i += 1
    return "".join(out).strip()


def body_after(sql: str, keyword: str) -> tuple[str, str]:
    """(what comes before the first top-level `keyword`, what comes after it)."""
    toks = tokens(sql)
    depth = 0
    for i, token in enumerate(toks):
        depth += token == ("op", "(")
        depth -= token == ("op", ")")
        if depth == 0 and _word(token, keyword):
            return text(toks[:i]), text(toks[i + 1 :])
    return sql, ""

"""The run's parameters, declared once: name, type, default, allowed values, help, the steps
whose notebooks take it, and the `runbook` option that sets it. The CLI options
(`add_options`), the notebooks' parameters cells (`cell`, written by `make notebooks`) and the
README's table (`markdown_table`, checked by a test) are all made from this declaration; a
name no notebook declares, or a value outside its allowed set, is refused before any step
starts (`RunParameters.checked`)."""

from __future__ import annotations

import argparse
import difflib
import json
import textwrap
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from runbook.core.errors import RunbookError
from runbook.core.run import STEPS

ALL = STEPS


def _declare(
    default: Any,
    help: str,
    steps: tuple[str, ...] = ALL,
    *,
    kind: type = str,
    choices: tuple[Any, ...] = (),
    flag: str = "",
    metavar: str | None = None,
) -> Any:
    """One parameter: its default and what the CLI, the notebooks and the README say of it."""
    meta = dict(help=help, steps=steps, kind=kind, choices=choices, flag=flag, metavar=metavar)
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunParameters:
    """The parameters of one run, as the notebooks receive them (each takes its own)."""

    run_dir: str = _declare(
        "",
        "run folder; empty: RUNBOOK_RUN_DIR, else the newest unfinished run (01 starts a new one)",
    )
    source_db: str = _declare(
        "", "the SQLite file (01 copies it); empty: RUNBOOK_SOURCE, else the demo sample"
    )
    database_url_env: str = _declare(
        "DATABASE_URL",
        "name of the environment variable (or .env entry) holding the target URL; the URL is "
        "never a parameter, since parameters are written into the executed notebooks",
        flag="--database-url-env",
    )
    target_url: str = _declare(
        "", "a password-free target URL instead (the password then comes from PGPASSWORD)"
    )
    on_bad_rows: str = _declare(
        "stop",
        'rows that do not fit: "stop" before anything is written, or "reject" them (and the '
        "rows that depend on them) into rejects.jsonl and load every other row",
        ("schema", "transfer", "cutover"),
        choices=("stop", "reject"),
        flag="--on-bad-rows",
    )
    schema_mode: str = _declare(
        "alembic",
        '"alembic": the application\'s migrations; "reflect": a schema built from the SQLite '
        "file itself (any SQLite database)",
        ("schema",),
        choices=("alembic", "reflect"),
        flag="--schema",
    )
    column_rules: dict = _declare(
        {},
        'explicit conversion rules per column, e.g. {"orders.requested_pickup_at": '
        '["epoch-seconds"]} (empty-as-null, datetime-offset, epoch-seconds, '
        "epoch-milliseconds, date-as-midnight, cp949)",
        ("schema",),
        kind=dict,
        flag="--rule",
        metavar="TABLE.COLUMN=RULE[,RULE]",
    )
    replace_target: bool = _declare(
        False,
        "01 saves what the target holds into the run folder (pg_dump) and 02 drops only the "
        "tables this migration creates; off: a target with data is refused",
        ("backup", "schema"),
        kind=bool,
        flag="--replace-target",
    )
    workers: int = _declare(
        0,
        "processes and connections that load and checksum in parallel; 0: one per CPU (2 to 8)",
        ("transfer", "verify", "cutover"),
        kind=int,
        flag="--workers",
    )
    bulk_run_dir: str = _declare(
        "",
        "05: the run folder of the bulk migration this cutover finishes (runbook cutover "
        "--run-dir); its target and its syncs' snapshots",
        ("cutover",),
    )
    stopped_at: str = _declare(
        "",
        "05: when the application was declared stopped (ISO time, UTC), where the freeze window "
        "begins; empty: when the notebook starts",
        ("cutover",),
    )
    write_wait_seconds: float = _declare(
        10.0,
        "05: how long to wait for a write transaction on the source to end (the application "
        "stopping) before the cutover refuses",
        ("cutover",),
        kind=float,
        flag="--write-wait-seconds",
    )
    quiet_seconds: float = _declare(
        1.0,
        "05: how long nothing may be committed to the source before the cutover begins",
        ("cutover",),
        kind=float,
        flag="--quiet-seconds",
    )

    @classmethod
    def checked(cls, values: dict[str, Any]) -> RunParameters:
        """Parameters from a mapping, refusing an unknown name or a value of the wrong type or
        outside its allowed set, in one sentence."""
        known = {f.name: f for f in fields(cls)}
        for name, value in values.items():
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(known)}"
                raise RunbookError(f"unknown parameter {name!r}", fix=hint)
            _check_value(known[name], value)
        return cls(**values)

    def for_step(self, step: str) -> dict[str, Any]:
        """The parameters the notebook of `step` declares, with this run's values."""
        return {f.name: getattr(self, f.name) for f in fields(self) if step in f.metadata["steps"]}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_KINDS = {
    str: "text",
    int: "a whole number",
    float: "a number",
    bool: "True or False",
    dict: "a mapping",
}


def _check_value(declared: Any, value: Any) -> None:
    meta = declared.metadata
    kind = meta["kind"]
    accepted = (int, float) if kind is float else kind
    if not isinstance(value, accepted) or (kind in (int, float) and isinstance(value, bool)):
        raise RunbookError(
            f"parameter {declared.name} must be {_KINDS[kind]}, not {value!r}",
            fix=f"give {declared.name} {_KINDS[kind]}",
        )
    if meta["choices"] and value not in meta["choices"]:
        allowed = ", ".join(map(repr, meta["choices"]))
        raise RunbookError(
            f"parameter {declared.name}={value!r} is not one of {allowed}",
            fix=f"choose {declared.name} from {allowed}",
        )


def declared() -> list[Any]:
    """The declared parameters (dataclass fields with their metadata), in declaration order."""
    return list(fields(RunParameters))


# --- what the declaration produces: CLI options, notebook cells, the README table --------------


def add_options(
    parser: argparse.ArgumentParser, steps: tuple[str, ...] = (), names: tuple[str, ...] = ()
) -> None:
    """A `runbook` option for every parameter that has one and that one of `steps` takes (or
    is one of `names`)."""
    for declared_field in declared():
        meta = declared_field.metadata
        wanted = declared_field.name in names or set(meta["steps"]) & set(steps)
        if not meta["flag"] or not wanted:
            continue
        options: dict[str, Any] = {"help": meta["help"], "dest": declared_field.name}
        if meta["kind"] is bool:
            options["action"] = "store_true"
        elif meta["kind"] is dict:
            options.update(action="append", default=[], metavar=meta["metavar"])
        else:
            options.update(default=declared_field.default, type=meta["kind"])
            if meta["choices"]:
                options["choices"] = meta["choices"]
        parser.add_argument(meta["flag"], **options)


def parse_rules(given: list[str]) -> dict[str, list[str]]:
    """`--rule orders.requested_pickup_at=epoch-seconds` options as {"table.column": [rules]}."""
    rules: dict[str, list[str]] = {}
    for item in given:
        column, sep, names = item.partition("=")
        if not sep or column.count(".") != 1 or not names:
            raise RunbookError(
                f"--rule {item!r} is not of the form TABLE.COLUMN=RULE[,RULE]",
                fix="e.g. --rule orders.requested_pickup_at=epoch-seconds",
            )
        rules.setdefault(column, []).extend(n.strip() for n in names.split(",") if n.strip())
    return rules


def from_options(args: argparse.Namespace, **values: Any) -> RunParameters:
    """The parameters the `runbook` options chose, plus `values` (the run folder, the source)."""
    for declared_field in declared():
        meta = declared_field.metadata
        if meta["flag"] and hasattr(args, declared_field.name):
            value = getattr(args, declared_field.name)
            values[declared_field.name] = parse_rules(value) if meta["kind"] is dict else value
    return RunParameters.checked(values)


def cell(step: str) -> str:
    """The source of the parameters cell of `step`'s notebook: each parameter it takes, as a
    plain literal (papermill overrides these) under its help as a comment."""
    lines = ["# Parameters (papermill overrides these; plain literals only)."]
    for declared_field in declared():
        if step not in declared_field.metadata["steps"]:
            continue
        help_text = declared_field.metadata["help"]
        lines += textwrap.wrap(help_text, 98, initial_indent="# ", subsequent_indent="# ")
        lines.append(f"{declared_field.name} = {_literal(declared_field)}")
    return "\n".join(lines)


def _literal(declared_field: Any) -> str:
    """The default as the notebook's literal (strings in double quotes, as ruff writes them)."""
    if declared_field.metadata["kind"] is dict:
        return "{}"
    default = declared_field.default
    return json.dumps(default) if isinstance(default, str) else repr(default)


def markdown_table() -> str:
    """The README's table of notebook parameters."""
    rows = ["| parameter | default | steps | `runbook` option | meaning |", "|---|---|---|---|---|"]
    for declared_field in declared():
        meta = declared_field.metadata
        steps = (
            "all"
            if meta["steps"] == ALL
            else ", ".join(f"{STEPS.index(s) + 1:02d}" for s in meta["steps"])
        )
        option = f"`{meta['flag']}`" if meta["flag"] else "–"
        rows.append(
            f"| `{declared_field.name}` | `{_literal(declared_field)}` | {steps} | {option} | "
            f"{meta['help']} |"
        )
    return "\n".join(rows)

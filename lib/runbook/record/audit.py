"""`runbook audit RUN_DIR`: re-hash every file of a run against its manifest, and follow the
chain of manifests back to the first run, naming exactly what changed where something did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runbook.core.errors import RunbookError
from runbook.core.run import sha256_file
from runbook.record.chain import MANIFEST, read_manifest
from runbook.record.manifest import file_hashes


@dataclass
class Audit:
    """What the audit found: one line per run checked, and every problem."""

    runs: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    head_sha256: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems


def _short(digest: str) -> str:
    return digest[:12]


def check_files(run_dir: Path, manifest: dict) -> list[str]:
    """Every file the manifest lists hashes as recorded; no file was added or removed."""
    recorded: dict[str, str] = manifest.get("files") or {}
    present = file_hashes(run_dir)
    partials = {
        str(p.relative_to(run_dir)) for p in run_dir.rglob("*.partial") if p.is_file()
    }  # file_hashes skips these; an audit must not
    problems = []
    for name, digest in recorded.items():
        if name not in present:
            problems.append(f"MISSING {run_dir.name}/{name}: listed in the manifest, not on disk")
        elif present[name] != digest:
            problems.append(
                f"CHANGED {run_dir.name}/{name}: sha256 recorded {_short(digest)}…, "
                f"now {_short(present[name])}…"
            )
    for name in sorted((set(present) | partials) - set(recorded)):
        problems.append(f"ADDED {run_dir.name}/{name}: not listed in the manifest")
    return problems


def audit(run_dir: Path) -> Audit:
    """Check `run_dir` and every run its manifest chain leads back to."""
    run_dir = Path(run_dir)
    if read_manifest(run_dir) is None:
        raise RunbookError(
            f"{run_dir} holds no readable {MANIFEST}",
            fix="pass a run folder written by `runbook run` (runs/<UTC time>-<id>/)",
        )
    result = Audit(head_sha256=sha256_file(run_dir / MANIFEST))
    current: Path | None = run_dir
    seen: set[str] = set()
    while current is not None:
        manifest = read_manifest(current)
        result.runs.append(current.name)
        seen.add(current.name)
        problems = check_files(current, manifest)
        if problems:
            result.problems += problems
            result.lines += [f"  {p}" for p in problems]
        else:
            count = len(manifest.get("files") or {})
            result.lines.append(f"  {current.name}: {count} files match its manifest")
        link = manifest.get("previous_manifest")
        if not link:
            result.lines.append(f"  {current.name}: first run of the chain")
            break
        previous = current.parent / str(link.get("run", ""))
        if link.get("run") in seen:
            result.problems.append(f"LOOP {current.name}: its chain comes back to {previous.name}")
            result.lines.append(f"  {result.problems[-1]}")
            break
        if read_manifest(previous) is None:
            result.problems.append(
                f"MISSING {previous.name}/{MANIFEST}: recorded by {current.name} as the run "
                "before it, gone or unreadable"
            )
            result.lines.append(f"  {result.problems[-1]}")
            break
        actual = sha256_file(previous / MANIFEST)
        if actual != link.get("sha256"):
            if link.get("sha256") in (read_manifest(previous).get("supersedes") or []):
                result.lines.append(
                    f"  {previous.name}: steps were re-run after {current.name} was archived "
                    "(its manifest lists the version that was chained)"
                )
            else:
                result.problems.append(
                    f"REPLACED {previous.name}/{MANIFEST}: {current.name} recorded sha256 "
                    f"{_short(str(link.get('sha256')))}…, now {_short(actual)}…"
                )
                result.lines.append(f"  {result.problems[-1]}")
        current = previous
    return result


def report(result: Audit, run_dir: Path) -> str:
    """The audit as text: a heading, one line per run or problem, and the verdict."""
    lines = [f"Audit of {Path(run_dir).name} and the {len(result.runs) - 1} run(s) before it"]
    lines += result.lines
    if result.passed:
        lines.append(
            f"PASS: every file of {len(result.runs)} run(s) matches its manifest and the chain "
            f"is intact. Manifest sha256 of {Path(run_dir).name}: {result.head_sha256} (keep it "
            "outside the archive, e.g. in the change ticket, to anchor the chain)"
        )
    else:
        lines.append(f"FAIL: {len(result.problems)} problem(s); the lines above name them")
    return "\n".join(lines)

"""The CI gate: which records folders a change adds, and every output a CI job needs.

In a pull request the gate audits only the folders the PR adds under ``records/`` (found
with ``git diff --diff-filter=A base...head``); in a pre-commit hook, the folders holding the
staged files. One audit feeds every output: workflow annotations on stdout (they need no
token, so they work on pull requests from forks), the review comment appended to the job
summary, and ``report.json``, ``report.sarif`` and ``report.md`` written to an output folder
that a later, privileged job uploads and posts — without ever running the submission's code.

Waivers come from a trusted ref: :func:`waivers_at` reads the waivers file as the *base*
commit has it, so a pull request cannot waive its own findings by editing the file. Waivers
that match no finding are returned with the result (a note; ``--fail-on-unused-waivers``
makes them fail the gate).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from auditor.engine import AuditOptions, audit
from auditor.exitcodes import exit_code
from auditor.errors import UsageError
from auditor.report.base import escape_surrogates
from auditor.report.github import GithubReporter
from auditor.report.json import JsonReporter
from auditor.report.review import ReviewContext, ReviewReporter
from auditor.report.sarif import SarifReporter
from auditor.results import Report
from auditor.suppress import Waiver, parse_waivers, unused_waivers

RECORDS = "records"


def records_folder_of(path: str) -> str | None:
    """``records/<track>/<folder>`` for a path inside a records folder, else None."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    if len(parts) >= 4 and parts[0] == RECORDS:
        return "/".join(parts[:3])
    return None


def folders_of(paths: Iterable[str]) -> list[str]:
    """The records folders holding these files, in order, without repeats."""
    seen: dict[str, None] = {}
    for path in paths:
        folder = records_folder_of(path)
        if folder is not None:
            seen.setdefault(folder, None)
    return list(seen)


def added_folders(repo: Path, base: str, head: str) -> list[str]:
    """Records folders with files added between the merge base of ``base`` and ``head``."""
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "diff", "--name-only", "--diff-filter=A", "-z", f"{base}...{head}", "--", RECORDS],
            capture_output=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as exc:
        raise UsageError("git is not installed") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"cannot diff {base}...{head}: {message[-1] if message else 'git failed'}")
    return folders_of(p for p in done.stdout.decode("utf-8", "replace").split("\0") if p)


def waivers_at(repo: Path, rev: str, path: str) -> list[Waiver]:
    """The waivers file ``path`` (relative to the repository root) as commit ``rev`` has it; no
    waivers when the file does not exist there."""
    name = PurePosixPath(path.replace("\\", "/")).as_posix().lstrip("./") if path not in (".", "") else path
    try:
        done = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{name}"], capture_output=True, check=False,
                              timeout=60)
    except FileNotFoundError as exc:
        raise UsageError("git is not installed") from exc
    if done.returncode != 0:
        return []
    try:
        text = done.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"waivers file {name} at {rev} is not UTF-8 text") from exc
    return parse_waivers(text, f"{name} at {rev}")


@dataclass
class GateResult:
    """What the gate decided and wrote."""

    folders: list[str]
    report: Report
    exit_code: int
    written: list[Path]
    unused_waivers: list[Waiver] = field(default_factory=list)


def run_gate(
    folders: list[str],
    *,
    root: Path,
    options: AuditOptions,
    fail_level: str = "error",
    allow_tool_errors: bool = False,
    out_dir: Path | None = None,
    annotation_cap: int = 10,
    context: ReviewContext | None = None,
    summary_file: Path | None = None,
    pr: int | None = None,
    head_sha: str | None = None,
    fail_on_unused_waivers: bool = False,
) -> tuple[GateResult, str]:
    """Audit the folders (relative to ``root``) once and produce every CI output.

    Returns the result and the annotations text (for stdout).
    """
    existing = [f for f in folders if (root / f).is_dir()]
    # paths in every report are relative to the repository root, as SARIF and annotations need
    report = audit([root / f for f in existing], options, root=root) if existing else Report()
    for sub in report.submissions:
        sub.head_sha = sub.head_sha or head_sha
        sub.pr = sub.pr if sub.pr is not None else pr
    written: list[Path] = []
    review = ReviewReporter(context or ReviewContext()).render(report) if report.submissions else (
        "<!-- pgolf-audit:review -->\n## pgolf-audit review\n\nThis change adds no records folder; nothing to audit.\n"
    )
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        outputs = {
            "report.json": JsonReporter().render(report),
            "report.sarif": SarifReporter().render(report),
            "report.md": review,
            "pr.json": json.dumps({"pr": pr, "head_sha": head_sha, "folders": existing}),
        }
        for name, text in outputs.items():
            path = out_dir / name
            text = escape_surrogates(text)  # a file name that is not UTF-8 is shown escaped
            path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
            written.append(path)
    if summary_file is not None:
        with summary_file.open("a", encoding="utf-8") as handle:
            handle.write(escape_surrogates(review))
    code = exit_code(report, fail_level=fail_level, allow_tool_errors=allow_tool_errors)
    unused = unused_waivers(options.waivers, report.findings)
    if unused and fail_on_unused_waivers:
        code = max(code, 1)
    annotations = escape_surrogates(GithubReporter(cap=annotation_cap).render(report))
    for waiver in unused:
        annotations += (f"\n::notice title=pgolf-audit::unused waiver: {waiver.code} {waiver.fingerprint} matched no "
                        f"finding ({_one_line(waiver.reason)})")
    return GateResult(existing, report, code, written, unused), annotations


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200].replace("%", "%25")

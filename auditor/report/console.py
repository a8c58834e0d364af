"""Rich console output: findings grouped by submission, with snippets, and a summary table."""

from __future__ import annotations

import io
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from auditor.findings import Finding, Severity, Status, Verdict
from auditor.report.base import Reporter
from auditor.results import Report, SubmissionReport

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
VERDICT_STYLE = {Verdict.CLEAN: "bold green", Verdict.REVIEW: "bold yellow", Verdict.VIOLATION: "bold red"}


def _finding_text(finding: Finding) -> Text:
    text = Text("  ")
    label = finding.severity.value if finding.status is Status.ACTIVE else finding.status.value
    style = SEVERITY_STYLE[finding.severity] if finding.status is Status.ACTIVE else "dim"
    text.append(f"{label:<9}", style=style)
    text.append(f"{finding.code} ", style="bold")
    text.append(f"{finding.name} ", style="bold")
    text.append(f"[{finding.confidence} confidence] ", style="dim")
    text.append(str(finding.location), style="underline")
    text.append("\n    " + finding.message)
    if finding.snippet:
        text.append("\n    │ ", style="dim")
        text.append(finding.snippet, style="italic")
    evidence = finding.to_dict()["evidence"]
    if evidence:
        shown = ", ".join(f"{k}={v}" for k, v in evidence.items())
        text.append("\n    evidence: " + (shown if len(shown) < 400 else shown[:399] + "…"), style="dim")
    if finding.sources:
        text.append("\n    rule source: " + ", ".join(finding.sources), style="dim")
    if finding.status_reason:
        text.append(f"\n    {finding.status.value}: {finding.status_reason}", style="dim")
    return text


def _submission(console: Console, sub: SubmissionReport) -> None:
    title = Text()
    title.append(sub.path, style="bold")
    title.append("  ")
    title.append(sub.verdict.value.upper(), style=VERDICT_STYLE[sub.verdict])
    if sub.head_sha:
        title.append(f"  @ {sub.head_sha[:12]}", style="dim")
    console.print(title)
    if not sub.findings:
        console.print(Text("  no findings", style="green"))
    for finding in sub.findings:
        console.print(_finding_text(finding))
    console.print()


def summary_table(report: Report) -> Table:
    """One row per submission: verdict and counts."""
    table = Table(title="pgolf-audit summary", show_lines=False)
    table.add_column("submission", overflow="fold")
    table.add_column("verdict")
    for name in ("errors", "warnings", "notes", "inactive", "suppressed"):
        table.add_column(name, justify="right")
    for sub in report.submissions:
        active = [f for f in sub.findings if f.counts]
        table.add_row(
            sub.path,
            Text(sub.verdict.value, style=VERDICT_STYLE[sub.verdict]),
            str(sum(f.severity is Severity.ERROR for f in active)),
            str(sum(f.severity is Severity.WARNING for f in active)),
            str(sum(f.severity is Severity.NOTE for f in active)),
            str(sum(f.status is Status.INACTIVE for f in sub.findings)),
            str(sum(f.status is Status.SUPPRESSED for f in sub.findings)),
        )
    return table


class ConsoleReporter(Reporter):
    """Human-readable terminal output."""

    def write(self, report: Report, stream: TextIO, *, color: bool = False) -> None:
        console = Console(file=stream, force_terminal=color, no_color=not color, width=120, soft_wrap=False)
        for sub in report.submissions:
            _submission(console, sub)
        console.print(summary_table(report))

    def render(self, report: Report) -> str:
        buffer = io.StringIO()
        self.write(report, buffer, color=False)
        return buffer.getvalue()

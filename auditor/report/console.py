"""Rich console output: findings grouped by submission, with snippets, and a summary table."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from auditor.findings import Finding, Severity, Status, Verdict
from auditor.report.base import Reporter, escape_controls, escape_surrogates, public_sources
from auditor.report.text import evidence_items
from auditor.results import Report, SubmissionReport

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.NOTE: "cyan"}
VERDICT_STYLE = {Verdict.CLEAN: "bold green", Verdict.REVIEW: "bold yellow", Verdict.VIOLATION: "bold red"}


def _finding(finding: Finding, base: str) -> Group:
    """A finding's head line, then its body indented: message, snippet, evidence, sources.

    Wrapped lines keep their indent (rich pads them); a snippet is one line, cut by rich with
    an ellipsis where the terminal ends.
    """
    head = Text("  ")
    if finding.status is Status.ACTIVE:
        head.append(f"{finding.severity.value:<8}", style=SEVERITY_STYLE[finding.severity])
    else:  # "suppressed error", "inactive warning": what it would be, and why it does not count
        head.append(f"{finding.status.value} {finding.severity.value}", style="dim")
    head.append(" ")
    head.append(f"{finding.code} {finding.name}", style="bold")
    head.append(f" [{finding.confidence} confidence]", style="dim")
    where = _where(finding, base)
    if where:
        head.append(" ")
        head.append(where, style="underline")
    body: list[RenderableType] = [Text(finding.message)]
    if finding.snippet:
        snippet = Text("│ ", style="dim", no_wrap=True, overflow="ellipsis")
        snippet.append(" ".join(finding.snippet.split()), style="italic")
        body.append(snippet)
    details = Table.grid(padding=(0, 1))
    details.add_column(style="dim", no_wrap=True)
    details.add_column(overflow="fold")
    for key, value in evidence_items(finding, base):
        details.add_row(f"{key}:", Text(value))
    sources = ", ".join(label for label, _ in public_sources(finding.sources))
    if sources:
        details.add_row("rule source:", Text(sources))
    if finding.status_reason:
        details.add_row(f"{finding.status.value}:", Text(finding.status_reason))
    if details.row_count:
        body.append(details)
    return Group(head, Padding(Group(*body), (0, 0, 0, 4), expand=False))


def _where(finding: Finding, base: str) -> str:
    """The location, relative to the submission folder its title names ("" for the folder itself)."""
    text = str(finding.location)
    if text == base:
        return ""
    return escape_controls(text.removeprefix(base.rstrip("/") + "/") if base else text)


def _submission(console: Console, sub: SubmissionReport) -> None:
    title = Text()
    title.append(escape_controls(sub.path), style="bold")
    title.append("  ")
    title.append(sub.verdict.value.upper(), style=VERDICT_STYLE[sub.verdict])
    if sub.head_sha:
        title.append(f"  @ {sub.head_sha[:12]}", style="dim")
    console.print(title)
    runtime = sub.facts.get("runtime")
    if isinstance(runtime, dict):  # say that the probes ran, and how they ended, even when clean
        probes = runtime.get("probes") or []
        failed = sum(p.get("status") == "fail" for p in probes)
        line = Text(f"  runtime probes: {runtime.get('status', '?')}", style="dim")
        line.append(f" ({len(probes)} probes, {failed} failed, {runtime.get('seconds', 0):.0f} s on CPU)", style="dim")
        console.print(line)
    if not sub.findings:
        console.print(Text("  no findings", style="green"))
    for finding in sub.findings:
        console.print(_finding(finding, sub.path))
    console.print()


def _counted(items: list[tuple[int, str, str]]) -> str:
    """``2 errors, 1 warning`` from (count, singular, plural) triples; "—" when all are 0."""
    return ", ".join(f"{n} {one if n == 1 else many}" for n, one, many in items if n) or "—"


def summary_table(report: Report) -> Table:
    """One row per submission: its verdict, the findings that count, and those that do not."""
    table = Table(title="pgolf-audit summary", show_lines=False)
    table.add_column("submission", overflow="fold", ratio=3)
    table.add_column("verdict", no_wrap=True)
    table.add_column("findings", overflow="fold", ratio=2)
    table.add_column("not counted", overflow="fold", ratio=1)
    for sub in report.submissions:
        active = [f for f in sub.findings if f.counts]
        table.add_row(
            escape_controls(sub.path),
            Text(sub.verdict.value, style=VERDICT_STYLE[sub.verdict]),
            _counted([(sum(f.severity is level for f in active), level.value, f"{level.value}s") for level in Severity]),
            _counted([
                (sum(f.status is Status.INACTIVE for f in sub.findings), "inactive", "inactive"),
                (sum(f.status is Status.SUPPRESSED for f in sub.findings), "suppressed", "suppressed"),
            ]),
        )
    return table


def write_trimmed(stream: TextIO, draw: Callable[[Console], None], *, color: bool | None = None) -> None:
    """Let ``draw`` print to a rich console on ``stream``, without trailing spaces.

    ``color``: True forces it, False turns it off, None lets rich decide (a terminal,
    ``NO_COLOR``, ``FORCE_COLOR``); rich also takes the terminal's width, or 80 columns
    (``COLUMNS``) in a file or pipe, and folds what does not fit. Rich pads indented blocks
    to their width; text saved to a file should not end its lines in spaces.
    """
    console = Console(
        file=stream,
        force_terminal=True if color else None,
        no_color=True if color is False else None,
        highlight=False,
    )
    with console.capture() as captured:
        draw(console)
    # a file name that is not UTF-8 is shown with its bytes escaped
    stream.write(escape_surrogates("\n".join(line.rstrip(" ") for line in captured.get().split("\n"))))


class ConsoleReporter(Reporter):
    """Human-readable terminal output."""

    def write(self, report: Report, stream: TextIO, *, color: bool | None = False) -> None:
        """The report as rich text (see :func:`write_trimmed` for colour and width)."""
        def draw(console: Console) -> None:
            for sub in report.submissions:
                _submission(console, sub)
            console.print(summary_table(report))

        write_trimmed(stream, draw, color=color)

    def render(self, report: Report) -> str:
        buffer = io.StringIO()
        self.write(report, buffer, color=False)
        return buffer.getvalue()

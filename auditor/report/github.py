"""GitHub workflow commands: ``::error file=…,line=…,title=…::message`` annotations.

They need no token, so they work on pull requests from forks. GitHub shows at most ten
annotations of each level per step, so the rest are counted in one closing notice and the
full list belongs in the job summary (the Markdown report).
"""

from __future__ import annotations

from auditor.findings import Finding, Severity
from auditor.report.base import Reporter
from auditor.results import Report

LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "notice"}
#: Annotations GitHub displays per level and step.
DEFAULT_CAP = 10


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    """One workflow command for a finding."""
    loc = finding.location
    props = [f"file={_escape_property(loc.path)}"]
    line = loc.physical_line
    if line is not None:
        props.append(f"line={line}")
        if loc.decoded_from is None and loc.column is not None:
            props.append(f"col={loc.column + 1}")
    props.append(f"title={_escape_property(f'{finding.code} {finding.name} ({finding.confidence} confidence)')}")
    message = finding.message
    if loc.decoded_from is not None:
        message += f" [decoded payload line {loc.line}; wrapper layers {' → '.join(loc.decoded_from.layers)}]"
    return f"::{LEVEL[finding.severity]} {','.join(props)}::{_escape_data(message)}"


class GithubReporter(Reporter):
    """Workflow-command annotations, capped per level."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap

    def render(self, report: Report) -> str:
        lines: list[str] = []
        shown = {level: 0 for level in LEVEL}
        hidden = 0
        active = sorted(
            (f for f in report.findings if f.counts),
            key=lambda f: (-f.severity.rank, -f.confidence.rank, f.location.path, f.location.physical_line or 0),
        )
        for finding in active:
            if shown[finding.severity] >= self.cap:
                hidden += 1
                continue
            shown[finding.severity] += 1
            lines.append(annotation(finding))
        if hidden:
            lines.append(f"::notice title=pgolf-audit::{hidden} more findings are not annotated; see the job summary or report.json")
        for sub in report.submissions:
            lines.append(f"pgolf-audit: {sub.path}: {sub.verdict.value}")
        return "\n".join(lines)

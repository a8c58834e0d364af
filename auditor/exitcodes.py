"""The exit code of a gate: what the command line, the CI gate and scripts read.

``0``: nothing that counts is at or above the fail level, and everything asked for was
audited. ``1``: an active finding at or above the fail level. ``2``: the audit is incomplete —
an input given on the command line could not be read (a missing path or pull request), or a
submission carries an active tool finding (PG9xx: a file that does not parse, a wrapper that
was not decoded, an unreadable or empty folder, a check that crashed, a runtime run that
reached no conclusion) — unless ``--allow-tool-errors`` accepts PG9xx findings. A finding at
the fail level wins over a PG9xx finding (the gate fails either way, and ``1`` says it rests
on a finding); a missing input is always ``2``, since part of what was asked was not audited.
"""

from __future__ import annotations

from collections.abc import Sequence

from auditor.findings import Finding, Severity, Status
from auditor.results import Report

OK, FINDINGS, INCOMPLETE = 0, 1, 2

#: Codes of the auditor's own results: what could not be parsed, read, decoded or concluded.
TOOL_PREFIX = "PG9"


def at_or_above(report: Report, level: str) -> list[Finding]:
    """Active findings at or above a severity level (``error``/``warning``/``note``)."""
    threshold = Severity(level).rank
    return [f for f in report.findings if f.status is Status.ACTIVE and f.severity.rank >= threshold]


def tool_problems(report: Report) -> list[Finding]:
    """Active PG9xx findings: parts of a submission the auditor could not audit."""
    return [f for f in report.findings if f.status is Status.ACTIVE and f.code.startswith(TOOL_PREFIX)]


def exit_code(
    report: Report,
    *,
    fail_level: str = Severity.ERROR.value,
    allow_tool_errors: bool = False,
    not_audited: Sequence[str] = (),
    exit_zero: bool = False,
) -> int:
    """The exit code for a report (see the module docstring); ``exit_zero`` only forgives findings."""
    if not_audited:
        return INCOMPLETE
    if exit_zero:
        return OK
    if at_or_above(report, fail_level):
        return FINDINGS
    if tool_problems(report) and not allow_tool_errors:
        return INCOMPLETE
    return OK

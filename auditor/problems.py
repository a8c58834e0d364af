"""The auditor's own results (PG9xx), built by the core without the rule catalogue.

Discovery, the engine and the runtime step say what they could not check (a file that does
not parse, a wrapper that was not unpacked, a check that crashed, a runtime run that did not
conclude). They build those findings from this table, so the core never reaches back into
``rules/``; the catalogue's ``rules/tool/`` modules document the same codes, and a test keeps
both in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditor.findings import Confidence, Finding, Location, Severity, Status


@dataclass(frozen=True)
class ToolResult:
    """One PG9xx code: its name, the rulings it rests on and its tags."""

    code: str
    name: str
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ("tool",)
    severity: Severity = Severity.WARNING
    confidence: Confidence = Confidence.HIGH


TOOL_RESULTS: dict[str, ToolResult] = {
    r.code: r
    for r in (
        ToolResult("PG901", "python-does-not-parse", ("README",), ("tool", "format")),
        ToolResult("PG902", "undecodable-file"),
        ToolResult("PG903", "file-not-analysed", ("README",)),
        ToolResult("PG904", "wrapper-not-unpacked", ("#1413", "#1855"), ("tool", "dynamic_code")),
        ToolResult("PG905", "unreadable-input", ("README",)),
        ToolResult("PG906", "invalid-json", ("README",), ("tool", "format")),
        ToolResult("PG907", "check-failed"),
        ToolResult("PG908", "runtime-inconclusive", ("#1017",)),
    )
}


def tool_finding(
    code: str,
    message: str,
    location: Location,
    *,
    evidence: Mapping[str, Any] | None = None,
    snippet: str = "",
    key: str = "",
    severity: Severity | None = None,
    confidence: Confidence | None = None,
) -> Finding:
    """A PG9xx finding of the table above (``KeyError`` for an unknown code); severity and
    confidence default to the code's own."""
    result = TOOL_RESULTS[code]
    return Finding(
        code=result.code,
        name=result.name,
        severity=severity or result.severity,
        confidence=confidence or result.confidence,
        message=message,
        location=location,
        snippet=snippet,
        evidence=dict(evidence or {}),
        sources=result.sources,
        tags=result.tags,
        status=Status.ACTIVE,
        key=key,
    )

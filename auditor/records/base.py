"""Shared helpers of the records rules (PG3xx): locations and evidence from seed rows."""

from __future__ import annotations

from typing import Any

from auditor.findings import Location
from auditor.records.analysis import SeedRow
from auditor.records.logparse import At


def b(n: float | int | None) -> str:
    """Bytes with thousands separators."""
    return "?" if n is None else f"{int(n):,}"


def s(x: float | None) -> str:
    return "?" if x is None else f"{x:,.1f} s"


def at_log(row: SeedRow, line: int | None) -> Location:
    """The log file of a row, at a line."""
    return Location(row.path, line)


def line_evidence(row: SeedRow, at: At | Any | None, what: str = "line") -> dict[str, Any]:
    """``{"log": path, "line": n, "text": …}`` for an evidence line."""
    out: dict[str, Any] = {"seed": row.seed, "log": row.path}
    if at is not None and getattr(at, "line", None) is not None:
        out[what] = at.line
        text = getattr(at, "text", None)
        if text:
            out[f"{what}_text"] = text
    return out


def seed_label(row: SeedRow) -> str:
    return f"seed {row.seed}" if row.seed.isdigit() else row.path.rsplit("/", 1)[-1]


def other_run_note(row: SeedRow) -> str:
    """A suffix for findings on a log that is not the claim's evidence."""
    if row.evidence:
        return ""
    if row.not_evidence_because:
        return f" ({row.not_evidence_because})"
    return " (another run of this seed: its score is not the claimed one, which a different log shows)"

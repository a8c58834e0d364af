"""What an audit returns: one report per submission, and the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditor import __version__
from auditor.findings import Finding, Severity, Verdict, sort_key, verdict_of


@dataclass
class SubmissionReport:
    """The audit of one submission."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    #: Per-seed figures from the logs (records validator): seed, val_bpb, bytes, times …
    seeds: list[dict[str, Any]] = field(default_factory=list)
    #: What was checked, for a reader who wants to know why "clean" means clean.
    checked: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    head_sha: str | None = None
    pr: int | None = None
    #: Free-form facts that reporters may show (claimed val_bpb, track, eval stages …).
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.findings.sort(key=sort_key)

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if f.counts]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "verdict": self.verdict.value,
            "findings": [f.to_dict() for f in self.findings],
            "seeds": self.seeds,
            "checked": self.checked,
            "files": self.files,
        }
        if self.head_sha:
            out["head_sha"] = self.head_sha
        if self.pr is not None:
            out["pr"] = self.pr
        if self.facts:
            out["facts"] = self.facts
        return out


@dataclass
class Report:
    """The audit of everything given on the command line."""

    submissions: list[SubmissionReport] = field(default_factory=list)
    #: Inputs given on the command line that could not be audited (a missing path, a pull
    #: request without a head ref or without a records folder), each with the reason.
    not_audited: list[str] = field(default_factory=list)
    tool_name: str = "pgolf-audit"
    tool_version: str = __version__

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.submissions for f in s.findings]

    def worst_severity(self) -> Severity | None:
        """The highest severity among findings that count (active ones)."""
        ranks = [f.severity for f in self.findings if f.counts]
        return max(ranks, key=lambda s: s.rank) if ranks else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tool": {"name": self.tool_name, "version": self.tool_version},
            "submissions": [s.to_dict() for s in self.submissions],
        }
        if self.not_audited:
            out["not_audited"] = list(self.not_audited)
        return out

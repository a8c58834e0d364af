"""Findings: what every check produces, and the verdict they add up to.

A finding is one claim about one submission, with the evidence behind it and the rule or
ruling it rests on. Severity says how bad the problem would be; confidence says how sure the
check is that the problem is real (bandit's two axes). Status says whether the finding counts:
code that its environment defaults switch off is ``inactive``, and a waived finding is
``suppressed`` without being lost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any


class Severity(str, Enum):
    """How bad the problem is if the finding is true."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "note": 1}[self.value]

    def __str__(self) -> str:
        return self.value


class Confidence(str, Enum):
    """How sure the check is that the finding is true."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {"high": 3, "medium": 2, "low": 1}[self.value]

    def __str__(self) -> str:
        return self.value


class Status(str, Enum):
    """Whether a finding counts towards the verdict and the exit code."""

    ACTIVE = "active"
    INACTIVE = "inactive"  # present in the code, switched off by its defaults
    SUPPRESSED = "suppressed"  # waived with a reason

    def __str__(self) -> str:
        return self.value


class Verdict(str, Enum):
    """The outcome for one submission."""

    CLEAN = "clean"
    REVIEW = "review"
    VIOLATION = "violation"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Origin:
    """Where an unpacked payload came from: the wrapper file and the line of its ``exec``."""

    path: str
    line: int
    column: int = 0
    layers: tuple[str, ...] = ()  # decoders applied, outermost first, e.g. ("b85", "lzma")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "column": self.column, "layers": list(self.layers)}


@dataclass(frozen=True)
class Location:
    """A place in a submission.

    ``path`` is relative to the repository (or to the folder given on the command line) and
    uses forward slashes. When ``decoded_from`` is set, ``line`` and ``column`` point into the
    decoded payload of a self-extracting wrapper, and ``decoded_from`` gives the wrapper line.
    A location without a line points at a whole file (a log, submission.json, a folder).
    """

    path: str
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    decoded_from: Origin | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "line": self.line, "column": self.column}
        if self.end_line is not None:
            out["end_line"] = self.end_line
        if self.decoded_from is not None:
            out["decoded_from"] = self.decoded_from.to_dict()
        return out

    @property
    def physical_line(self) -> int | None:
        """The line in the file as it exists on disk (the wrapper line for decoded code)."""
        return self.decoded_from.line if self.decoded_from is not None else self.line

    def __str__(self) -> str:
        text = self.path
        if self.decoded_from is not None:
            text += f":{self.decoded_from.line} (decoded line {self.line})"
        elif self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column + 1}"
        return text


_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Finding:
    """One claim about a submission, with its evidence and the rule it enforces."""

    code: str
    name: str
    severity: Severity
    confidence: Confidence
    message: str
    location: Location
    snippet: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    status: Status = Status.ACTIVE
    status_reason: str = ""  # why inactive or suppressed
    # A stable discriminator supplied by the check (a function name, a log stage, a seed)
    # so that two findings of one rule in one file get distinct fingerprints.
    key: str = ""

    @property
    def fingerprint(self) -> str:
        """An identity that survives edits elsewhere in the file: no line numbers in it."""
        parts = [self.code, self.location.path, _SPACE.sub(" ", self.snippet).strip(), self.key]
        return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]

    @property
    def counts(self) -> bool:
        """Whether the finding counts towards the verdict and the exit code."""
        return self.status is Status.ACTIVE

    def with_status(self, status: Status, reason: str) -> Finding:
        return replace(self, status=status, status_reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "tags": list(self.tags),
            "message": self.message,
            "location": self.location.to_dict(),
            "snippet": self.snippet,
            "evidence": _jsonable(self.evidence),
            "sources": list(self.sources),
            "fingerprint": self.fingerprint,
        }


def _jsonable(value: Any) -> Any:
    """Evidence may hold tuples, paths, enums or numpy scalars; JSON wants plain values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return str(value)


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """The verdict of a submission from its findings.

    ``violation`` needs an active error that the check is at least moderately sure of; a
    low-confidence error, a warning or an auditor-level problem (PG9xx: something could not be
    checked) asks for human ``review``; otherwise the submission is ``clean``.
    """
    verdict = Verdict.CLEAN
    for finding in findings:
        if not finding.counts or finding.severity is Severity.NOTE:
            continue
        if finding.severity is Severity.ERROR and finding.confidence.rank >= Confidence.MEDIUM.rank:
            return Verdict.VIOLATION
        verdict = Verdict.REVIEW
    return verdict


def sort_key(finding: Finding) -> tuple:
    """Order findings the way a reader wants them: the ones that count first, errors before
    warnings before notes, then by file, line and code."""
    loc = finding.location
    return (not finding.counts, -finding.severity.rank, loc.path, loc.physical_line or 0, loc.line or 0, finding.code)

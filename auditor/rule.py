"""The rule contract shared by every check in the catalogue (``rules/``).

A rule is one class in one module: its code, name, severity, confidence, the sources it
enforces, tags, a docstring in ruff's shape (What it does / Why is this bad? / Example /
Use instead / References) and the valid and invalid cases that the test suite runs (Fixit's
shape). Three kinds of rules differ only in what they look at:

- :class:`auditor.static.base.StaticRule` — one Python source (a script, a helper module, or
  the decoded payload of a wrapper);
- :class:`BundleRule` — a whole submission (its logs, submission.json, folder layout), used by
  the records validator and the runtime harness;
- :class:`ToolRule` — the auditor's own results (could not parse, could not unpack, could
  not conclude), raised by the engine rather than by a check.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from auditor.findings import Confidence, Finding, Location, Severity, Status

if TYPE_CHECKING:
    from auditor.evidence import Evidence

#: Tag names with a fixed meaning across the catalogue and the corpus labels.
KNOWN_TAGS = frozenset(
    {
        "target_in_key",
        "boundary_plus1",
        "slot",
        "prequant_ttt",
        "ttt_before_score",
        "val_in_train",
        "size_cap",
        "eval_budget",
        "train_budget",
        "bpb_accounting",
        "network",
        "format",
        "significance",
        "target_gated",
        "dynamic_code",
        "train_data_at_eval",
        "eval_corpus",
        "selection",
        "consistency",
        "causality",
        "hardware",
        "tool",
    }
)

#: Headings every rule docstring carries, in this order.
DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "References")


@dataclass(frozen=True)
class Case:
    """An example a rule is tested on: a script, extra files of a records folder, or a fixture.

    ``code`` becomes ``train_gpt.py`` (dedented); ``files`` maps relative paths to contents;
    ``folder`` names a fixture folder relative to the repository root, copied first.
    """

    code: str | None = None
    files: Mapping[str, str | bytes] = field(default_factory=dict)
    folder: str | None = None
    note: str = ""

    def materialize_code(self) -> str | None:
        return None if self.code is None else textwrap.dedent(self.code).lstrip("\n")


@dataclass(frozen=True)
class Valid(Case):
    """A case on which the rule must raise no active finding."""


@dataclass(frozen=True)
class Invalid(Case):
    """A case on which the rule must raise a finding.

    ``lines`` are the lines of ``train_gpt.py`` (or of its decoded payload) the findings must
    point at; ``status`` is the status they must have (``inactive`` for code switched off by
    its defaults).
    """

    lines: tuple[int, ...] = ()
    status: Status = Status.ACTIVE


class Rule:
    """Base of every rule. Subclasses set the class attributes and a docstring."""

    CODE: ClassVar[str]
    NAME: ClassVar[str]
    SEVERITY: ClassVar[Severity]
    CONFIDENCE: ClassVar[Confidence]
    SOURCES: ClassVar[tuple[str, ...]] = ()
    TAGS: ClassVar[tuple[str, ...]] = ()
    VALID: ClassVar[Sequence[Valid]] = ()
    INVALID: ClassVar[Sequence[Invalid]] = ()
    #: Test modules that exercise cases which cannot be embedded (a crashing check, a
    #: file-system error, a 50 MB bomb); the catalogue test checks they name the code.
    TESTED_IN: ClassVar[tuple[str, ...]] = ()
    KIND: ClassVar[str] = "abstract"

    @classmethod
    def doc(cls) -> str:
        """The rule's documentation (its docstring, dedented)."""
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def section(cls, title: str) -> str:
        """The text of one documentation section ("Use instead", "Why is this bad?" …), or ""."""
        doc = cls.doc()
        marker = f"## {title}"
        if marker not in doc:
            return ""
        return doc.split(marker, 1)[1].split("\n## ", 1)[0].strip()

    @classmethod
    def summary(cls) -> str:
        """The first sentence of "What it does", for tables."""
        doc = cls.doc()
        marker = "## What it does"
        if marker in doc:
            body = doc.split(marker, 1)[1].strip().split("\n\n", 1)[0]
        else:
            body = doc.split("\n\n", 1)[0]
        body = " ".join(body.split())
        return body.split(". ")[0].rstrip(".") + "."

    @classmethod
    def finding(
        cls,
        message: str,
        location: Location,
        *,
        snippet: str = "",
        evidence: Mapping[str, Any] | None = None,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        status: Status = Status.ACTIVE,
        status_reason: str = "",
        sources: Iterable[str] = (),
        key: str = "",
    ) -> Finding:
        """Build a finding of this rule; severity and confidence default to the rule's own."""
        merged_sources = tuple(dict.fromkeys((*cls.SOURCES, *sources)))
        return Finding(
            code=cls.CODE,
            name=cls.NAME,
            severity=severity or cls.SEVERITY,
            confidence=confidence or cls.CONFIDENCE,
            message=message,
            location=location,
            snippet=snippet,
            evidence=dict(evidence or {}),
            sources=merged_sources,
            tags=cls.TAGS,
            status=status,
            status_reason=status_reason,
            key=key,
        )


class BundleRule(Rule):
    """A rule that looks at a whole submission (records validator, runtime harness)."""

    KIND: ClassVar[str] = "records"

    def check(self, evidence: Evidence) -> Iterable[Finding]:  # pragma: no cover - interface
        raise NotImplementedError


class ToolRule(Rule):
    """The auditor's own results (PG9xx). Raised by the engine, never run as a check."""

    KIND: ClassVar[str] = "tool"

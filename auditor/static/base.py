"""The base of static rules: checks that read one Python source."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import libcst as cst

from auditor.findings import Confidence, Finding, Location, Severity, Status
from auditor.rule import Rule
from auditor.source import PythonSource, Role
from auditor.static.env import Config
from auditor.static.flow import Flow, flow_of
from auditor.static.index import SourceIndex, Stmt, index_of
from auditor.static.reach import Activity, program_for

if TYPE_CHECKING:
    from auditor.evidence import Evidence


class StaticRule(Rule):
    """A check over one parsed Python source (script, helper module, or decoded payload).

    ``check`` receives the submission's evidence and a source that parsed; it reports findings
    located with ``source.location(node)``. ``ROLES`` says which sources the rule looks at: by
    default the main script and the modules it uses, not auxiliary scripts that never run at
    eval time.

    Rules share, through the evidence, one :class:`~auditor.static.index.SourceIndex` per
    source (one walk of the tree), the dataflow of :mod:`auditor.static.flow` and the program
    of :mod:`auditor.static.reach` (``evidence.program``); :meth:`report` turns a hit into a
    finding whose status says whether the code ran in the configuration that produced the
    claimed score.
    """

    KIND: ClassVar[str] = "static"
    ROLES: ClassVar[frozenset[Role]] = frozenset({Role.MAIN, Role.MODULE})

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:  # pragma: no cover - interface
        raise NotImplementedError

    # shared helpers ---------------------------------------------------------------------

    @staticmethod
    def index(source: PythonSource) -> SourceIndex:
        return index_of(source)

    @staticmethod
    def flow(source: PythonSource) -> Flow:
        return flow_of(index_of(source))

    @staticmethod
    def settings(evidence: Evidence, source: PythonSource) -> Config:
        """The settings the scored runs had (the values their logs printed, their world size),
        else the script's defaults: what a rule evaluates a setting with (a pass count, a
        scale)."""
        index = index_of(source)
        program = evidence.program
        return program.scored_configs.get(id(index)) or program.configs.get(id(index)) or Config(index)

    @classmethod
    def report(  # a finding has many parts
        cls,
        source: PythonSource,
        node: cst.CSTNode,
        stmt: Stmt,
        message: str,
        *,
        evidence: Mapping[str, Any] | None = None,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        sources: Iterable[str] = (),
        key: str = "",
        activity: Activity | None = None,
    ) -> Finding:
        """A finding at the statement ``stmt`` (``node`` is the part of it that matters; the
        location is the statement's first line), inactive when the code does not run."""
        index = index_of(source)
        line, column = index.stmt_position(stmt)
        program = program_for(source)
        activity = activity if activity is not None else program.activity(stmt)
        where = stmt.scope.qualname if not stmt.scope.is_module else "<module>"
        merged: dict[str, Any] = {"function": where, **(evidence or {}), **activity.evidence(), **source.evidence_base()}
        status = Status.ACTIVE if activity.active else Status.INACTIVE
        reason = activity.reason
        off_path = program.off_scored_path(stmt) if activity.active else None
        if off_path is not None:  # it ran, but for a stage whose score is not the claim
            merged["not_on_scored_path"] = off_path
            severity = Severity.WARNING if (severity or cls.SEVERITY) is Severity.ERROR else severity
            confidence, reason = Confidence.LOW, off_path
        location = Location(path=source.path, line=line, column=column, decoded_from=source.origin)
        return cls.finding(
            message,
            location,
            snippet=source.snippet(line=line),
            evidence=merged,
            severity=severity,
            confidence=confidence,
            status=status,
            status_reason=reason,
            sources=sources,
            key=key or where,
        )

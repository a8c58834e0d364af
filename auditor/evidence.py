"""The evidence stage: everything the analyses know about one submission, typed and memoised.

The engine builds one :class:`Evidence` per bundle, after discovery and unpacking and before
the rules::

    discover → unpack → Evidence (analyse) → rules (judge) → reconcile → suppress → report

Each field is computed on first use and kept: the static facts of each Python source (its
index, its data flow, the program it belongs to), the records analysis (per-seed table,
claims, significance), the scored configuration (which run produced each claimed score, with
which settings) and the runtime result (only when the audit runs code). Rules read it and
return findings; nothing writes to it, so the report's per-seed table and facts do not depend
on which rules ran.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from auditor.bundle import Bundle
from auditor.source import PythonSource, Role

if TYPE_CHECKING:
    from auditor.records.analysis import RecordsAnalysis
    from auditor.records.significance import ClaimTest
    from auditor.runtime.harness import Causality
    from auditor.runtime.sandbox import Limits
    from auditor.scored.config import ScoredConfiguration
    from auditor.static.flow import Flow
    from auditor.static.index import SourceIndex
    from auditor.static.reach import Program


@dataclass(frozen=True)
class AuditContext:
    """What an audit is told from outside the submission."""

    #: The significance test of the records checks: ``rule`` and, when given, ``baseline``
    #: (per-seed scores), ``baseline_value`` and ``source`` (where the baseline came from).
    significance: Mapping[str, Any] = field(default_factory=dict)
    #: Run the submission's code in the sandbox (the runtime harness).
    runtime: bool = False
    #: Settings and limits of the runtime harness (the causality command's options).
    runtime_settings: Mapping[str, Any] = field(default_factory=dict)
    runtime_limits: Limits | None = None
    #: Called with (elapsed seconds, checkpoint) while the sandboxed run goes on.
    runtime_progress: Callable[[float, dict[str, Any] | None], None] | None = None


@dataclass(frozen=True)
class StaticFacts:
    """What the static analysis knows about one Python source."""

    source: PythonSource
    index: SourceIndex
    program: Program

    @property
    def flow(self) -> Flow:
        from auditor.static.flow import flow_of

        return flow_of(self.index)


class Evidence:
    """The analyses of one bundle, computed once each, for every rule and the report."""

    def __init__(self, bundle: Bundle, context: AuditContext | None = None, *, runtime: Causality | None = None) -> None:
        """``runtime`` is a harness result obtained elsewhere (a test's, a cached run's)."""
        self.bundle = bundle
        self.context = context or AuditContext()
        if runtime is not None:
            self.__dict__["runtime"] = runtime

    @classmethod
    def for_source(cls, source: PythonSource) -> Evidence:
        """The evidence of a lone source (no folder, no logs): for benchmarks and tools."""
        from auditor.files import MemoryStore

        bundle = Bundle(path=source.path, store=MemoryStore({}, source.path), files=[], sources=[source], single_file=True)
        return cls(bundle)

    # static ------------------------------------------------------------------------------

    @cached_property
    def program(self) -> Program:
        """The submission's main script and the modules it uses, with one call graph and the
        scored configuration deciding which guarded code ran."""
        from auditor.static.reach import Program, submission_texts

        members = [s for s in self.bundle.sources if s.role in (Role.MAIN, Role.MODULE) and s.parse_error is None]
        texts, logs = submission_texts(self.bundle)
        program = Program(members, texts, logs, scored=self.scored)
        program.attach()
        return program

    def static(self, source: PythonSource) -> StaticFacts:
        """The static facts of one source of this bundle (a parsed one)."""
        from auditor.static.index import index_of
        from auditor.static.reach import Program, submission_texts

        program = self.program
        index = index_of(source)
        if index.program is None:  # a source outside the program (not the main script or a module)
            Program([*program.sources, source], *submission_texts(self.bundle), scored=self.scored).attach([index])
        return StaticFacts(source, index, index.program or program)

    def index(self, source: PythonSource) -> SourceIndex:
        return self.static(source).index

    def flow(self, source: PythonSource) -> Flow:
        return self.static(source).flow

    # the scored configuration ---------------------------------------------------------------

    @cached_property
    def scored(self) -> ScoredConfiguration:
        """Which run produced each claimed score, and what its logs prove about the code."""
        from auditor.scored.config import scored_configuration

        return scored_configuration(self.bundle, self.records)

    # records -------------------------------------------------------------------------------

    @cached_property
    def records(self) -> RecordsAnalysis:
        """The per-seed table, the claims and the folder facts from logs and submission.json."""
        from auditor.records.analysis import analyse

        return analyse(self.bundle)

    @cached_property
    def significance(self) -> ClaimTest:
        """The claim tested against the baseline of the context (``--significance``)."""
        from auditor.records.significance import claim_test

        return claim_test(self.records, self.context.significance)

    # runtime -------------------------------------------------------------------------------

    @cached_property
    def runtime(self) -> Causality | None:
        """The sandboxed run's result; None when the audit does not run code."""
        if not self.context.runtime:
            return None
        from auditor.runtime.harness import causality_of
        from auditor.runtime.stage import scored_runtime

        # the sandbox runs the scored configuration, and a pass is about the claimed stage
        scored = scored_runtime(self.scored, self.program, self.records)
        return causality_of(
            self.bundle, dict(self.context.runtime_settings), self.context.runtime_limits, self.context.runtime_progress,
            scored,
        )

    @property
    def runtime_done(self) -> Causality | None:
        """The runtime result if it was computed already (the report never starts a run)."""
        return self.__dict__.get("runtime")

    # for the report ---------------------------------------------------------------------------

    def seeds(self) -> list[dict[str, Any]]:
        """The per-seed table the report shows."""
        return [row.to_dict() for row in self.records.rows]

    def facts(self) -> dict[str, Any]:
        """The facts the report shows: records, significance, scored configuration, runtime."""
        out = dict(self.records.facts())
        out["significance"] = self.significance.summary()
        program = self.program  # its configurations give the settings' defaults and run commands
        scored = self.scored.summary(list(program.configs.values()), program.run_settings)
        if scored:
            out["scored_runs"] = scored
        result = self.runtime_done
        if result is not None:
            from auditor.runtime.base import probe_summary

            out["runtime"] = probe_summary(result)
        return out

"""What the PG2xx rules share: one harness run per submission, and how its rows become findings.

A runtime rule is a :class:`auditor.rule.BundleRule` of kind ``runtime``: the engine runs it
only with ``--runtime`` (it executes the submission's code in the sandbox). All of them read the
same :class:`auditor.runtime.harness.Causality` (``Evidence.runtime``), so the submission runs
once however many rules look at it.

:func:`reconcile` is the step after all checks ran: runtime evidence for a tag supersedes a
static hypothesis with that tag. A static warning whose pattern the probes exercised without a
leak is downgraded to a note that carries the probe evidence ("pattern present, no leak at the
chunk boundaries"); a static *error* is never lowered by a pass (the run is untrusted code
testifying about itself), it only carries the pass as evidence. One whose leak the probes
reproduced is confirmed (high confidence).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from auditor.findings import Confidence, Finding, Location, Severity
from auditor.rule import BundleRule

from auditor.problems import tool_finding

if TYPE_CHECKING:
    from auditor.bundle import Bundle
    from auditor.evidence import Evidence
    from auditor.runtime.harness import Causality, Row

#: Static tags a runtime pass speaks to, and the probes whose pass clears them.
CLEARED_BY = {
    "boundary_plus1": ("future", "substitution", "score_before_update"),
    "slot": ("future",),
    "prequant_ttt": ("pipeline_future",),
    "ttt_before_score": ("future", "score_before_update"),
    "target_in_key": ("substitution",),
    "target_gated": ("substitution",),
}


class RuntimeRule(BundleRule):
    """A rule decided by the runtime causality harness."""

    KIND: ClassVar[str] = "runtime"

    @staticmethod
    def causality(evidence: Evidence) -> Causality:
        """The harness's result for this submission (one sandboxed run per bundle)."""
        result = evidence.runtime
        if result is None:
            raise RuntimeError("a runtime rule ran in an audit that does not run code (AuditOptions.runtime)")
        return result

    @staticmethod
    def location(bundle: Bundle, result: Causality, scorer: str | None = None) -> Location:
        """The main script, at the definition of the evaluation function when it is known."""
        main = bundle.main_script
        path = main.path if main is not None else bundle.path
        line = result.script_lines.get(scorer or "") if scorer else None
        if line is None:
            return Location(path, decoded_from=result.decoded_from) if result.decoded_from else Location(path)
        return Location(path, line=line, decoded_from=result.decoded_from)

    def rows(self, evidence: Evidence, probes: Iterable[str]) -> tuple[Causality, list[Row]]:
        result = self.causality(evidence)
        wanted = set(probes)
        return result, [r for r in result.rows if r.probe in wanted and r.status == "fail"]


def evidence_of(row: Row, result: Causality) -> dict[str, Any]:
    out: dict[str, Any] = {"probe": row.probe, "scorer": row.scorer, **row.evidence}
    out["settings"] = {k: v for k, v in result.knobs.items() if k in (
        "VOCAB_SIZE", "TRAIN_SEQ_LEN", "EVAL_SEQ_LEN", "EVAL_STRIDE", "TTT_CHUNK_TOKENS", "TTT_EPOCHS")}
    if result.run_env:
        out["run_env"] = result.run_env
    return out


def inconclusive_finding(bundle: Bundle, result: Causality) -> Finding | None:
    """PG908 when the harness could not conclude (a tool result, raised after the runtime rules)."""
    if result.status != "inconclusive":
        return None
    reasons = result.reasons or ["no reason recorded"]
    return tool_finding(
        "PG908",
        "the runtime harness could not decide causality and normalization: " + "; ".join(reasons[:4]),
        RuntimeRule.location(bundle, result),
        evidence={"reasons": reasons, "seconds": round(result.seconds, 1),
                  "probes": [r.to_dict() for r in result.rows][:40]},
        key="inconclusive",
    )


def probe_summary(result: Causality) -> dict[str, Any]:
    """The harness outcome as a report fact: its status, time, settings and one row per probe."""
    return {
        "status": result.status,
        "seconds": round(result.seconds, 1),
        "reasons": result.reasons[:4],
        "settings": dict(result.knobs),
        "probes": [{"scorer": r.scorer, "probe": r.probe, "status": r.status, "detail": r.detail}
                   for r in result.rows[:40]],
    }


def reconcile(findings: list[Finding], evidence: Evidence, codes: set[str] | None = None) -> list[Finding]:
    """After the runtime rules: add PG908 when inconclusive, and confirm or downgrade static
    hypotheses (PG1xx) with the runtime evidence of this bundle (asymmetric: a failure confirms any
    static finding it matches; a pass lowers only warnings, see :func:`_passed`)."""
    bundle = evidence.bundle
    result = evidence.runtime_done
    if result is None and codes is not None and "PG908" in codes:
        result = evidence.runtime
    if result is None:
        return findings
    if codes is None or "PG908" in codes:
        extra = inconclusive_finding(bundle, result)
        if extra is not None:
            findings = [*findings, extra]
    runtime_tags = {t for f in findings if f.code.startswith("PG2") and f.counts for t in f.tags}
    passed = {(r.probe) for r in result.rows if r.status == "pass"}
    spans = passed_spans(bundle, result) if result.status == "pass" else []
    out = []
    for f in findings:
        if not f.code.startswith("PG1") or not f.counts:
            out.append(f)
            continue
        tags = set(f.tags) & set(CLEARED_BY)
        if not tags:
            out.append(f)
            continue
        if result.status == "fail" and tags & runtime_tags:
            failing = [r for r in result.failures]
            summary = failing[0].detail if failing else ""
            out.append(replace(
                f, confidence=Confidence.HIGH,
                message=f"{f.message}; confirmed at runtime: {summary}",
                evidence={**f.evidence, "runtime": {"status": "fail", "probe": failing[0].probe if failing else "",
                                                    "detail": summary}},
            ))
        elif (result.status == "pass" and all(any(p in passed for p in CLEARED_BY[t]) for t in tags)
              and exercised(f, bundle, spans)):
            out.append(_passed(f, tags, result, passed))
        else:
            out.append(_undecided(f, tags, result))
    return out


def _passed(f: Finding, tags: set[str], result: Causality, passed: set[str]) -> Finding:
    """A static finding whose pattern the probes exercised without a leak.

    The run is the submission's code testifying about itself: a cheater that notices the probe
    run can behave. So a pass only turns a *hypothesis* (a warning) into a note; a static error
    keeps its severity and confidence, with the pass recorded beside it for the reader.
    """
    probes_run = sorted({p for t in tags for p in CLEARED_BY[t] if p in passed})
    details = [r.detail for r in result.rows if r.status == "pass" and r.probe in probes_run][:3]
    if f.severity is Severity.ERROR:
        return replace(f, evidence={**f.evidence, "runtime": {
            "status": "pass_not_clearing", "probes": probes_run, "details": details,
            "why": "a runtime pass never clears a static error (the submission's own code ran the probes)"}})
    return replace(
        f, severity=Severity.NOTE, confidence=Confidence.LOW,
        message=f"{f.message}; pattern present, but the runtime probes found no leak "
                f"({', '.join(probes_run)} passed on the script's own evaluation)",
        evidence={**f.evidence, "runtime": {"status": "pass", "probes": probes_run, "details": details}},
    )


def passed_spans(bundle: Bundle, result: Causality) -> list[tuple[int, int]]:
    """Line ranges of the main script's evaluation functions that the probes passed on."""
    main = bundle.main_source
    tree = main.ast_tree if main is not None else None
    if tree is None:
        return []
    scorers = {r.scorer.rsplit(".", 1)[-1] for r in result.rows if r.status == "pass"}
    return [(node.lineno, node.end_lineno or node.lineno) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in scorers]


def exercised(f: Finding, bundle: Bundle, spans: list[tuple[int, int]]) -> bool:
    """Whether the finding's line lies in one of ``spans`` (see :func:`passed_spans`).

    A pass speaks only for the code it ran: a static finding in a function the shrunk run never
    called (an n-gram eval switched off by default, a helper outside the scorer) keeps its level.
    """
    main = bundle.main_source
    loc = f.location
    if main is None or loc.line is None or loc.path != main.path:
        return False
    if (loc.decoded_from is None) != (main.origin is None):
        return False  # the finding and the run are not in the same text (wrapper vs payload)
    return any(start <= loc.line <= end for start, end in spans)


def _undecided(f: Finding, tags: set[str], result: Causality) -> Finding:
    """A hypothesis the probes neither confirmed nor cleared keeps its level, with the probe outcomes
    that speak to it attached, so a reader sees why the runtime pass did not settle it."""
    probes = {p for t in tags for p in CLEARED_BY[t]}
    outcome = {status: sorted({r.probe for r in result.rows if r.probe in probes and r.status == status})
               for status in ("pass", "fail", "inconclusive")}
    outcome = {k: v for k, v in outcome.items() if v}
    if not outcome:
        return f
    return replace(f, evidence={**f.evidence, "runtime": {"status": "undecided", **outcome,
                                                          "harness": result.status}})

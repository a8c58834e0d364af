"""Runs the checks of the catalogue over submissions and collects their findings.

The engine is the only place that calls checks. For each bundle it builds the evidence
(:class:`auditor.evidence.Evidence`), hands it to every selected rule and collects what they
return. Each check runs inside a guard: an internal error becomes a PG907 finding naming the
check, and the other checks go on. The order is static (one Python source at a time), records
(the whole folder), then runtime (only when asked for: it executes submission code in a
sandbox). The report's per-seed table and facts come from the evidence, whichever rules ran.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from auditor import registry
from auditor.bundle import Bundle
from auditor.discover import discover
from auditor.evidence import AuditContext, Evidence
from auditor.findings import Finding, Location, Status
from auditor.problems import tool_finding
from auditor.results import Report, SubmissionReport
from auditor.rule import BundleRule, Rule
from auditor.source import MAX_PARSE_BYTES, PythonSource, Role
from auditor.suppress import Waiver, apply_suppressions

if TYPE_CHECKING:
    from auditor.runtime.sandbox import Limits
    from auditor.static.base import StaticRule


@dataclass
class AuditOptions:
    """What to run and how."""

    select: list[str] | None = None  # code prefixes to run (all when None)
    ignore: list[str] | None = None  # code prefixes to skip
    runtime: bool = False  # run the runtime causality harness (executes submission code)
    debug: bool = False  # let internal errors of checks propagate
    waivers: Sequence[Waiver] = field(default_factory=tuple)
    #: Honour ``# pgolf-audit: ignore[...]`` comments in the audited code.
    inline_suppressions: bool = True
    #: The significance test of the records checks (``rule``, ``baseline``, ``baseline_value``,
    #: ``source``; see :class:`auditor.evidence.AuditContext`).
    significance: dict[str, Any] = field(default_factory=dict)
    #: Settings, limits and a progress callback of the runtime harness (the causality command).
    runtime_settings: dict[str, Any] = field(default_factory=dict)
    runtime_limits: Limits | None = None
    runtime_progress: Callable[[float, dict[str, Any] | None], None] | None = None

    def context(self) -> AuditContext:
        """What the evidence of every bundle is told from outside the submission."""
        return AuditContext(significance=self.significance, runtime=self.runtime,
                            runtime_settings=self.runtime_settings, runtime_limits=self.runtime_limits,
                            runtime_progress=self.runtime_progress)


def audit(paths: Iterable[str | Path], options: AuditOptions | None = None, root: Path | None = None) -> Report:
    """Audit the given paths (records folders, scripts), shown relative to ``root``.

    Raises ``UsageError`` for missing paths.
    """
    return audit_bundles(discover(paths, root), options)


def audit_bundles(bundles: Iterable[Bundle], options: AuditOptions | None = None) -> Report:
    """Audit bundles built elsewhere (e.g. from a git tree)."""
    options = options or AuditOptions()
    return Report(submissions=[audit_bundle(b, options) for b in bundles])


def _guarded(rule: Rule, call: Callable[[], Iterable[Finding]], where: str, debug: bool) -> list[Finding]:
    try:
        return list(call())
    except Exception as exc:  # a bug in a check must not end the audit
        if debug:
            raise
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        at = f"{Path(frame.filename).name}:{frame.lineno}" if frame else "?"
        return [
            tool_finding(
                "PG907",
                f"check {rule.CODE} {rule.NAME} failed on this submission ({type(exc).__name__}: {exc}); "
                "what it would have found is unknown",
                Location(where),
                evidence={"check": rule.CODE, "error": f"{type(exc).__name__}: {exc}", "at": at},
                key=rule.CODE,
            )
        ]


def _unparsed(source: PythonSource) -> Finding:
    error = source.parse_error or "unknown error"
    too_large = len(source.text) > MAX_PARSE_BYTES
    code = "PG903" if too_large else "PG901"
    what = "decoded payload" if source.is_decoded else "file"
    message = f"this {what} was not analysed: {error}" if too_large else f"this {what} does not parse: {error}"
    return tool_finding(
        code,
        message,
        Location(source.path, decoded_from=source.origin),
        evidence={"error": error, "role": source.role.value},
        key=("decoded:" if source.is_decoded else "") + error,
    )


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for f in findings:
        ident = (f.fingerprint, f.location.line, f.location.physical_line, f.message)
        if ident not in seen:
            seen.add(ident)
            out.append(f)
    return out


def _reconciled(findings: list[Finding], evidence: Evidence, codes: set[str], debug: bool) -> list[Finding]:
    """Runtime evidence supersedes static hypotheses with the same tag (auditor.runtime.base)."""
    bundle = evidence.bundle
    try:
        from auditor.runtime.base import reconcile

        return reconcile(findings, evidence, codes)
    except Exception as exc:  # the runtime step must not end the audit
        if debug:
            raise
        return [*findings, tool_finding(
            "PG907", f"the runtime reconciliation step failed ({type(exc).__name__}: {exc})", Location(bundle.path),
            evidence={"check": "runtime", "error": f"{type(exc).__name__}: {exc}"}, key="runtime-reconcile")]


def _check_static(rule: StaticRule, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
    # the submission's program (with its scored configuration) is attached to the source
    # before any rule reads the source's data flow or statuses
    evidence.static(source)
    return rule.check(evidence, source)


def audit_bundle(bundle: Bundle, options: AuditOptions) -> SubmissionReport:
    """Run every selected check on one submission."""
    return audit_evidence(Evidence(bundle, options.context()), options)


def audit_evidence(evidence: Evidence, options: AuditOptions) -> SubmissionReport:
    """Run every selected check on the evidence of one submission and build its report."""
    bundle = evidence.bundle
    codes = registry.select(options.select, options.ignore)
    rules = {code: registry.get(code) for code in sorted(codes)}
    findings: list[Finding] = [f for f in bundle.problems if f.code in codes]
    checked: list[str] = []

    # the catalogue is loaded by path: its classes are typed by their KIND, not statically
    static_rules = [cast("StaticRule", cls()) for cls in rules.values() if cls.KIND == "static"]
    for source in bundle.sources:
        wanted = [rule for rule in static_rules if source.role in rule.ROLES]
        if not wanted and source.role is not Role.MAIN:
            continue  # nothing looks at it: do not pay for parsing it
        if source.parse_error is not None:
            finding = _unparsed(source)
            if finding.code in codes:
                findings.append(finding)
            continue
        for rule in wanted:
            findings.extend(_guarded(rule, partial(_check_static, rule, evidence, source), source.path, options.debug))
    if bundle.sources:
        checked.extend(f"{r.CODE} {r.NAME}" for r in static_rules)

    kinds = ["records"] + (["runtime"] if options.runtime else [])
    for kind in kinds:
        for cls in rules.values():
            if cls.KIND != kind:
                continue
            bundle_rule = cast("BundleRule", cls())
            findings.extend(_guarded(bundle_rule, partial(bundle_rule.check, evidence), bundle.path, options.debug))
            checked.append(f"{cls.CODE} {cls.NAME}")

    if options.runtime:
        findings = _reconciled(findings, evidence, codes, options.debug)
    findings = apply_suppressions(_dedupe(findings), bundle, options.waivers, options.inline_suppressions)
    seeds, facts, failed = _report_data(evidence, options.debug)
    findings.extend(failed)
    return SubmissionReport(
        path=bundle.path,
        findings=findings,
        seeds=seeds,
        checked=checked,
        files=[f.path for f in bundle.files],
        head_sha=bundle.head_sha,
        pr=bundle.pr,
        facts=facts,
    )


def _report_data(evidence: Evidence, debug: bool) -> tuple[list[dict[str, Any]], dict[str, Any], list[Finding]]:
    """The per-seed table and the facts of the report; a PG907 instead when building them failed."""
    try:
        return evidence.seeds(), evidence.facts(), []
    except Exception as exc:  # an analysis bug must not end the audit
        if debug:
            raise
        error = f"{type(exc).__name__}: {exc}"
        return [], {}, [tool_finding(
            "PG907", f"the per-seed table and facts of the report could not be built ({error})",
            Location(evidence.bundle.path), evidence={"check": "report", "error": error}, key="report-data")]


def count_at_or_above(report: Report, level: str) -> int:
    """How many findings that count are at or above a severity level (``error``/``warning``/``note``)."""
    from auditor.findings import Severity

    threshold = Severity(level).rank
    return sum(1 for f in report.findings if f.status is Status.ACTIVE and f.severity.rank >= threshold)

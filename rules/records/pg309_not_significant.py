"""PG309 not-significant."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.rule import BundleRule


class NotSignificant(BundleRule):
    """
    ## What it does
    Tests a record claim against the previous record, from the per-seed scores in the
    logs (not from submission.json), by one of two rules chosen with `--significance`:

    - `readme` (default): the improvement is at least 0.005 nats per token at p < 0.01,
      one-sided (the margin is converted to bpb with the submission's own bytes per
      token);
    - `welch`: the rule maintainers applied when they rebuilt the leaderboard (#1902): a
      one-sided Welch t-test against the previous record's per-seed scores at p < 0.25.

    The baseline is given with `--baseline FOLDER` (its logs are read), `--baseline-seeds
    1.0612,1.0621,…` or `--baseline-bpb 1.0611` (one-sample test). Without a baseline the
    check does not run; the report says which rule it used and the p-value. Without scipy
    installed it says "scipy not installed" and decides nothing.

    ## Why is this bad?
    A new record must "beat the existing SOTA by at least 0.005 nats" with "enough run logs
    to show at p < 0.01". Seed-to-seed noise is 0.0003–0.0009 bpb, so a single lucky seed
    or a tiny margin proves nothing; #1902 excluded "p-fail rows" and "single-seed
    tiny-margin rows".

    ## Example
    Three seeds averaging 1.0605 against a record at 1.0611 (n = 3): 0.0006 bpb better,
    short of the README margin (0.0019 bpb at sp8192's 3.73 bytes per token).

    ## Use instead
    Report at least three seeds of the same configuration, and claim a record only when the
    improvement passes the test.

    ## References
    - README: "beat the existing SOTA by at least 0.005 nats … p < 0.01".
    - R-SIG (#1902: p < 0.25 against the previous frontier row).
    """

    CODE = "PG309"
    NAME = "not-significant"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-SIG", "#1902")
    TAGS = ("significance",)
    # Needs a baseline from the command line: tests/records/test_significance.py runs it.
    TESTED_IN = ("tests/records/test_significance.py",)

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        test = evidence.significance
        result = test.result
        if not a.record_track or not test.baseline_given:
            return
        where = Location(a.claims.rel) if a.claims else Location(evidence.bundle.path)
        evidence_ = test.summary() | {"per_seed": test.per_seed}
        if not result.decided:
            yield self.finding(
                f"significance not tested: {result.describe()}", where, evidence=evidence_,
                severity=Severity.NOTE, key="untested",
            )
        elif not result.passed:
            yield self.finding(
                f"the claim is not shown to beat the baseline ({test.source or 'given'}): {result.describe()}",
                where, evidence=evidence_, key="not-significant",
            )

"""PG201 nondeterministic-scores."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.runtime.base import RuntimeRule, evidence_of


class NondeterministicScores(RuntimeRule):
    """
    ## What it does
    Runs the submission's evaluation twice on the same token stream, from the same state and
    random seeds, and reports it when the per-token NLLs differ by more than 1e-4 nats. The
    largest difference is the noise floor that sets the tolerance of every other probe.

    ## Why is this bad?
    A score that changes from run to run on identical input depends on something other than
    the artifact and the tokens: wall-clock time, unseeded randomness, the order of threads.
    It cannot be reproduced ("Any non-reproducible results can be disqualified"), and a
    selection over several such runs is a min over passes (C4 of issue #1017).

    ## Example
    ```python
    noise = np.random.default_rng()  # unseeded: a different score every run
    nll = nll + torch.from_numpy(noise.normal(0, 0.01, nll.shape))
    ```

    ## Use instead
    Seed every generator from the run's seed and keep the evaluation free of timing-dependent
    branches; the same stream must give the same score.

    ## References
    - Issue #1017, condition C4 (one left-to-right pass, no selection over runs).
    - README, "Any non-reproducible results can be disqualified".
    """

    CODE = "PG201"
    NAME = "nondeterministic-scores"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1017", "README")
    TAGS = ("causality",)
    VALID = (Valid(folder="fixtures/runtime/legal_sliding"),)
    INVALID = (Invalid(folder="fixtures/runtime/nondeterministic"),)

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        result, rows = self.rows(evidence, ("determinism",))
        for row in rows:
            yield self.finding(
                f"the evaluation {row.scorer}() gives different scores on identical input: {row.detail}",
                self.location(bundle, result, row.scorer),
                evidence=evidence_of(row, result),
                key=row.scorer,
            )

"""PG204 state-updated-before-scoring."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.runtime.base import RuntimeRule, evidence_of


class StateUpdatedBeforeScoring(RuntimeRule):
    """
    ## What it does
    For an evaluation that adapts chunk by chunk (test-time training, caches), keeps the
    first targets of a chunk and changes the rest of the chunk and everything after it; the
    NLL of those first targets must not move. If it does, the state that scored chunk c had
    already learned from chunk c.

    ## Why is this bad?
    The score of x_t must be fixed before x_t (or anything after it) enters any state:
    weights, adapters, caches, counts (condition C3 of issue #1017, "score-first"). Training
    on a chunk and then scoring it is pre-evaluation TTT, which the README forbids.

    ## Example
    ```python
    for chunk in chunks:
        train_on(model, chunk)        # adapts on the tokens ...
        loss_sum += score(model, chunk)  # ... it then scores
    ```

    ## Use instead
    Score the chunk under `torch.no_grad()` first and add its loss, then train on it; never
    train on the last chunk.

    ## References
    - Issue #1017, condition C3 (score before update).
    - Issue #402 and #677: TTT is valid only if each token is scored before the adapter
      trains on it; README, test-time training on tokens already evaluated.
    """

    CODE = "PG204"
    NAME = "state-updated-before-scoring"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1017", "#402", "#677", "README")
    TAGS = ("ttt_before_score",)
    VALID = (
        Valid(folder="fixtures/runtime/legal_ttt"),
        Valid(folder="fixtures/runtime/cache_plus1_825"),
    )
    INVALID = (Invalid(folder="fixtures/runtime/ttt_before_score"),)

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        result, rows = self.rows(evidence, ("score_before_update",))
        for row in rows:
            yield self.finding(
                f"{row.scorer}() scores a chunk with state that already learned from it: {row.detail}",
                self.location(bundle, result, row.scorer),
                evidence=evidence_of(row, result),
                key=row.scorer,
            )

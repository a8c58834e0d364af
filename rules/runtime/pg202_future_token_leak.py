"""PG202 future-token-leak."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.runtime.base import RuntimeRule, evidence_of


class FutureTokenLeak(RuntimeRule):
    """
    ## What it does
    Changes every validation token after a cut and checks that the NLL of every target up to
    the cut stays the same, both when the evaluation function is replayed on its own and when
    the whole script (training, quantization, evaluation) is rerun on the changed stream.
    Cuts are taken at random, at the first scored target of windows and chunks, and one token
    either side. A moved NLL is a leak of future tokens into earlier scores; the finding says
    where it moved and by how much, and names the likely mechanism: SLOT (parameters fitted on
    the scored targets), pre-quantization TTT (the model adapted on validation data before it
    is scored: only the whole-pipeline rerun moves), TTT that trains before it scores, two-pass
    rescoring, or attention that sees the future.

    A replay keeps what the script computed from the stream before it called the evaluation
    (n-gram hints, gates, per-position tables passed in). So the whole script is also rerun
    with the target of one position changed, and that target's NLL is compared with a replay
    of the evaluation on the same stream, fed the inputs computed for the original one: with
    the same prefix, a causal scorer gives both the same NLL. A difference means those inputs
    read the token being scored (the within-word and word-start gates of #1967).

    ## Why is this bad?
    At position t the predictive distribution may depend only on the artifact and the tokens
    before t (condition C1 of issue #1017); a score that improves when later tokens change
    was partly computed from them. That is training on the validation set before evaluating
    on it, which the README forbids.

    ## Example
    ```python
    delta = torch.zeros(1, 1, dim, requires_grad=True)       # SLOT
    for _ in range(steps):
        loss = F.cross_entropy(logits(h + delta)[mask], y[mask])  # fits the scored targets
        loss.backward(); opt.step()
    nll = F.cross_entropy(logits(h + delta), y, reduction="none")  # then scores them
    ```

    ## Use instead
    Score each token with state built from earlier tokens only: score a chunk first (under
    `torch.no_grad()`), then adapt on it; fit nothing on the positions being scored.

    ## References
    - Issue #1017, conditions C1 (causal dependence) and C3 (score before update).
    - Issue #677 and the README: test-time training only on tokens already evaluated.
    - #1240 (the SLOT flip test), #1376 (pre-quantization TTT, closed), #959 (two-pass rescoring).
    - #1967 (hints precomputed outside the timer, gated on the target: review of 2026-04-30).
    """

    CODE = "PG202"
    NAME = "future-token-leak"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1017", "#677", "#1240", "#1376", "#1967", "README")
    TAGS = ("causality", "slot", "prequant_ttt", "ttt_before_score")
    VALID = (
        Valid(folder="fixtures/runtime/legal_sliding"),
        Valid(folder="fixtures/runtime/legal_ttt"),
        Valid(folder="fixtures/runtime/cache_plus1_825", note="the +1 slice of PR #825 is not a leak"),
        Valid(folder="fixtures/runtime/legal_precomputed_hints", note="hints precomputed from each prefix"),
    )
    INVALID = (
        Invalid(folder="fixtures/runtime/slot"),
        Invalid(folder="fixtures/runtime/prequant_ttt"),
        Invalid(folder="fixtures/runtime/two_pass_rescore"),
        Invalid(folder="fixtures/runtime/noncausal_attention"),
        Invalid(folder="fixtures/runtime/ttt_before_score"),
        Invalid(folder="fixtures/runtime/precomputed_target_gate"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        result, rows = self.rows(evidence, ("future", "pipeline_future", "pipeline_substitution"))
        replay_failed = {r.scorer for r in rows if r.probe == "future"}
        text = bundle.main_source.text if bundle.main_source is not None else ""
        seen: set[str] = set()
        for row in sorted(rows, key=lambda r: (r.probe != "future", r.scorer)):
            if row.probe == "pipeline_future" and row.scorer in replay_failed:
                continue  # the replay already located it
            if row.scorer in seen and row.probe == "pipeline_future":
                continue
            seen.add(row.scorer)
            tag, what = self.mechanism(row, text, replay_failed, result)
            moved = ("the NLL of a target moves with that target's own token" if row.probe == "pipeline_substitution"
                     else "NLLs of earlier targets move when later tokens change")
            finding = self.finding(
                f"{moved} ({what}): {row.detail}",
                self.location(bundle, result, row.scorer),
                evidence={**evidence_of(row, result), "likely": what},
                key=f"{row.probe}:{row.scorer}",
            )
            yield replace(finding, tags=(tag,))

    @staticmethod
    def mechanism(row, text: str, replay_failed: set[str], result) -> tuple[str, str]:
        name = row.scorer.lower()
        if row.probe == "pipeline_substitution":
            return "causality", ("values the script computed from the validation stream before calling the evaluation "
                                 "(hints, gates, tables) read the token they help score")
        if row.probe == "pipeline_future":
            return "prequant_ttt", ("the model or state was adapted on validation tokens before this evaluation "
                                    "scored them (e.g. pre-quantization TTT)")
        if "slot" in name or re.search(r"SLOT_ENABLED|slot_steps|def [a-z_]*slot", text):
            return "slot", "SLOT-style parameters fitted on the scored targets"
        if "rescore" in name or "two_pass" in name or "twopass" in name:
            return "causality", "a second pass re-scores tokens with state built from later tokens"
        if "ttt" in name:
            return "ttt_before_score", "test-time training on tokens before they are scored"
        return "causality", "the score of a target depends on later tokens"

"""PG203 unnormalized-scores."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.runtime.base import RuntimeRule, evidence_of


class UnnormalizedScores(RuntimeRule):
    """
    ## What it does
    At a scored position t, sets x_t to every token v of the vocabulary in turn (everything
    before and after t unchanged), reruns the submission's own evaluation and reads the NLL it
    gives v. The probabilities exp(-NLL_t(v)) must sum to at most 1 (BOS is left out, since it
    would move a document boundary). Positions are the first scored targets of chunks and a
    few others; hashed tables are shrunk in proportion to the short stream so they are as full
    as on the real validation set, where collisions happen.

    A function that turns per-token losses into the claimed bits per byte outside any tensor
    (a pure-Python byte mixture) is probed as a black box: called on the first k targets, then
    on k + 1 with target k set to each token v of one byte or more and its loss to that of a
    model uniform over them (then one sharpened towards what it favoured), the difference of
    its figures times the canonical bytes is the NLL it charges v. Mixed with any
    distribution, such a model gives a sum of at most 1.

    ## Why is this bad?
    The scored distribution must be a full, normalized distribution over the vocabulary, fixed
    before x_t is seen (condition C2 of issue #1017). A scorer whose probabilities sum above 1
    looks at the token it scores: an n-gram cache that hashes the target into its lookup key
    (the #779 family: "only reweights the correct token"), a mixer gated on a property of the
    target, a cache updated with x_t before scoring it, or a token's probability spread over
    its bytes (p ** (1/n) each) and mixed byte by byte with a byte model (the #1872 cluster,
    excluded under C2 in #1902). Its bits per byte is not a compression rate.

    ## Example
    ```python
    full_key = (ctx_hash ^ (target * prime)) & mask            # the target is in the key
    p_ngram = np.minimum(full_counts[full_key], ctx_counts[ctx_key]) / ctx_counts[ctx_key]
    nll = -np.log((1 - alpha) * p_model[target] + alpha * p_ngram)  # only the target's mass
    ```

    ## Use instead
    Compute the n-gram distribution for every token of the vocabulary from context-keyed
    counts and mix whole distributions; gate only on what is known before x_t.

    ## References
    - Issue #1017, condition C2 (a full normalized distribution).
    - #779 and #982 (hashed caches closed for looking ahead to the target), #886, #1147.
    - #1420 / #1967 (experts gated on the target token).
    - #1872, #1902 (byte-level PPM mixtures excluded under C2).
    """

    CODE = "PG203"
    NAME = "unnormalized-scores"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1017", "#779", "#982", "#886", "#1147", "#1872", "#1902")
    TAGS = ("target_in_key", "target_gated", "bpb_accounting")
    VALID = (
        Valid(folder="fixtures/runtime/legal_sliding"),
        Valid(folder="fixtures/runtime/cache_plus1_825"),
        Valid(folder="fixtures/runtime/legal_token_mixture_rescorer"),
    )
    INVALID = (
        Invalid(folder="fixtures/runtime/ngram_target_in_key"),
        Invalid(folder="fixtures/runtime/cache_plus1_leak"),
        Invalid(folder="fixtures/runtime/target_gated_mixer"),
        Invalid(folder="fixtures/runtime/byte_spread_mixture"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        result, rows = self.rows(evidence, ("substitution",))
        text = bundle.main_source.text if bundle.main_source is not None else ""
        gated = bool(re.search(r"tilt|hint|gate[d_]|agree", text, re.I)) and not re.search(r"bucket", text, re.I)
        for row in rows:
            # a rescorer (a byte-level mixture over per-token losses) is the #1872 cluster
            tags = ("bpb_accounting",) if row.evidence.get("rescorer") else \
                ("target_gated",) if gated else ("target_in_key",)
            finding = self.finding(
                f"the scores of {row.scorer}() are not a normalized distribution: {row.detail}",
                self.location(bundle, result, row.scorer),
                evidence=evidence_of(row, result),
                key=row.scorer,
            )
            yield replace(finding, tags=tags)

"""PG311 partial-validation."""

from __future__ import annotations

import math
from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.analysis import SeedRow
from auditor.records.base import at_log, b, seed_label
from auditor.rule import BundleRule, Invalid, Valid

LN2 = math.log(2.0)


def implied_bytes(row: SeedRow) -> float | None:
    """Bytes the score was divided by: loss / (bpb · ln 2) × the run's val_tokens."""
    score, tokens = row.score, row.run.val_tokens
    if score is None or score.loss is None or not score.bpb or tokens is None:
        return None
    return score.loss / (score.bpb * LN2) * tokens.value

_SUBSET_MIX = "ppm_mix bytes=10982035 mix_bpb=1.000307 ppm_only=2.380212 nn_only=1.077557\nppm_mix_time:47.1s subset=3000000 tokens\n"


class PartialValidation(BundleRule):
    """
    ## What it does
    Checks that the score a seed reports covers the whole validation set: the scored line's
    own counts (`bytes=…`, `tokens=…`, `subset=… tokens`), the run's `val_tokens`, and the
    bytes the score divides by (`val_loss / (val_bpb · ln 2) × val_tokens`, ~151.08 M for the
    full set) must not describe a part of it. A run on the first 10,000 documents (`val_tokens: 9662464`,
    the default of a local CaseOps preparation) or a mixture scored on a 3 M- or 8 M-token
    subset is reported with the share of the set it covers.

    ## Why is this bad?
    "Validation always runs on the full fineweb_val_* split, which is the fixed
    first-50k-document set." A bpb measured on a subset is not comparable: PR #1835 reported
    a PPM mixture measured on 3 M tokens as its full-validation score, #1854 scored 10,000
    documents (17 % of the set). On the non-record track (smoke runs, studies) it is a note.

    ## Example
    ```text
    ppm_mix bytes=10982035 mix_bpb=1.000307
    ppm_mix_time:47.1s subset=3000000 tokens
    ```

    ## Use instead
    Score every token of the full validation set in the pass you report; keep subset
    measurements as diagnostics and say so.

    ## References
    - README: validation runs on the full fixed 50k-document set.
    - R-FULL-VAL; PR #1785, #1835, #1854, #2039.
    """

    CODE = "PG311"
    NAME = "partial-validation"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-FULL-VAL", "#1835", "#1854")
    TAGS = ("bpb_accounting",)
    VALID = (Valid(files=S.folder({"train_seed42.log": S.modern_log(42)}, {"val_bpb": 1.0612})),)
    INVALID = (
        Invalid(files=S.folder({"train_seed42.log": S.modern_log(42, val_tokens=9_662_464)}, {"val_bpb": 1.0612})),
        Invalid(files=S.folder({"train_seed0.log": S.modern_log(0, val_tokens=9_661_440, bytes_per_token=3.09967)},
                               {"val_bpb": 1.0612}),
                note="10,000 documents at another sequence length: 29.9 M bytes scored"),
        Invalid(files=S.folder({"train_seed1337.log": S.modern_log(1337, after_eval=_SUBSET_MIX)},
                               {"val_bpb": 1.0003, "seed_results": {"1337": {"val_bpb": 1.000307}}}),
                note="the claimed score is a mixture measured on a 3 M-token subset"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        track_severity = Severity.ERROR if a.record_track else Severity.NOTE
        for row in a.rows:
            severity = track_severity if row.evidence else Severity.NOTE
            run = row.run
            tokens = run.val_tokens
            score = row.score
            if tokens is not None and tokens.value in C.SUBSET_VAL_TOKENS:
                yield self.finding(
                    f"{seed_label(row)}: val_tokens {b(tokens.value)} is {C.SUBSET_VAL_TOKENS[tokens.value]}, about "
                    f"{tokens.value / 47_851_520:.0%} of the validation set; the score is not a full-validation score",
                    at_log(row, tokens.line), snippet=tokens.text,
                    evidence={"seed": row.seed, "log": row.path, "line": tokens.line, "val_tokens": tokens.value},
                    key=f"tokens:{row.key}", severity=severity,
                )
                continue
            if score is None:
                continue
            share = None
            what = ""
            implied = implied_bytes(row)
            if implied is not None and implied < C.SUBSET_SHARE * C.CANONICAL_VAL_BYTES:
                share = implied / C.CANONICAL_VAL_BYTES
                what = f"{b(tokens.value)} tokens worth {b(implied)} bytes (val_tokens, line {tokens.line})"  # type: ignore[union-attr]
            elif score.scored_bytes is not None and score.scored_bytes < C.SUBSET_SHARE * C.CANONICAL_VAL_BYTES:
                share = score.scored_bytes / C.CANONICAL_VAL_BYTES
                what = f"{b(score.scored_bytes)} bytes"
            elif score.scored_tokens is not None and tokens is not None and score.scored_tokens < C.SUBSET_SHARE * tokens.value:
                share = score.scored_tokens / tokens.value
                what = f"{b(score.scored_tokens)} of {b(tokens.value)} tokens"
            if share is None:
                continue
            yield self.finding(
                f"{seed_label(row)}: the score {score.bpb} ({score.raw_label}) is measured on {what}, "
                f"{share:.0%} of the validation set",
                at_log(row, score.line), snippet=score.text,
                evidence={"seed": row.seed, "log": row.path, "line": score.line, "stage": score.raw_label,
                          "scored_bytes": score.scored_bytes, "scored_tokens": score.scored_tokens,
                          "val_tokens": tokens.value if tokens else None, "share": round(share, 4)},
                key=f"subset:{row.key}", severity=severity,
            )

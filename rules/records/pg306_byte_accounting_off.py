"""PG306 byte-accounting-off."""

from __future__ import annotations

import math
from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.analysis import RecordsAnalysis, SeedRow
from auditor.records.base import at_log, b, seed_label
from auditor.records.logparse import Score
from auditor.rule import BundleRule, Invalid, Valid

LN2 = math.log(2.0)
#: Relative distance from a family's bytes-per-token constant that is still correct
#: (legal variants differ by < 0.005 %: sliding double count, truncated diagnostics).
BT_TOLERANCE = 0.002
#: Without the token count only B/T can be compared; a score over part of the set moves B/T a
#: little (diagnostic evals on truncated ranges, other sequence lengths), so allow 1 %.
BT_ONLY_TOLERANCE = 0.01


def run_family(row: SeedRow) -> C.Family | None:
    """The tokenizer family of one run, from its own tokenizer path (not the folder's)."""
    run = row.run
    text = str(run.tokenizer.value).lower() if run.tokenizer else ""
    if "caseops" in text or run.sidecar is not None:
        return C.family_named("caseops")
    for name, size in (("sp1024", 1024), ("sp4096", 4096), ("sp8192", 8192)):
        if f"fineweb_{size}_bpe.model" in text:
            return C.family_named(name)
    if "byte260" in text:
        return C.family_named("byte260")
    return None


def ratio_error(score: Score) -> float:
    """Relative error of loss / (bpb · ln 2) from the rounding of the printed numbers."""
    if score.loss is None or not score.loss or not score.bpb:
        return math.inf
    return 0.5 * 10 ** -score.loss_decimals / score.loss + 0.5 * 10 ** -score.decimals / score.bpb


class ByteAccountingOff(BundleRule):
    """
    ## What it does
    Recomputes the bytes per token behind each seed's score: `B/T = val_loss / (val_bpb ·
    ln 2)`. With the scored token count T the log prints, `B = B/T · T` is the byte count the
    score was divided by, and every correct count of the validation set lands at ~151.08 M
    bytes whatever the tokenizer (sp1024 151,080,362; sp4096 151,074,053; sp8192
    151,078,222; CaseOps 151,074,498). Without T, `B/T` is compared with the constant of the
    tokenizer family (sp1024 2.4359301, sp4096 3.319681, sp8192 3.726631, CaseOps
    3.157152). Explicit counts on a scoring line (`tokens=… bytes=…`) are compared too.
    Off by more than 0.5 % (1 % for B/T alone) is an error — a note on the non-record
    track, which claims no record. Correct logs agree to 0.005 %; the broken ones seen are
    1 % to 31 % off. A score over a different or partial token set shows up the same way,
    and is just as little a full-validation score.

    ## Why is this bad?
    val_bpb divides the loss by the number of UTF-8 bytes of the validation text. A
    tokenizer whose byte table counts some bytes twice (the leading-space byte, byte-
    fallback pieces as 3 bytes in Scylla #1184/#1143) or a mixture that spreads bytes its
    own way divides by too many bytes and reports a bpb that is too low. PRs #1846, #1848
    and #1865 divided by ~27 % too many bytes.

    ## Example
    ```text
    val_loader:shards pattern=./data/datasets/fineweb10B_sp4096/fineweb_val_*.bin tokens:45514752
    final_sliding_window_ttt_exact val_loss:2.56528449 val_bpb:0.87466315
    ```
    B/T = 4.2313, against 3.3193 for this sp4096 export: 192.6 M bytes instead of 151.1 M.

    ## Use instead
    Build the byte tables as the baseline does (`build_sentencepiece_luts`), or count the
    original bytes with a sidecar (CaseOps), and check that the implied byte count of the
    full validation set is ~151.08 M.

    ## References
    - README: tokenizer changes must "prove with certainty that the val_bpb is correctly
      calculated".
    - R-BPB-LUT-DOUBLE, R-BPB-BYTE-FALLBACK, R-BPB-CASEOPS-SIDECAR, R-1017-V; PR #1184, #1865.
    """

    CODE = "PG306"
    NAME = "byte-accounting-off"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-BPB-LUT-DOUBLE", "R-BPB-BYTE-FALLBACK", "R-1017-V", "#1184")
    TAGS = ("bpb_accounting",)
    VALID = (
        Valid(files=S.folder({"train_seed42.log": S.baseline_log(42)}, {"val_bpb": 1.2247})),
        Valid(files=S.folder({"train_seed42.log": S.modern_log(42)}, {"val_bpb": 1.0612}), note="CaseOps sidecar"),
        Valid(files=S.folder({"train_seed42.log": S.baseline_log(42, val_tokens=61_020_160, bytes_per_token=2.4758)},
                             {"val_bpb": 1.2247}),
              note="a custom tokenizer whose implied byte count is the canonical one"),
        Valid(files=S.folder({"train_seed1.log": (
                  "world_size: 8\nvocab_size: 4096\nval_tokens: 45508608\n"
                  "stopping_early: wallclock_cap train_time:599800ms step:5000/20000\n"
                  "Total submission size int6+brotli: 15929684 bytes\n"
                  "[ppm_mix] tokens=45508608 bytes=151074053 NN_byte=1.08755 mix=0.95214\n"
                  "final_int6_sliding_window val_loss:2.52725872 val_bpb:0.95213621 eval_time:541682ms\n")},
                  {"val_bpb": 0.95213621}),
              note="the network's loss printed beside the mixture's bpb; the run's own byte count is the canonical one"),
    )
    INVALID = (
        Invalid(files=S.folder({"train_seed300.log": S.baseline_log(300, val_tokens=45_514_752, bytes_per_token=4.2312554)},
                               {"val_bpb": 1.2247})),
        Invalid(files=S.folder({"train_seed42.log": S.baseline_log(42, bytes_per_token=2.4359301 * 1.0413)}, {"val_bpb": 1.2247}),
                note="byte-fallback pieces counted as 3 bytes: 4 % too many bytes"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        for row in a.rows:
            finding = self._ratio(a, row)
            if finding is not None:
                yield finding
            yield from self._explicit(row, a.record_track)

    def _ratio(self, a: RecordsAnalysis, row: SeedRow) -> Finding | None:
        score = row.score if row.score is not None and row.score.loss is not None else None
        if score is None:
            return None  # a mixture line without a loss: its explicit counts are checked below
        bt = score.loss / (score.bpb * LN2)  # type: ignore[operator]
        rounding = ratio_error(score)
        tokens = row.run.val_tokens.value if row.run.val_tokens else None
        family = C.family_of_tokens(tokens) or run_family(row)
        implied = bt * tokens if tokens else None
        nearest = min(family.bytes_per_token, key=lambda k: abs(bt / k - 1)) if family else None
        if implied is not None:
            if implied < C.SUBSET_SHARE * C.CANONICAL_VAL_BYTES:
                return None  # a part of the validation set: PG311 reports it
            ok = abs(implied / C.CANONICAL_VAL_BYTES - 1) <= max(C.VAL_BYTES_TOLERANCE, 3 * rounding)
            if not ok and nearest is not None and C.family_of_tokens(tokens) is not None:
                ok = abs(bt / nearest - 1) <= max(BT_TOLERANCE, 3 * rounding)  # a known export of its own
        elif nearest is not None:
            ok = abs(bt / nearest - 1) <= max(BT_ONLY_TOLERANCE, 3 * rounding)
        else:
            return None  # neither the token count nor the tokenizer is known: nothing to compare with
        if ok:
            return None
        if tokens is not None and any(at.value[0] == tokens and abs(at.value[1] / C.CANONICAL_VAL_BYTES - 1) <= C.VAL_BYTES_TOLERANCE
                                      for at in row.run.byte_counts):
            # the run prints the bytes it divides by (``tokens=N bytes=M``), and they are the
            # canonical ones: a line that pairs one predictor's loss with a mixture's bpb says
            # nothing more about the denominator
            return None
        evidence = {
            "seed": row.seed, "log": row.path, "line": score.line, "stage": score.raw_label,
            "val_loss": score.loss, "val_bpb": score.bpb, "bytes_per_token": round(bt, 7),
            "family": family.name if family else None, "family_bytes_per_token": nearest,
            "val_tokens": tokens, "val_tokens_line": row.run.val_tokens.line if row.run.val_tokens else None,
            "implied_bytes": round(implied) if implied else None, "canonical_bytes": C.CANONICAL_VAL_BYTES,
        }
        if implied is not None:
            off = implied / C.CANONICAL_VAL_BYTES - 1
            what = (f"the score divides by {b(implied)} bytes ({bt:.5f} bytes per token x {b(tokens)} tokens), "
                    f"{off:+.1%} off the ~151.08 M bytes of the validation set")
        else:
            off = bt / nearest - 1  # type: ignore[operator]
            what = f"{bt:.5f} bytes per token, {off:+.1%} off the {family.name} constant {nearest}"  # type: ignore[union-attr]
        return self.finding(
            f"{seed_label(row)}: {what}: the bytes are not counted the canonical way, or the score is not over the "
            "canonical validation tokens" + ("" if a.record_track else " (non-record track)"),
            at_log(row, score.line), snippet=score.text, evidence=evidence, key=f"ratio:{row.key}",
            severity=Severity.ERROR if a.record_track and row.evidence else Severity.NOTE,
        )

    def _explicit(self, row: SeedRow, record_track: bool) -> Iterable[Finding]:
        """``tokens=N bytes=M`` on a full-validation pass must give the canonical bytes."""
        tokens_full = row.run.val_tokens.value if row.run.val_tokens else None
        severity = Severity.ERROR if record_track and row.evidence else Severity.NOTE
        for at in row.run.byte_counts:
            tokens, nbytes = at.value
            if tokens_full is None or tokens != tokens_full:
                continue
            off = nbytes / C.CANONICAL_VAL_BYTES - 1
            if abs(off) <= C.VAL_BYTES_TOLERANCE:
                continue
            yield self.finding(
                f"{seed_label(row)}: a scoring pass over all {b(tokens)} validation tokens counts {b(nbytes)} bytes, "
                f"{off:+.1%} off the ~151.08 M bytes of the validation set",
                at_log(row, at.line), snippet=at.text,
                evidence={"seed": row.seed, "log": row.path, "line": at.line, "tokens": tokens, "bytes": nbytes,
                          "canonical_bytes": C.CANONICAL_VAL_BYTES},
                key=f"explicit:{row.key}:{at.line}", severity=severity,
            )

"""Numbers the records checks compare against, with where each one comes from.

Every constant here was read from the challenge README or from logs of accepted records
(see the project's research notes on the pipeline, sections 1.3, 2.5, 3.5 and 5.6).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The artifact cap: code bytes + compressed model bytes, decimal (README FAQ).
ARTIFACT_CAP = 16_000_000

#: Training budget in seconds, and the overshoot accepted records show (the loop stops after
#: the step that crosses the cap: 600,038 ms in the baseline, up to ~600.4 s in later records).
TRAIN_BUDGET_S = 600.0
TRAIN_TOLERANCE_S = 0.4

#: Evaluation budget in seconds, per scored evaluation pass on 8xH100 (README; PR #1972).
EVAL_BUDGET_S = 600.0

#: The standard hardware: 8 GPUs of the H100 SXM kind.
STANDARD_WORLD_SIZE = 8

#: GPU models at least as fast as an H100 SXM: a run on fewer of them that is already too slow
#: after perfect scaling to 8 GPUs would be too slow on 8xH100 too.
FAST_GPUS = ("H100", "H200", "H800", "B200", "B100", "GB200", "GB300", "B300")
#: When the hardware is slower or unknown, the projection to 8xH100 allows this speed-up per
#: GPU before calling a long evaluation a violation (an A100 is ~2-3x slower than an H100).
UNKNOWN_GPU_ALLOWANCE = 4.0

#: Raw UTF-8 bytes of the scored validation set: every correct byte count lands here,
#: whatever the tokenizer (sp1024 151,080,362; sp4096 151,074,053; sp8192 151,078,222;
#: CaseOps sidecar 151,074,498; raw text 151,073,604-151,074,309 in review threads).
CANONICAL_VAL_BYTES = 151_077_000
#: Relative distance from CANONICAL_VAL_BYTES within which a byte count is correct. Correct
#: counts differ by < 0.01 %; the broken ones seen differ by 0.9 % (PPM byte spreading) to 31 %.
VAL_BYTES_TOLERANCE = 0.005
#: Below this share of the validation bytes a score is a subset score, not a full-val score.
SUBSET_SHARE = 0.9


@dataclass(frozen=True)
class Family:
    """A tokenizer + validation export: its scored token counts and bytes per token (B/T)."""

    name: str
    vocab: int | None
    val_tokens: tuple[int, ...]
    bytes_per_token: tuple[float, ...]
    note: str = ""


#: Known tokenizer families (pipeline notes 1.3 and 2.5). ``bytes_per_token`` are
#: val_loss / (val_bpb * ln 2) of accepted records: plain, sliding and diagnostic variants.
FAMILIES = (
    Family("sp1024", 1024, (62_021_632, 62_013_440, 61_997_056), (2.4359301, 2.4359237),
           "SentencePiece 1024, 50k validation documents"),
    Family("sp1024-v0", 1024, (63_779_840,), (2.4423038,), "the first sp1024 export (NaiveBaseline only)"),
    Family("sp4096", 4096, (45_508_608, 45_514_752), (3.319681, 3.319252), "SentencePiece 4096 (HF and self-exported)"),
    Family("sp8192", 8192, (40_540_160,), (3.726631, 3.726751), "SentencePiece 8192"),
    Family("caseops", 8192, (47_851_520, 47_853_343, 47_853_344), (3.157152, 3.157357),
           "SentencePiece 8192 over the lossless CaseOps transform, byte sidecar"),
    Family("byte260", 260, (151_130_112,), (0.99967,), "one token per byte (+BOS)"),
)

#: The 10,000-document validation subset written by a local CaseOps preparation with its
#: default ``--val-docs 10000`` (PR #1854, #2039): 17 % of the validation set.
SUBSET_VAL_TOKENS = {9_662_464: "the first 10,000 validation documents (a local prep default)"}

#: Train shard counts that fingerprint a local CaseOps preparation which put validation
#: documents into training (Issue #2127; PR #2130, #2109, #1881): 10M-token shards of all
#: documents after the first 10,000, i.e. including 40,000 of the 50,000 validation documents.
LEAKY_TRAIN_SHARDS = {1499: "local CaseOps preparation with --val-docs=10000 (Issue #2127)",
                      1502: "local CaseOps preparation with --val-docs=10000 (Issue #2127)"}


def family_of_tokens(tokens: int | None) -> Family | None:
    """The family whose scored validation token count this is."""
    if tokens is None:
        return None
    for family in FAMILIES:
        if tokens in family.val_tokens:
            return family
    return None


def family_named(name: str | None) -> Family | None:
    for family in FAMILIES:
        if family.name == name:
            return family
    return None

"""PG307 val-data-fingerprint."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.base import at_log, seed_label
from auditor.rule import BundleRule, Invalid, Valid

_VAL_CALIBRATION = "gptq:collecting hessians batches=64 source=val\n"
_README_VAL = "# Val-trained run\n\nWe train on the validation shard for two epochs, then quantize.\n"
_README_LEGAL = (
    "# Legal TTT\n\n"
    "- No training on validation data: training reads only `fineweb_train_*.bin`.\n"
    "- The model never trains on the validation set before it is scored.\n"
    "> \"You can't cheat by training on the validation set before you evaluate on the validation set.\"\n\n"
    "Score-first TTT trains on validation chunks after scoring them. We trained on 8B tokens, then evaluated on "
    "the validation set.\n"
)


class ValDataFingerprint(BundleRule):
    """
    ## What it does
    Looks in the logs for fingerprints of validation data in training:

    - `train_shards: 1499` (or 1502): the shard count of a local CaseOps preparation that
      kept its default `--val-docs 10000`, so that training starts at document 10,000 and
      contains 40,000 of the 50,000 validation documents (Issue #2127), while the run is
      scored on the full 50,000 (a run scored on its own first 10,000 documents did not train
      on them; PG311 reports that it is a partial score). The canonical data has 80 training
      shards;
    - GPTQ calibrated on validation data (`source=val`), reported as a warning: it is
      disputed rather than ruled;
    - the submission's own statement that it trains on validation data: a README sentence
      whose verb is "train" (or "fine-tune") and whose object is the validation shard,
      split, set, data or files ("we train on the validation shard", "pre-quant TTT trains
      on validation data before quantization"), or a `TRAIN_FILES` / `"train_files"`
      setting naming `fineweb_val_*`. Negated sentences ("no training on validation data"),
      quotations of the rules and score-first test-time training (legal: it trains only on
      tokens already scored) are not such statements.

    ## Why is this bad?
    "You CANNOT access validation data during training." A model trained on most of the
    documents it is then scored on reports a bpb that is not compression. Maintainers
    excluded PR #2130 "due the train/validation document overlap fingerprint", and #2018.

    ## Example
    ```text
    train_shards: 1499
    val_tokens: 47851520
    ```

    ## Use instead
    Use the canonical data (`romeerp/parameter-golf-caseops-v1`, 50,000 validation
    documents and a disjoint training split), or run the preparation with
    `--val-docs 50000`; calibrate GPTQ on training or self-generated data.

    ## References
    - README: no validation data during training.
    - R-TRAIN-VAL-OVERLAP (Issue #2127; #2146 excludes #2130), R-NO-VAL-IN-TRAIN.
    """

    CODE = "PG307"
    NAME = "val-data-fingerprint"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "R-TRAIN-VAL-OVERLAP", "#2127", "#2130")
    TAGS = ("val_in_train",)
    VALID = (
        Valid(files=S.folder({"train_seed42.log": S.modern_log(42, train_shards=80)}, {"val_bpb": 1.0612})),
        Valid(files=S.folder({}, {"val_bpb": 1.2247}, extra={"README.md": _README_LEGAL}),
              note="negations, quotations of the rules and score-first TTT are not declarations"),
    )
    INVALID = (
        Invalid(files=S.folder({"train_seed42.log": S.modern_log(42, train_shards=1499)}, {"val_bpb": 1.0612})),
        Invalid(files=S.folder({"train_seed42.log": S.baseline_log(42, extra=_VAL_CALIBRATION)}, {"val_bpb": 1.2247}),
                note="GPTQ calibrated on validation data (warning)"),
        Invalid(files=S.folder({}, {"val_bpb": 1.2247}, extra={"README.md": _README_VAL}), note="declared in the README"),
        Invalid(files=S.folder({}, {"val_bpb": 1.2247, "train_files": "./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin"}),
                note="declared in submission.json"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        for st in a.declared.val_training[:1]:
            yield self.finding(
                f"the submission states that it trains on validation data: \"{st.value!s}\"",
                Location(st.path, st.line), snippet=st.text,
                evidence={"declared_in": st.path, "line": st.line, "statement": st.text,
                          "statements": len(a.declared.val_training)},
                key=f"declared:{st.path}:{st.line}",
            )
        for row in a.rows:
            run = row.run
            shards = run.train_shards
            subset = run.val_tokens is not None and run.val_tokens.value in C.SUBSET_VAL_TOKENS
            if shards is not None and shards.value in C.LEAKY_TRAIN_SHARDS and not subset:
                yield self.finding(
                    f"{seed_label(row)}: train_shards {shards.value}: {C.LEAKY_TRAIN_SHARDS[shards.value]}, which puts "
                    "validation documents into the training data",
                    at_log(row, shards.line), snippet=shards.text,
                    evidence={"seed": row.seed, "log": row.path, "line": shards.line, "train_shards": shards.value,
                              "canonical_train_shards": 80},
                    key=f"shards:{row.key}",
                )
            if run.val_calibration is not None:
                at = run.val_calibration
                yield self.finding(
                    f"{seed_label(row)}: GPTQ calibrates on validation data (disputed: quantization then depends on the "
                    "tokens it is scored on)",
                    at_log(row, at.line), snippet=at.text,
                    evidence={"seed": row.seed, "log": row.path, "line": at.line},
                    severity=Severity.WARNING, key=f"calib:{row.key}",
                )

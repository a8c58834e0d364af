"""PG307 val-data-fingerprint."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.base import at_log, seed_label
from auditor.rule import BundleRule, Invalid, Valid

_VAL_CALIBRATION = "gptq:collecting hessians batches=64 source=val\n"


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
      disputed rather than ruled.

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
    VALID = (Valid(files=S.folder({"train_seed42.log": S.modern_log(42, train_shards=80)}, {"val_bpb": 1.0612})),)
    INVALID = (
        Invalid(files=S.folder({"train_seed42.log": S.modern_log(42, train_shards=1499)}, {"val_bpb": 1.0612})),
        Invalid(files=S.folder({"train_seed42.log": S.baseline_log(42, extra=_VAL_CALIBRATION)}, {"val_bpb": 1.2247}),
                note="GPTQ calibrated on validation data (warning)"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
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

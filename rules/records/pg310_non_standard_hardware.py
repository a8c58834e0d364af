"""PG310 non-standard-hardware."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.base import at_log, seed_label
from auditor.records.declared import Statement
from auditor.rule import BundleRule, Invalid, Valid


def standard_gpu(model: str) -> bool:
    """An H100 of the SXM kind (nvidia-smi prints "NVIDIA H100 80GB HBM3"; PCIe and NVL differ)."""
    upper = model.upper()
    return "H100" in upper and "PCIE" not in upper and "NVL" not in upper


class NonStandardHardware(BundleRule):
    """
    ## What it does
    Reports a seed whose log shows hardware other than 8 GPUs of the H100 SXM kind: another
    world size (`world_size:1`, `GPU_COUNT=4`) or another GPU model in the `nvidia-smi` table
    (H200, B200, A100, H100 PCIe …). The budgets are then not shown on the reference
    hardware; the eval budget check (PG303) scales the times where it can.

    It also reads what the submission declares: a `"hardware"` / `"gpu"` value in
    submission.json or a `Hardware: …` / `GPU: …` line in the README (`"hardware": "RTX
    A6000"`, `Hardware: 4x A100`), reported when no log already shows the hardware.

    ## Why is this bad?
    The budgets are defined on 8xH100 SXM ("specifically the SXM variant"). A run on one
    B200 or on faster GPUs does not show that the submission trains and evaluates in 10
    minutes each on the reference machine, and a run on fewer GPUs may not reproduce there.
    Maintainers presented such runs as pending or non-record (#1114, #883); no ruling
    accepts them as record evidence.

    ## Example
    ```text
    world_size:1 grad_accum_steps:8
    ```

    ## Use instead
    Run the seeds that back a record claim on 8xH100 SXM, or submit to the non-record
    track.

    ## References
    - README: "8xH100s (specifically the SXM variant)".
    - R-TRAIN-600, R-EVAL-600; PR #1114.
    """

    CODE = "PG310"
    NAME = "non-standard-hardware"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-TRAIN-600", "R-EVAL-600", "#1114")
    TAGS = ("hardware",)
    VALID = (
        Valid(files=S.folder({"train_seed42.log": S.modern_log(42)}, {"val_bpb": 1.0612})),
        Valid(files=S.folder({}, {"val_bpb": 1.0612, "hardware": "8xH100 80GB SXM"}, extra={
                  "README.md": "# Run\n\nAblations ran on one RTX 4090; the record runs on 8xH100.\n\n| GPU | 8x H100 SXM |\n"}),
              note="standard hardware declared; prose about other machines is not a declaration"),
    )
    INVALID = (
        Invalid(files=S.folder({"train_seed42.log": S.baseline_log(42, world_size=1)}, {"val_bpb": 1.2247})),
        Invalid(files=S.folder({"train_seed42.log": S.modern_log(42, gpu="NVIDIA H200")}, {"val_bpb": 1.0612})),
        Invalid(files=S.folder({}, {"val_bpb": 1.0612, "hardware": "RTX A6000"}),
                note="declared in submission.json, no log"),
        Invalid(files=S.folder({}, {"val_bpb": 1.0612}, extra={"README.md": "# Run\n\n- **Hardware**: 4x A100 80GB\n"}),
                note="declared in the README"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        severity = Severity.WARNING if a.record_track else Severity.NOTE
        if not any(row.world is not None or row.hardware for row in a.rows):
            yield from self._declared(a.declared.hardware, severity)
        for row in a.rows:
            line = None
            text = ""
            odd_world = row.world is not None and row.world.value != C.STANDARD_WORLD_SIZE
            odd_gpu = bool(row.hardware) and not standard_gpu(row.hardware or "")
            if not odd_world and not odd_gpu:
                continue
            if odd_world:
                line, text = row.world.line, row.world.text  # type: ignore[union-attr]
            elif row.run.gpu_line is not None:
                line = row.run.gpu_line
            count = row.world.value if row.world is not None else None
            if odd_gpu:
                what = f"{count}x {row.hardware}" if count else str(row.hardware)
            else:
                what = f"{count} GPU{'s' if count != 1 else ''}"
            yield self.finding(
                f"{seed_label(row)} ran on {what}, not 8xH100 SXM",
                at_log(row, line), snippet=text,
                evidence={"seed": row.seed, "log": row.path, "line": line,
                          "world_size": row.world.value if row.world else None, "hardware": row.hardware},
                severity=severity if row.evidence else Severity.NOTE, key=f"hw:{row.key}",
            )

    def _declared(self, statements: list[Statement], severity: Severity) -> Iterable[Finding]:
        """The first declaration of non-standard hardware (the logs say nothing about it)."""
        for st in statements:
            count, model = st.value  # type: ignore[misc]
            if standard_gpu(model) and count in (None, C.STANDARD_WORLD_SIZE):
                continue
            what = f"{count}x {model}" if count else model
            yield self.finding(
                f"the submission declares it ran on {what}, not 8xH100 SXM (no log shows the hardware)",
                Location(st.path, st.line), snippet=st.text,
                evidence={"declared_in": st.path, "line": st.line, "gpu_count": count, "gpu_model": model},
                severity=severity, confidence=Confidence.MEDIUM, key=f"declared:{st.path}:{st.line}",
            )
            return

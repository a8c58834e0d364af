"""PG301 artifact-over-cap."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.base import at_log, b, other_run_note, seed_label
from auditor.rule import BundleRule, Invalid, Valid


class ArtifactOverCap(BundleRule):
    """
    ## What it does
    Checks every seed's artifact against the 16,000,000-byte cap, using the bytes actually
    submitted: the compressed model bytes its log reports plus the code as shipped (the
    `train_gpt.py` file in the folder, wrapper or shim included). A script that logs the
    size of its own compressed form (`Code size (compressed): N`) is counted at that size,
    as the accepted record #1855 was. The logged total and the claimed `bytes_total` are
    shown next to it.

    ## Why is this bad?
    The cap is code bytes plus compressed model bytes, decimal 16,000,000 (not 16 MiB), and
    it holds for every seed that is reported, not for the mean or for the figure in
    submission.json. PR #825's submission.json said 15,995,959 while the logs of seeds 42 and
    2024 said 16,022,243 and 16,030,231.

    On the non-record track the cap is reported as a warning: a non-record folder over the
    cap was merged (#542).

    ## Example
    ```text
    Serialized model int6+lzma: 15941708 bytes
    Total submission size int6+lzma: 16030231 bytes
    ```

    ## Use instead
    Prune, quantize or compress until the largest seed fits, and ship the code in its
    counted form (an lzma/base85 wrapper counts at its shipped size).

    ## References
    - README FAQ, "What exactly counts toward the 16MB artifact size?"
    - R-SIZE-CAP; PR #825, #659, #1420, #1978 (seeds over the cap).
    """

    CODE = "PG301"
    NAME = "artifact-over-cap"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-SIZE-CAP", "#825")
    TAGS = ("size_cap",)
    VALID = (
        Valid(files=S.folder({"train_seed42.log": S.baseline_log(42, model_bytes=15_990_000)}, {"val_bpb": 1.2247}),
              note="15,990,000 + the script is under the cap"),
        Valid(
            files=S.folder(
                {"train_seed42.log": S.modern_log(42, model_bytes=15_950_000, code_bytes=30_000, code_uncompressed=150_000)},
                {"val_bpb": 1.0612},
                script=S.SCRIPT + "#" * 160_000 + "\n",
            ),
            note="a 160 KB script whose log counts its 30,000-byte compressed form (#1855 convention)",
        ),
    )
    INVALID = (
        Invalid(files=S.folder({"train_seed2024.log": S.baseline_log(2024, model_bytes=15_999_900)},
                               {"val_bpb": 1.2247, "bytes_total": 15_995_959})),
        Invalid(
            files=S.folder({"train_seed1.log": S.baseline_log(1, model_bytes=15_990_000, code_bytes=300)}, {"val_bpb": 1.2247},
                           script=S.SCRIPT + "#" * 20_000 + "\n"),
            note="the log counted 300 bytes of code but the shipped script is 20 KB",
        ),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        severity = Severity.ERROR if a.record_track else Severity.WARNING
        track_note = "" if a.record_track else " (non-record track: reported, as #542 was merged over the cap)"
        claimed = a.claims.bytes_total.value if a.claims and a.claims.bytes_total else None
        for row in a.rows:
            total = row.submitted_total
            if total is None or total <= C.ARTIFACT_CAP:
                continue
            row_severity = severity if row.evidence else Severity.NOTE
            line = row.model.line if row.model else (row.total_logged.line if row.total_logged else None)
            parts = f"model {b(row.model.bytes)} + code {b(row.code_counted)}" if row.model else f"logged total with code {b(row.code_counted)}"
            if row.extra_bytes:
                parts += f" + {b(row.extra_bytes)} more the log counts"
            logged = f"; the log's own total is {b(row.total_logged.bytes)}" if row.total_logged else ""
            json_note = f"; submission.json says {b(claimed)}" if claimed is not None else ""
            yield self.finding(
                f"{seed_label(row)}: the artifact is {b(total)} bytes ({parts}, {row.code_counted_how}), "
                f"{b(total - C.ARTIFACT_CAP)} over the 16,000,000-byte cap{logged}{json_note}{track_note}{other_run_note(row)}",
                at_log(row, line),
                snippet=row.model.text if row.model else (row.total_logged.text if row.total_logged else ""),
                evidence={
                    "seed": row.seed,
                    "log": row.path,
                    "line": line,
                    "model_bytes": row.model.bytes if row.model else None,
                    "code_bytes_counted": row.code_counted,
                    "code_counted_as": row.code_counted_how,
                    "total_bytes_submitted": total,
                    "total_bytes_logged": row.total_logged.bytes if row.total_logged else None,
                    "total_line": row.total_logged.line if row.total_logged else None,
                    "claimed_bytes_total": claimed,
                    "cap": C.ARTIFACT_CAP,
                    "over_by": total - C.ARTIFACT_CAP,
                },
                severity=row_severity,
                key=f"seed:{row.key}",
            )
        # a seed claimed in submission.json without a log that shows its size
        if a.claims is None:
            return
        logged_seeds = {r.seed for r in a.rows if r.submitted_total is not None}
        for seed, claim in a.claims.per_seed.items():
            if claim.bytes is None or seed in logged_seeds or claim.bytes.value <= C.ARTIFACT_CAP:
                continue
            yield self.finding(
                f"seed {seed}: submission.json gives {b(claim.bytes.value)} bytes ({claim.bytes.key}), "
                f"{b(claim.bytes.value - C.ARTIFACT_CAP)} over the 16,000,000-byte cap{track_note}",
                Location(a.claims.rel),
                evidence={"seed": seed, "claimed_bytes": claim.bytes.value, "key": claim.bytes.key, "cap": C.ARTIFACT_CAP},
                severity=severity,
                key=f"claim:{seed}",
            )

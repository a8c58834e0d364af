"""PG302 artifact-accounting-gap."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.base import at_log, b, seed_label
from auditor.rule import BundleRule, Invalid, Valid


class ArtifactAccountingGap(BundleRule):
    """
    ## What it does
    Reports a seed whose artifact fits the cap as submitted but not by another reasonable
    count, with both numbers:

    - the log's own total is over the cap because the script counted code that is not what
      is shipped (the uncompressed source behind a wrapper or a shim, as in PR #1412 and
      #1835);
    - helper files the submitted code needs (imported or exec'd modules, C/C++ sources it
      compiles) are not in the count, and with them the artifact is over the cap (PR #1514);
    - as a note: the script counts itself at the size of a compressed form it computes, while
      the committed file is the plain source (the #1855 convention), and the plain file
      would not fit.

    ## Why is this bad?
    The cap applies to what is submitted. Maintainers have accepted all three situations on
    the leaderboard without a written ruling (R-SIZE-CODE is open), so the auditor does not
    call them violations; a reviewer should still see that the margin depends on how the
    code is counted.

    ## Example
    ```text
    Code size: 80055 bytes
    Total submission size quantized+brotli: 16058494 bytes
    ```
    with a 74-byte `train_gpt.py` shim that executes an 80,055-byte `train_gpt_decode.py`.

    ## Use instead
    Keep every counted byte in the shipped `train_gpt.py` (inline the helpers, or ship the
    whole program as one compressed wrapper) and log the size of the file as shipped.

    ## References
    - README: "All counted code should live in the train_gpt.py script."
    - R-SIZE-CODE; PR #1412, #1514, #1835, #1855.
    """

    CODE = "PG302"
    NAME = "artifact-accounting-gap"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-SIZE-CODE", "#1412", "#1514")
    TAGS = ("size_cap",)
    VALID = (
        Valid(files=S.folder({"train_seed42.log": S.baseline_log(42, model_bytes=15_900_000)}, {"val_bpb": 1.2247})),
        Valid(
            files=S.folder(
                {"train_seed42.log": S.baseline_log(42, model_bytes=15_990_000)},
                {"val_bpb": 1.2247},
                extra={"plot_curves.py": "import matplotlib\n" + "#" * 12_000 + "\n"},
            ),
            note="a script in the folder that the submitted code never imports is not part of it",
        ),
    )
    INVALID = (
        Invalid(
            files=S.folder({"train_seed42.log": S.baseline_log(42, model_bytes=15_979_000, code_bytes=80_055)}, {"val_bpb": 1.2247}),
            note="the log counted 80 KB of source; the shipped script is a few hundred bytes",
        ),
        Invalid(
            files=S.folder(
                {"train_seed42.log": S.baseline_log(42, model_bytes=15_990_000)},
                {"val_bpb": 1.2247},
                script=S.SCRIPT + "from ngram_tilt import tilt\n",
                extra={"ngram_tilt.py": "def tilt(p):\n    return p\n" + "#" * 12_000 + "\n"},
            ),
            note="an imported helper module is not counted",
        ),
        Invalid(
            files=S.folder(
                {"train_seed42.log": S.baseline_log(42, model_bytes=15_990_000)},
                {"val_bpb": 1.2247},
                script=S.SCRIPT + "def tilt_eval():\n    try:\n        import ngram_tilt\n    except ImportError:\n        return None\n",
                extra={"ngram_tilt.py": "def tilt(p):\n    return p\n" + "#" * 12_000 + "\n"},
            ),
            note="a helper imported inside a function's try block is part of the code too",
        ),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        cap = C.ARTIFACT_CAP
        for row in a.rows:
            total = row.submitted_total
            if total is None or total > cap:
                continue  # PG301 reports it
            logged = row.total_logged
            if logged is not None and logged.bytes > cap:
                yield self.finding(
                    f"{seed_label(row)}: the log's total is {b(logged.bytes)} bytes, over the cap, because it counts "
                    f"{b(row.code_logged.value if row.code_logged else None)} bytes of code; with the code as submitted "
                    f"({b(row.code_counted)} bytes, {row.code_counted_how}) the artifact is {b(total)}",
                    at_log(row, logged.line),
                    snippet=logged.text,
                    evidence={
                        "seed": row.seed, "log": row.path, "line": logged.line,
                        "total_bytes_logged": logged.bytes, "code_bytes_logged": row.code_logged.value if row.code_logged else None,
                        "code_bytes_submitted": row.code_counted, "total_bytes_submitted": total, "cap": cap,
                    },
                    key=f"logged:{row.key}",
                )
            if row.helper_bytes and row.with_helpers_total is not None and row.with_helpers_total > cap:
                names = ", ".join(f"{f.rel} ({b(f.size)})" for f in a.helpers)
                yield self.finding(
                    f"{seed_label(row)}: {b(total)} bytes as counted, but the submitted code also needs {names}; "
                    f"with them the artifact is {b(row.with_helpers_total)}, {b(row.with_helpers_total - cap)} over the cap",
                    at_log(row, row.model.line if row.model else None),
                    snippet=row.model.text if row.model else "",
                    evidence={
                        "seed": row.seed, "log": row.path, "total_bytes_submitted": total,
                        "helper_files": {f.path: f.size for f in a.helpers}, "helper_bytes": row.helper_bytes,
                        "total_bytes_with_helpers": row.with_helpers_total, "cap": cap,
                    },
                    key=f"helpers:{row.key}",
                )
            compressed = row.run.code.get("compressed")
            if compressed is not None and a.main_bytes is not None and row.model is not None:
                as_file = row.model.bytes + a.main_bytes
                if as_file > cap:
                    yield self.finding(
                        f"{seed_label(row)}: counted with the {b(compressed.value)}-byte compressed code size the script "
                        f"logs, the artifact is {b(total)}; the committed train_gpt.py is {b(a.main_bytes)} bytes, with which "
                        f"it would be {b(as_file)}",
                        at_log(row, compressed.line),
                        snippet=compressed.text,
                        evidence={
                            "seed": row.seed, "log": row.path, "line": compressed.line, "code_bytes_compressed": compressed.value,
                            "main_script_bytes": a.main_bytes, "total_bytes_submitted": total, "total_with_file_as_committed": as_file,
                        },
                        severity=Severity.NOTE,
                        key=f"compressed:{row.key}",
                    )

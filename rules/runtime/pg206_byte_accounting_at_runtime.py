"""PG206 byte-accounting-at-runtime."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.runtime.base import RuntimeRule, evidence_of


class ByteAccountingAtRuntime(RuntimeRule):
    """
    ## What it does
    Runs the submission on a validation stream and a tokenizer the harness wrote, so it knows
    which targets each evaluation call scored and the NLL it gave each. The bytes of exactly
    those targets follow from the official formula, `base_bytes[y] + (has_leading_space[y]
    and not is_boundary[x])` with x the token before y; the bits per byte the script prints
    next to the loss that call returned implies the byte count it divided by, `L / (bpb ·
    ln 2)`. The two must agree, up to the float rounding of the loss sum (2·10⁻⁵ relative)
    and the printed decimals, and never by less than half a byte. A leading space counted
    after a document start is accepted too (exact on the real validation set, whose
    documents never begin with a space). Inconclusive when the script loads another
    tokenizer than the one provided, when the folder ships tokenizer files of its own (the
    claimed score may have counted bytes with those: a byte table in `*.meta.npz`), or when
    it prints no bpb next to a loss it returned.

    ## Why is this bad?
    val_bpb is the NLL of the scored targets over the UTF-8 bytes of the same targets. A
    script whose count differs reports a number that is not bits per byte: target ids
    remapped into a smaller vocabulary (NLL and bytes of other tokens), a denominator over
    other tokens than the numerator (every target of the stream while only a subset was
    scored), or a byte table that drops the leading space or counts it twice. Such scores
    were withdrawn (#1143, #1184, #1289: 4.13 % too many bytes; #1865: 27 %).

    ## Example
    ```python
    lut[i] = len(sp.id_to_piece(i).replace("▁", " ").encode())  # the space is counted here ...
    nbytes = lut[y] + (has_space[y] & ~is_boundary[x])            # ... and once more here
    ```

    ## Use instead
    Count each scored target once with the official tables (the space stripped from the
    piece, added back unless the previous token is a boundary), over the same targets whose
    NLL is summed.

    ## References
    - README: val_bpb is the tokenizer-agnostic score; tokenizer changes must prove the byte count.
    - #1289 (base_bytes sum 157,319,833 against 151,073,604), #1143/#1184 (Scylla byte
      accounting withdrawn), #1865 (byte count 27 % over).
    """

    CODE = "PG206"
    NAME = "byte-accounting-at-runtime"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "#1289", "#1143", "#1184", "#1865")
    TAGS = ("bpb_accounting",)
    VALID = (
        Valid(folder="fixtures/runtime/legal_sliding"),
        Valid(folder="fixtures/runtime/bytes_sliding_scored_subset_legal"),
    )
    INVALID = (
        Invalid(folder="fixtures/runtime/bytes_remapped_targets"),
        Invalid(folder="fixtures/runtime/bytes_subset_denominator"),
        Invalid(folder="fixtures/runtime/bytes_lut_space_twice"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        result, rows = self.rows(evidence, ("bytes",))
        for row in rows:
            yield self.finding(
                f"the bits per byte of {row.scorer}() does not divide by the bytes of the targets it scored: "
                f"{row.detail}",
                self.location(bundle, result, row.scorer),
                evidence=evidence_of(row, result),
                key=row.scorer,
            )

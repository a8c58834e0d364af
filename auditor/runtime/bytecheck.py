"""The byte-accounting probe (parent side; no torch): does the bits per byte a script reports
divide its NLL by the bytes of the targets it scored?

val_bpb = L / (B · ln 2), with L the summed NLL of the scored targets and B their bytes by the
official formula (``research/pipeline.md`` §2.3). The sandbox reports, for every evaluation
call of the baseline run, the captured L and the canonical B of exactly the targets it scored
(:mod:`auditor.runtime.bytecount`), and keeps the output lines that carry a bpb. A line whose
loss is the loss a call returned names that call; its bpb then implies the byte count the
script divided by, B' = L / (bpb · ln 2), which must be B.

Two counts are accepted: the official one, and the same with the leading space of a document's
first piece counted too (a LUT that turns "▁" into a space; exact on the real validation data,
whose documents never start with a space, but not on the harness's synthetic stream, and the
byte sidecar of CaseOps scripts counts that way too). Anything else is a ``fail``: a remapped
target, a denominator over other tokens than the NLL (whole documents, every window position),
a LUT that drops the leading space or counts it twice. Known alternatives are named in the
detail.

Tolerance, from the mechanism: B is an exact integer; L is a float sum, which the capture
matched to the returned loss within 2e-6 (relative), so B' may differ from B by
``REL_TOL`` (ten times that) plus what the printed decimals of the bpb leave open, and never
less than half a byte. A call whose bpb was neither printed next to its loss nor returned is
``inconclusive``; so is every call when the script did not load the tokenizer the harness
wrote (a byte-level or shipped tokenizer counts other bytes by design).

The asymmetric-evidence rule holds: a fail is the script's own number contradicting the bytes
of its own scored targets; a pass says only that this run's accounting was consistent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from auditor.runtime.protocol import ByteAccount, DriverResult, ProbeRow

PROBE = "bytes"
#: Files that are a tokenizer or its byte tables (a SentencePiece model, a vocabulary, LUT metadata).
TOKENIZER_FILE = re.compile(r"\.(model|vocab)$|meta\.npz$|tokenizer[^/]*\.json$", re.I)
#: Relative tolerance on the implied byte count (10x the capture's own loss match, 2e-6).
REL_TOL = 2e-5
#: Smallest tolerance in bytes (B is an integer: a one-byte miscount is still a finding).
MIN_BYTES = 0.5
_NUMBER = r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
_LOSS = re.compile(r"[A-Za-z_]*loss\w*\s*[:=]\s*" + _NUMBER, re.I)
_BPB = re.compile(r"[A-Za-z_]*bpb\w*\s*[:=]\s*" + _NUMBER, re.I)


@dataclass
class Printed:
    """A number as the script printed it: its value and half a unit of its last digit."""

    text: str

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def half_ulp(self) -> float:
        try:
            exponent = Decimal(self.text).as_tuple().exponent
        except InvalidOperation:
            return math.inf
        return 0.5 * 10.0 ** int(exponent) if isinstance(exponent, int) else math.inf

    def same(self, value: float) -> bool:
        return abs(self.value - value) <= self.half_ulp * 1.0001 + 1e-12


@dataclass
class Claim:
    """A bpb the script printed on a line next to a loss one evaluation call returned."""

    line: str
    loss: Printed
    bpb: Printed


@dataclass
class Judged:
    """What the claims say about one call."""

    account: ByteAccount
    confirmed: list[str] = field(default_factory=list)  # how the bpb was shown to be right
    wrong: list[tuple[Claim, float]] = field(default_factory=list)  # (claim, implied bytes)


def bpbs_in(line: str) -> list[Printed]:
    """The bits-per-byte values a line prints (``val_bpb:1.2345``, ``mix_bpb=0.9``)."""
    return [Printed(x) for x in _BPB.findall(line)]


def claims_in(lines: list[str]) -> list[tuple[str, list[Printed], Printed]]:
    """(line, its loss values, its single bpb value) for the lines that carry exactly one bpb."""
    out = []
    for line in lines:
        bpbs = _BPB.findall(line)
        losses = _LOSS.findall(line)
        if len(bpbs) == 1 and losses:
            out.append((line, [Printed(x) for x in losses], Printed(bpbs[0])))
    return out


def implied_bytes(account: ByteAccount, bpb: float) -> float:
    """B' = L / (bpb · ln 2): the byte count a bpb implies for the call's NLL sum."""
    return account.nll_sum / (bpb * math.log(2.0)) if bpb > 0 else math.inf


def tolerance(account: ByteAccount, bpb: Printed) -> float:
    """How far, in bytes, the implied count may be from the canonical one (module docstring)."""
    implied = implied_bytes(account, bpb.value)
    relative = REL_TOL + (bpb.half_ulp / abs(bpb.value) if bpb.value else math.inf)
    return max(MIN_BYTES, implied * relative)


def accepted(account: ByteAccount) -> dict[str, int]:
    return {"the official formula": account.bytes,
            "the official formula, a leading space after a document start counted": account.space_after_boundary}


def explain(account: ByteAccount, bpb: Printed, counts: dict[str, int]) -> str | None:
    """The name of the count the printed bpb divides by, if one fits within tolerance."""
    implied, tol = implied_bytes(account, bpb.value), tolerance(account, bpb)
    for name, count in counts.items():
        if abs(implied - count) <= tol:
            return name
    return None


def judge(result: DriverResult, files: Sequence[str] = ()) -> list[ProbeRow]:
    """One ``bytes`` row per evaluation function of the baseline run (module docstring).
    ``files``: the folder's files; one that is a tokenizer (``TOKENIZER_FILE``) makes every row
    inconclusive, since the run behind the claimed score may have counted bytes with it (a byte
    table shipped as ``*.meta.npz``) while the sandbox ran the tokenizer the harness wrote."""
    accounts = result.byte_accounts
    rows = _judge(result, accounts) if accounts else []
    # an evaluation whose scored targets were not captured: their bytes are unknown
    counted = {a.name for a in accounts}
    base = result.runs[0].passes if result.runs else []
    for p in base:
        if p.depth == 0 and not p.complete and p.name not in counted:
            counted.add(p.name)
            rows.append(ProbeRow(PROBE, "inconclusive", f"the targets it scored were not captured ({p.reason})",
                                 scorer=p.name))
    shipped = sorted(f for f in files if TOKENIZER_FILE.search(f))
    if shipped:
        names = ", ".join(f.rsplit("/", 1)[-1] for f in shipped[:3])
        for row in rows:
            if row.status in ("pass", "fail"):
                row.evidence = {**row.evidence, "with_harness_tokenizer": row.status, "shipped_tokenizer_files": shipped[:8]}
                row.detail = (f"the folder ships its own tokenizer files ({names}), which the scored run may have "
                              f"counted bytes with; with the harness's tokenizer the check gave {row.status}: {row.detail}")
                row.status = "inconclusive"
    return rows


def _judge(result: DriverResult, accounts: list[ByteAccount]) -> list[ProbeRow]:
    names = list(dict.fromkeys(a.name for a in accounts))
    if result.tokenizer_loaded != "harness":
        why = ("the script loaded another tokenizer than the one the harness wrote" if result.tokenizer_loaded
               else "the script loaded no SentencePiece model") + \
              " (a byte-level or shipped tokenizer): its byte count is not comparable with the official LUT's"
        return [ProbeRow(PROBE, "inconclusive", why, scorer=name) for name in names]
    judged = [Judged(a) for a in accounts]
    for line, losses, bpb in claims_in(result.metric_lines):
        named = [j for j in judged if j.account.loss is not None and any(x.same(j.account.loss) for x in losses)]
        if not named:
            continue  # the line is about a number no captured call returned
        fits = [(j, explain(j.account, bpb, accepted(j.account))) for j in named]
        right = [(j, how) for j, how in fits if how]
        if right:
            for j, how in right:
                j.confirmed.append(f"printed {bpb.text} ({how})")
            continue
        loss = next(x for x in losses if any(x.same(j.account.loss or math.nan) for j in named))
        for j in named:
            j.wrong.append((Claim(line, loss, bpb), implied_bytes(j.account, bpb.value)))
    for j in judged:
        if j.confirmed or j.wrong:
            continue
        a = j.account
        for value in a.returned:
            if a.loss is not None and value == a.loss:
                continue
            how = explain(a, Printed(repr(value)), accepted(a))
            if how:
                j.confirmed.append(f"returned {value:.8g} ({how})")
                break
    return [_row(name, [j for j in judged if j.account.name == name]) for name in names]


def _row(name: str, calls: list[Judged]) -> ProbeRow:
    wrong = [j for j in calls if j.wrong]
    if wrong:
        j = wrong[0]
        claim, implied = j.wrong[0]
        a = j.account
        named = explain(a, claim.bpb, a.alternatives)
        why = f"it matches {named}" if named else f"{implied / a.bytes:.4f} times the official count"
        detail = (f"call {a.index + 1}: the script reports bpb {claim.bpb.text} with loss {claim.loss.text}; over "
                  f"the {a.tokens} targets it scored (NLL sum {a.nll_sum:.6g} nats) that bpb divides by "
                  f"{implied:.1f} bytes, but those targets hold {a.bytes} bytes by the official formula "
                  f"({a.space_after_boundary} with a leading space after a document start): {why}")
        evidence: dict[str, Any] = {
            "call": a.index, "printed_line": claim.line[:200], "printed_bpb": claim.bpb.text,
            "printed_loss": claim.loss.text, "scored_targets": a.tokens, "distinct_targets": a.distinct,
            "nll_sum": a.nll_sum, "implied_bytes": implied, "canonical_bytes": a.bytes,
            "canonical_bytes_space_after_boundary": a.space_after_boundary,
            "expected_bpb": a.nll_sum / (a.bytes * math.log(2.0)) if a.bytes else None,
            "tolerance_bytes": tolerance(a, claim.bpb), "explained_by": named, "alternatives": a.alternatives,
            "calls_wrong": len(wrong), "calls": len(calls)}
        return ProbeRow(PROBE, "fail", detail, evidence, scorer=name)
    confirmed = [j for j in calls if j.confirmed]
    if confirmed:
        j = confirmed[-1]
        a = j.account
        detail = (f"{len(confirmed)} of {len(calls)} call(s) checked; call {a.index + 1}: {j.confirmed[0]}, the bpb "
                  f"of its {a.tokens} scored targets ({a.bytes} bytes, NLL sum {a.nll_sum:.6g} nats)")
        return ProbeRow(PROBE, "pass", detail, {"calls_checked": len(confirmed), "calls": len(calls),
                                                 "canonical_bytes": a.bytes, "scored_targets": a.tokens},
                        scorer=name)
    return ProbeRow(PROBE, "inconclusive", "no bits per byte of this evaluation was printed next to the loss it "
                    "returned, nor returned with it", {"calls": len(calls)}, scorer=name)


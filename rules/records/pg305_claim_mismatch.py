"""PG305 claim-mismatch."""

from __future__ import annotations

import statistics
from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.records import samples as S
from auditor.records.analysis import RecordsAnalysis
from auditor.records.base import at_log, b, seed_label
from auditor.records.claims import close
from auditor.records.logparse import STEP_LABEL
from auditor.rule import BundleRule, Invalid, Valid


class ClaimMismatch(BundleRule):
    """
    ## What it does
    Compares submission.json with the logs:

    - the required fields (name or author, GitHub ID, `val_bpb`) are present;
    - the claimed `val_bpb` is the mean of the seeds' scores, or one seed's score (both
      conventions were accepted), to the rounding it is written with;
    - the score it rests on is a final stage, not a diagnostic, a pre-quantization pass or
      a mixture component;
    - `bytes_total` (or `artifact_bytes…`) is one of the logged or submitted totals, or
      their mean or maximum, and per-seed sizes match their logs;
    - `val_loss` holds a loss and not a bpb (PR #825 put 0.5440 bpb there);
    - every claimed seed has a log, and the logs show a score at all.

    ## Why is this bad?
    The logs are the evidence a record is accepted on ("enough run logs to show" the
    improvement). A headline that no log supports, a size no log shows, or seeds without
    logs cannot be checked — maintainers excluded "missing-evidence submissions" (#1902).

    ## Example
    ```json
    {"val_loss": 0.5440, "bytes_total": 15995959, "seeds": [1337, 42, 2024]}
    ```
    with logs whose totals are 15,948,371, 16,022,243 and 16,030,231.

    ## Use instead
    Generate submission.json from the logs: the mean of the seeds' final scores, the
    largest per-seed total, and one log per claimed seed.

    ## References
    - README: a PR includes submission.json "with name, GitHub ID, val_bpb, and related
      metadata" and "train log(s) automatically produced by your script".
    - R-SUBMIT-FILES, R-SEEDS-SAME-CODE; PR #825, #1902.
    """

    CODE = "PG305"
    NAME = "claim-mismatch"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-SUBMIT-FILES", "#825")
    TAGS = ("consistency",)
    VALID = (
        Valid(files=S.folder(
            {"train_seed1.log": S.baseline_log(1, bpb=1.2240), "train_seed2.log": S.baseline_log(2, bpb=1.2250)},
            {"val_bpb": 1.2245, "seeds": [1, 2], "bytes_total": 15_800_000 + S.SCRIPT_BYTES},
        )),
    )
    INVALID = (
        Invalid(files=S.folder({"train_seed1.log": S.baseline_log(1, bpb=1.2240)}, {"val_bpb": 1.1500})),
        Invalid(files=S.folder({"train_seed1.log": S.baseline_log(1, bpb=1.2240)}, {"val_loss": 1.2240, "seeds": [1, 2]}),
                note="val_loss holds the bpb; seed 2 has no log; val_bpb missing"),
        Invalid(files=S.folder({"train_seed1.log": "".join(line for line in S.baseline_log(1).splitlines(keepends=True)
                                                           if not line.startswith("final_"))}, {"val_bpb": 1.2176}),
                note="the claim is the last training-time validation; the log has no final stage"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        c = a.claims
        if c is None:
            return  # PG308 reports a missing submission.json
        where = Location(c.rel)
        if c.missing:
            yield self.finding(
                f"submission.json lacks {', '.join(c.missing)}", where,
                evidence={"missing": c.missing}, key="missing",
            )
        yield from self._val_bpb(a, where)
        yield from self._bytes(a, where)
        yield from self._val_loss(a, where)
        yield from self._seeds(a, where)

    def _val_bpb(self, a: RecordsAnalysis, where: Location) -> Iterable[Finding]:
        c = a.claims
        assert c is not None
        scored = [r for r in a.rows if r.score is not None and r.evidence]
        if a.logs and not scored:
            yield self.finding(
                f"none of the {len(a.logs)} logs shows a final score (val_loss/val_bpb line): the claim cannot be checked",
                where, evidence={"logs": [e.file.path for e in a.logs]}, key="no-score",
            )
            return
        for row in scored:
            assert row.score is not None
            if not row.score.final and row.score_reason.startswith("match"):
                what = ("a training-time validation of the model before it was averaged, quantized or evaluated as "
                        "submitted" if row.score.raw_label == STEP_LABEL else
                        "a diagnostic, pre-quantization pass or a mixture component")
                yield self.finding(
                    f"{seed_label(row)}: the claimed score {row.score.bpb} is the line '{row.score.raw_label}', which is not a "
                    f"final score ({what})",
                    at_log(row, row.score.line), snippet=row.score.text,
                    evidence={"seed": row.seed, "log": row.path, "line": row.score.line, "stage": row.score.raw_label},
                    key=f"nonfinal:{row.key}",
                )
            claim = row.claim.bpb if row.claim else None
            if claim is not None and not close(claim.value, claim.decimals, row.score.bpb, row.score.decimals):
                yield self.finding(
                    f"{seed_label(row)}: submission.json gives {claim.value} ({claim.key}) but the log's score is "
                    f"{row.score.bpb} ({row.score.raw_label}), and no line of that log shows {claim.value}",
                    at_log(row, row.score.line), snippet=row.score.text,
                    evidence={"seed": row.seed, "claimed": claim.value, "key": claim.key, "logged": row.score.bpb,
                              "log": row.path, "line": row.score.line},
                    key=f"seedbpb:{row.key}",
                )
        if c.val_bpb is None or not scored:
            return
        values = [r.score.bpb for r in scored if r.score]
        mean = statistics.fmean(values)
        d = c.val_bpb.decimals
        # a mean of rounded per-seed figures, rounded again, may be off by one unit of the last decimal
        if abs(c.val_bpb.value - mean) <= 10 ** -max(d, 2) + 1e-12 or any(close(c.val_bpb.value, d, v, 8) for v in values):
            return
        per_seed = {r.key: r.score.bpb for r in scored if r.score}
        yield self.finding(
            f"submission.json claims val_bpb {c.val_bpb.value} ({c.val_bpb.key}); the logs' scores average {mean:.8f} "
            f"and no seed's score equals the claim",
            where, evidence={"claimed": c.val_bpb.value, "mean_logged": mean, "per_seed": per_seed}, key="val_bpb",
        )

    def _bytes(self, a: RecordsAnalysis, where: Location) -> Iterable[Finding]:
        c = a.claims
        assert c is not None
        rows = [r for r in a.rows if r.submitted_total is not None or r.total_logged is not None]
        if c.bytes_total is not None and rows:
            candidates: list[float] = []
            for r in rows:
                candidates += [x for x in (r.submitted_total, r.total_logged.bytes if r.total_logged else None,
                                           r.model.bytes if r.model else None) if x is not None]
            for pick in (lambda r: r.submitted_total, lambda r: r.total_logged.bytes if r.total_logged else None,
                         lambda r: r.model.bytes if r.model else None):
                vals = [pick(r) for r in rows if pick(r) is not None]
                if vals:
                    candidates += [statistics.fmean(vals), max(vals)]
            claimed = c.bytes_total.value
            if not any(abs(claimed - x) <= max(1.0, 0.5 * 10 ** (len(str(int(claimed))) - 8)) for x in candidates):
                largest = max(r.submitted_total or r.total_logged.bytes for r in rows)  # type: ignore[union-attr]
                yield self.finding(
                    f"submission.json gives {b(claimed)} bytes ({c.bytes_total.key}), which matches no log; "
                    f"the largest seed's artifact is {b(largest)}",
                    where, evidence={"claimed": claimed, "key": c.bytes_total.key,
                                     "per_seed_submitted": {r.key: r.submitted_total for r in rows},
                                     "per_seed_logged": {r.key: r.total_logged.bytes if r.total_logged else None for r in rows}},
                    key="bytes_total",
                )
        for row in a.rows:
            claim = row.claim.bytes if row.claim and row.evidence else None
            if claim is None:
                continue
            options = [x for x in (row.submitted_total, row.total_logged.bytes if row.total_logged else None,
                                   row.model.bytes if row.model else None) if x is not None]
            if options and not any(abs(claim.value - x) <= 1 for x in options):
                yield self.finding(
                    f"{seed_label(row)}: submission.json gives {b(claim.value)} bytes ({claim.key}); the log shows "
                    f"{' / '.join(b(x) for x in options)} (submitted / logged total / model)",
                    at_log(row, row.total_logged.line if row.total_logged else None),
                    evidence={"seed": row.seed, "claimed": claim.value, "options": options, "log": row.path},
                    key=f"seedbytes:{row.key}",
                )

    def _val_loss(self, a: RecordsAnalysis, where: Location) -> Iterable[Finding]:
        c = a.claims
        assert c is not None
        if c.val_loss is None:
            return
        scored = [r.score for r in a.rows if r.score is not None and r.score.loss is not None]
        bpbs = [s.bpb for s in scored]
        losses = [s.loss for s in scored if s.loss is not None]
        holds_bpb = c.val_bpb is not None and close(c.val_loss.value, c.val_loss.decimals, c.val_bpb.value, c.val_bpb.decimals)
        if not holds_bpb and bpbs and losses:
            near_bpb = min(abs(c.val_loss.value - x) for x in bpbs + [statistics.fmean(bpbs)])
            near_loss = min(abs(c.val_loss.value - x) for x in losses + [statistics.fmean(losses)])
            holds_bpb = near_bpb < near_loss and near_bpb < 0.01 and abs(statistics.fmean(bpbs) - statistics.fmean(losses)) > 0.05
        if holds_bpb:
            yield self.finding(
                f"submission.json's val_loss {c.val_loss.value} is a bits-per-byte figure, not a loss in nats per token",
                where, evidence={"val_loss": c.val_loss.value, "val_bpb": c.val_bpb.value if c.val_bpb else None,
                                 "logged_bpb": bpbs, "logged_loss": losses},
                key="val_loss",
            )

    def _seeds(self, a: RecordsAnalysis, where: Location) -> Iterable[Finding]:
        c = a.claims
        assert c is not None
        logged = {r.seed for r in a.rows}
        missing = [s for s in c.seeds if s not in logged]
        if missing and a.rows:
            yield self.finding(
                f"submission.json names seed{'s' if len(missing) > 1 else ''} {', '.join(missing)} but no log of "
                f"{'them' if len(missing) > 1 else 'it'} is in the folder (logs: {', '.join(sorted(logged))})",
                where, evidence={"claimed_seeds": c.seeds, "logged_seeds": sorted(logged), "missing": missing},
                key="seeds",
            )
        elif missing and not a.logs:
            yield self.finding(
                f"submission.json names {len(c.seeds)} seed{'s' if len(c.seeds) > 1 else ''} but the folder has no logs", where,
                evidence={"claimed_seeds": c.seeds}, key="seeds",
            )

"""PG304 train-over-budget."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.records import constants as C
from auditor.records import samples as S
from auditor.records.analysis import SeedRow
from auditor.records.base import at_log, other_run_note, seed_label
from auditor.records.declared import Statement
from auditor.rule import BundleRule, Invalid, Valid

#: Training with less than this left of the 600 s used the whole budget.
FULL_BUDGET_S = 598.0

_GPTQ_AFTER = (
    "gptq:building non-banked model for Hessian collection...\n"
    "gptq:calibrating with 256 batches...\n"
    "gptq:collected hessians for 68 layers\n"
)


class TrainOverBudget(BundleRule):
    """
    ## What it does
    Reads each seed's training time from the wallclock stop line (`stopping_early:
    wallclock_cap train_time:…ms`; without one, the last training step) and checks it
    against 600 s. The loop stops after the step that crosses the cap, so accepted records
    show up to ~600.4 s: 600.0–600.4 s is tolerated, and so is an overshoot of up to one step
    of the run (its mean step time, when the stop line is there: a 1-GPU run with 1.5 s
    steps); more is a violation.

    It also reports work that reads training data after the stop: full-Hessian GPTQ
    calibration on training batches. With no time reserved for it inside the 600 s (no
    `gptq:reserving …` line) after a run that used the whole budget, that is a violation
    (#593, #609); with a reserve that the Hessian collection still overruns, a warning
    (accepted #1855 ended its Hessians at ~604 s; #1868 and #1950 re-ran with larger
    reserves). Self-generated or random calibration data is fine.

    When no log shows a training time, it reads the time the submission declares: a
    submission.json key such as `"train_time_seconds"` or `"wallclock_minutes"`, or a
    `Training time: …` line in the README. A training time over 600 s is a violation; a
    wallclock that does not say it is training alone is one only beyond 20 minutes (training
    and evaluation together), and a warning between.

    ## Why is this bad?
    Training is limited to 10 minutes on 8xH100 SXM. GPTQ that calibrates on training data
    after the window trains (quantizes) with extra minutes of data access, which was ruled
    illegal (#535, #569, #593, #609 per #1019's README).

    ## Example
    ```text
    stopping_early: wallclock_cap train_time:602048ms step:4945/20000
    ```

    ## Use instead
    Let the wallclock cap stop training (no step forcing), and reserve the calibration time
    inside the budget (`GPTQ_RESERVE_SECONDS`), or calibrate on self-generated data.

    ## References
    - README: train "in under 10 minutes on 8xH100s".
    - R-TRAIN-600 (#1908, #1945), R-GPTQ-IN-TRAIN (#593, #609, #1019, #1868).
    """

    CODE = "PG304"
    NAME = "train-over-budget"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-TRAIN-600", "R-GPTQ-IN-TRAIN", "#593")
    TAGS = ("train_budget",)
    VALID = (
        Valid(files=S.folder({"train_seed1.log": S.baseline_log(1, train_ms=600_699, world_size=1).replace(
                  f"{600_699 // 44}/20000", "408/20000")}, {"val_bpb": 1.2247}),
              note="600.7 s with 1.47 s steps on one GPU: the cap stopped it after the step that crossed it"),
        Valid(files=S.folder({"train_seed42.log": S.baseline_log(42, train_ms=600_380)}, {"val_bpb": 1.2247}),
              note="600.38 s: inside the tolerated overshoot of the last step"),
        Valid(files=S.folder({"train_seed42.log": S.modern_log(42, train_ms=596_100, reserve_s=4)}, {"val_bpb": 1.0612}),
              note="GPTQ Hessians collected inside a 4 s reserve"),
        Valid(files=S.folder({}, {"val_bpb": 1.2247, "training_time_seconds": 600, "wallclock_seconds": 1150}),
              note="600 s of training; a wallclock under 20 minutes may be training and evaluation together"),
    )
    INVALID = (
        Invalid(files=S.folder({"train_seed42.log": S.baseline_log(42, train_ms=602_048)}, {"val_bpb": 1.2247})),
        Invalid(files=S.folder({"train_seed1337.log": S.baseline_log(1337, train_ms=600_078, extra=_GPTQ_AFTER)}, {"val_bpb": 1.2247}),
                note="GPTQ calibrated on training batches after a full 600 s, with no reserve"),
        Invalid(files=S.folder({}, {"val_bpb": 1.2247, "wallclock_minutes": 120}), note="declared, no log"),
        Invalid(files=S.folder({}, {"val_bpb": 1.2247, "track": "track_non_record_16mb", "wallclock_minutes": 240}),
                note="the non-record track has no training budget: a note"),
        Invalid(files=S.folder({}, {"val_bpb": 1.2247}, extra={"README.md": "# Run\n\n- Training time: 45 min\n"}),
                note="declared in the README"),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        a = evidence.records
        limit = C.TRAIN_BUDGET_S + C.TRAIN_TOLERANCE_S
        if not any(row.train is not None for row in a.rows):
            yield from self._declared(a.declared.train_time, a.record_track)
        for row in a.rows:
            train = row.train
            if train is None:
                continue
            resolution_s = row.run.last_train.value[3] / 1000.0 if (row.run.stop is None and row.run.last_train) else 0.0
            # the loop stops after the step that crosses the cap: up to one step over is the
            # cap working (a 1.5 s step of a 1-GPU run overshoots by more than 0.4 s)
            step_s = _step_s(row) if row.run.stop is not None else 0.0
            tolerance = max(C.TRAIN_TOLERANCE_S, step_s)
            limit = C.TRAIN_BUDGET_S + tolerance
            evidence = {
                "seed": row.seed, "log": row.path, "line": train.line, "train_s": train.value,
                "budget_s": C.TRAIN_BUDGET_S, "tolerance_s": round(tolerance, 3),
                "wallclock_cap_s": row.run.wallclock_cap_s(), "from": "stop line" if row.run.stop else "last training step",
            }
            if train.value - resolution_s / 2 > limit:
                cap = row.run.wallclock_cap_s()
                cap_note = f" (the script's cap is {cap:,.0f} s)" if cap and cap > C.TRAIN_BUDGET_S else ""
                if not a.record_track or not row.evidence:
                    why = "non-record track: reported only" if not a.record_track else other_run_note(row).strip(" ()")
                    yield self.finding(
                        f"{seed_label(row)}: trained for {train.value:,.3f} s{cap_note} ({why})",
                        at_log(row, train.line), snippet=train.text, evidence=evidence, severity=Severity.NOTE,
                        key=f"train:{row.key}",
                    )
                else:
                    yield self.finding(
                        f"{seed_label(row)}: trained for {train.value:,.3f} s, over the 600 s budget "
                        f"(up to {limit:.1f} s is tolerated){cap_note}",
                        at_log(row, train.line), snippet=train.text, evidence=evidence,
                        confidence=Confidence.HIGH if row.run.stop else Confidence.MEDIUM, key=f"train:{row.key}",
                    )
            finding = self._gptq(row, a.record_track and row.evidence)
            if finding is not None:
                yield finding

    def _declared(self, statements: list[Statement], record_track: bool) -> Iterable[Finding]:
        """The longest declared training time over the budget (no log shows one)."""
        limit = C.TRAIN_BUDGET_S + C.TRAIN_TOLERANCE_S
        training_only = [st for st in statements if st.value[1]]  # type: ignore[index]
        # a declared training time says what a wallclock beside it cannot: how long training took
        over = [st for st in (training_only or statements) if st.value[0] > limit]  # type: ignore[index]
        if not over:
            return
        st = max(over, key=lambda x: x.value[0])  # type: ignore[index]
        seconds, training = st.value  # type: ignore[misc]
        what = "training time" if training else "wallclock"
        evidence = {"declared_in": st.path, "line": st.line, "declared_s": seconds, "training_alone": training,
                    "budget_s": C.TRAIN_BUDGET_S}
        if not record_track:
            severity, why = Severity.NOTE, " (non-record track: reported only)"
        elif training or seconds > C.TRAIN_BUDGET_S + C.EVAL_BUDGET_S:
            severity, why = Severity.ERROR, ""
        else:
            severity, why = Severity.WARNING, " (if that is training alone; with evaluation it may fit 10 + 10 minutes)"
        yield self.finding(
            f"the submission declares a {what} of {seconds:,.0f} s ({seconds / 60:,.1f} min), over the 600 s training "
            f"budget; no log shows the training time{why}",
            Location(st.path, st.line), snippet=st.text, evidence=evidence, severity=severity,
            confidence=Confidence.MEDIUM, key=f"declared:{st.path}:{st.line}",
        )

    def _gptq(self, row: SeedRow, record_track: bool) -> Finding | None:
        run = row.run
        if run.stop is None or row.train is None:
            return None
        after = [g for g in run.gptq if g.after_stop]
        if not after or any(g.source in ("self-generated", "random") for g in after):
            return None
        if any(g.source == "val" for g in after):
            return None  # PG307 reports calibration on validation data
        seconds = sum(g.seconds for g in after if g.seconds is not None) or None
        first = after[0]
        stop_s = row.train.value
        end_s = stop_s + seconds if seconds is not None else None
        evidence = {
            "seed": row.seed, "log": row.path, "line": first.line, "stop_s": stop_s, "hessian_s": seconds,
            "ends_at_s": round(end_s, 3) if end_s is not None else None,
            "reserve_effective_ms": run.reserve.value if run.reserve else None,
            "calibration_lines": [g.line for g in after], "source": sorted({g.source for g in after}),
        }
        severity = Severity.ERROR if record_track else Severity.NOTE
        if run.reserve is None and stop_s >= FULL_BUDGET_S:
            took = f" for {seconds:,.1f} s" if seconds else ""
            return self.finding(
                f"{seed_label(row)}: GPTQ calibrates on training data{took} after training used the whole "
                f"budget (stopped at {stop_s:,.3f} s, no time reserved)",
                at_log(row, first.line), snippet=first.text, evidence=evidence, severity=severity,
                confidence=Confidence.MEDIUM, key=f"gptq:{row.key}",
            )
        if end_s is not None and end_s > C.TRAIN_BUDGET_S + C.TRAIN_TOLERANCE_S:
            return self.finding(
                f"{seed_label(row)}: GPTQ Hessian collection on training data ends at {end_s:,.1f} s "
                f"(stop {stop_s:,.3f} s + {seconds:,.1f} s), past the 600 s budget"
                + (f" despite a {C.TRAIN_BUDGET_S - run.reserve.value / 1000:,.1f} s reserve (effective cap "
                   f"{run.reserve.value / 1000:,.1f} s)" if run.reserve else ""),
                at_log(row, first.line), snippet=first.text, evidence=evidence,
                severity=Severity.WARNING if record_track else Severity.NOTE, key=f"gptq:{row.key}",
            )
        return None


def _step_s(row: SeedRow) -> float:
    """The run's mean step time, from its last training-step line (0 when unknown)."""
    last = row.run.last_train
    if last is None or last.value[1] <= 0:
        return 0.0
    return last.value[0] / last.value[1] / 1000.0

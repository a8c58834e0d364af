"""The probes of a captured run (sandbox side): the whole pipeline rerun on a stream changed
after a cut, and each evaluation function replayed under :mod:`auditor.runtime.probes`."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.runtime import data, probes, protocol, rescore, stage
from auditor.runtime.bytecheck import Printed, bpbs_in
from auditor.runtime.capture import PassResult
from auditor.runtime.precomputed import ChangedRun, probe_precomputed
from auditor.runtime.replay import OUT_OF_TIME, Snapshot, quiet

if TYPE_CHECKING:
    from auditor.runtime.driver import Run, Session


def compare_runs(base: Run, other: Run, cut: int | None, tol: float) -> list[protocol.PipelineRow]:
    """Pass-by-pass comparison of two pipeline runs (positions <= cut, or all)."""
    out = []
    others = {(p.name, p.index): p for p in other.passes if p.complete}
    for p in base.passes:
        if not p.complete or p.depth:
            continue
        q = others.get((p.name, p.index))
        if q is None:
            out.append(protocol.PipelineRow(p.name, p.index, "inconclusive",
                                            "the pass was not captured in the other run"))
            continue
        cmp = probes.compare(p.scored(), q.scored(), upto=cut, tol=tol)
        row = protocol.PipelineRow(p.name, p.index, "pass", max_abs_delta=float(cmp.max_delta),
                                   at_position=None if cmp.at is None else int(cmp.at),
                                   positions_compared=int(cmp.compared), positions_changed=int(cmp.changed))
        if not cmp.ok:
            row.status, row.detail = "inconclusive", cmp.mismatch
        elif cmp.changed:
            row.status = "fail"
        out.append(row)
    return out


def probe_pipeline(session: Session, base: Run) -> list[protocol.PipelineRow]:
    """Rerun the whole pipeline on a stream changed after a cut (catches adaptation before scoring)."""
    s = session.settings
    cut = (s.val_tokens // 2) + 5
    perturbed = data.perturb_after(session.stream, cut, s.vocab, s.seed + 99)
    other = session.run_pipeline("perturbed", perturbed)
    session.result.runs.append(other.record)
    session.changed_run = ChangedRun(cut, perturbed, other)
    comparisons = compare_runs(base, other, cut, probes.ABS_TOL)
    moved = [c for c in comparisons if c.status == "fail"]
    noise_runs = None
    if moved:
        if time.monotonic() < session.deadline:
            again = session.run_pipeline("repeat", session.stream)
            session.result.runs.append(again.record)
            noise_runs = compare_runs(base, again, None, 0.0)
        noise = {(c.name, c.index): c.max_abs_delta if c.max_abs_delta is not None else math.inf
                 for c in (noise_runs or [])}
        for c in moved:
            floor = noise.get((c.name, c.index))
            if floor is None or not math.isfinite(floor):
                c.status, c.detail = "inconclusive", "the pipeline could not be repeated to measure its noise"
                continue
            c.tolerance = probes.tolerance(floor)
            c.noise = floor
            if c.max_abs_delta is not None and c.max_abs_delta <= c.tolerance:
                c.status = "pass"
    for c in comparisons:
        c.cut = cut
    return comparisons


def replays_per_scorer(substitution_positions: int, vocab: int) -> float:
    """Replays of one evaluation its probes make, in whole-call equivalents: two for
    determinism, about eight cuts of future perturbation and score before update, and one
    substitution per token of the vocabulary at each probed position, each stopping on average
    halfway through the call."""
    return 2 + 8 + substitution_positions * vocab / 2


def _row(result: probes.ProbeResult) -> protocol.ProbeRow:
    return protocol.ProbeRow(result.probe, result.status, result.detail, result.evidence, result.scorer,
                             round(result.seconds, 3))


def reported_evaluation(session: Session) -> str | None:
    """The evaluation whose returned value the claimed stage's line printed in the baseline run
    (as the parent ties them, :func:`auditor.runtime.stage.scorer_of`), or None."""
    if not session.result.runs:
        return None
    passes = session.result.runs[0].passes
    for label in session.job.stage_labels:
        for score in stage.printed_scores(session.result.stage_lines, label):
            found = stage.scorer_of(score, passes)
            if found is not None:
                return found.name
    return None


#: Longest the rescorer probes may take, out of the run's budget.
RESCORER_BUDGET_S = 90.0


def probe_rescorers(session: Session) -> None:
    """Probe each rescorer whose returned bits per byte the run printed on a claimed stage's
    line, or, for a script that claims nothing (no seed logs), on any bpb line
    (:mod:`auditor.runtime.rescore`); the other figures are not what a claim is about."""
    if not session.rescorers:
        return
    deadline = min(session.deadline, time.monotonic() + RESCORER_BUDGET_S)
    for r in session.rescorers:
        if time.monotonic() > deadline or any(sc.name == r.name for sc in session.result.scorers):
            continue
        slot = _printed_slot(session, r.returned)
        if slot is None:
            continue
        entry = protocol.ScorerRecord(r.name, calls=session.calls.get(r.name, 1))
        session.result.scorers.append(entry)
        watch = session.tokenizer_watch
        if session.byte_tables is None or not watch.loaded_harness or watch.loaded_other:
            entry.probes.append(_row(probes.ProbeResult(
                "substitution", "inconclusive", "the run did not count bytes with the harness's tokenizer, so the "
                "rescorer's bits per byte cannot be read as per-token losses", scorer=r.name)))
            continue
        session.checkpoint(f"probing {r.name}() as a rescorer")
        with quiet(session):
            result = rescore.probe(r, slot, session.stream, session.byte_tables, session.settings.vocab, deadline)
        entry.probes.append(_row(result))
        session.checkpoint()


def _printed_slot(session: Session, returned: list[float]) -> int | None:
    """Which returned number a claimed stage's line printed as its bits per byte (a lone
    script: any line's bpb), or None."""
    labels = session.job.stage_labels
    if labels:
        printed = [Printed(sc.bpb_text) for label in labels
                   for sc in stage.printed_scores(session.result.stage_lines, label)]
    else:
        printed = [p for line in session.result.metric_lines for p in bpbs_in(line)]
    for i, value in enumerate(returned):
        if any(p.same(value) for p in printed):
            return i
    return None


def probe_snapshots(session: Session) -> None:
    """Probe each evaluation function from its last call. The reported evaluation (the claimed
    stage's, else the one called last) goes first with most of the budget; the others share the
    rest."""
    s = session.settings
    calls = [p.name for p in session.passes if p.depth == 0]
    final = reported_evaluation(session) or (calls[-1] if calls else None)
    order = sorted(session.snapshots.values(),
                   key=lambda sn: (sn.name != final, sn.result.seconds if sn.result else 0))
    probed: list[Snapshot] = []
    # a failed probe is proof (the verdict is fail whatever the rest says): once an evaluation
    # fails one, the others (diagnostics, after the reported one) are not replayed; every probe
    # of a probed evaluation still runs, since which one fails names the rule
    decided = False
    for i, snap in enumerate(order):
        pr = snap.result
        assert pr is not None
        if decided:
            session.result.scorers.append(protocol.ScorerRecord(
                snap.name, final=snap.name == final, seconds=round(pr.seconds, 3),
                probes=[_row(probes.ProbeResult("replay", "skipped", "not replayed: a probe already failed",
                                                scorer=snap.name))]))
            continue
        twin = next((o for o in probed if o.result is not None and o.result.positions is not None
                     and np.array_equal(o.result.positions, pr.positions) and np.array_equal(o.result.nll, pr.nll)),
                    None)
        if twin is not None:  # a wrapper around an evaluation already probed (timed_eval(eval_val, ...))
            session.result.scorers.append(protocol.ScorerRecord(snap.name, final=snap.name == final,
                                                                same_as=twin.name, seconds=round(pr.seconds, 3)))
            continue
        probed.append(snap)
        entry = protocol.ScorerRecord(snap.name, final=snap.name == final, calls=session.calls.get(snap.name, 1),
                                      seconds=round(pr.seconds, 3), strategy=pr.strategy,
                                      coverage={k: int(v) for k, v in pr.coverage.items()})
        session.result.scorers.append(entry)
        if pr.seconds > s.replay_limit_s:
            entry.probes.append(_row(probes.ProbeResult("replay", "skipped",
                                                        f"one call takes {pr.seconds:.1f} s, too slow to replay",
                                                        scorer=snap.name)))
            continue
        left = session.deadline - time.monotonic()
        if left <= 0:
            entry.probes.append(_row(probes.ProbeResult("replay", "skipped", OUT_OF_TIME, scorer=snap.name)))
            continue
        # the reported evaluation: two substitution positions; the others: one
        plan = probes.ProbePlan(substitution_positions=s.substitution_positions if snap.name == final else 1,
                                late=s.late_substitution)
        chunked = "CHUNK" in " ".join(session.applied_knobs)
        share = left / (len(order) - i) if snap.name != final or len(order) == 1 else left * 0.6
        session.checkpoint(f"probing {snap.name}()")
        runner = probes.ProbeRunner(
            snap.name, lambda stream, sn=snap: session.replay(sn, stream), session.stream, s.vocab,
            chunk_tokens=s.chunk if chunked else None, plan=plan, deadline=time.monotonic() + share,
            score_at=lambda stream, t, sn=snap: session.replay_at(sn, stream, t), seq_len=s.seq_len,
            score_upto=lambda stream, cut, sn=snap: session.replay_upto(sn, stream, cut),
            cost=_cost_of(pr),
        )
        base = pr.scored()
        runner.run(base)
        entry.noise = None if runner.noise is None else float(runner.noise)
        entry.probes = [_row(r) for r in runner.results]
        decided = runner.failed
        if snap.name == final and not decided and runner.noise <= probes.NOISE_MAX:
            # inputs computed from the stream before the call: only reruns of the script see them
            session.checkpoint(f"rerunning the script with {snap.name}()'s targets substituted")
            extra = probe_precomputed(session, snap, runner.noise)
            if extra is not None:
                entry.probes.append(_row(extra))
                decided = extra.status == "fail"
        session.checkpoint()


def _cost_of(pr: PassResult) -> Any:
    """Share of a full replay needed before a target's score exists (from the record order)."""
    assert pr.positions is not None and pr.ordinals is not None
    last = {int(p): int(o) for p, o in zip(pr.positions.tolist(), pr.ordinals.tolist())}
    top = max(last.values(), default=0) + 1

    def cost(position: int) -> float:
        return (last.get(position, top) + 1) / top

    return cost

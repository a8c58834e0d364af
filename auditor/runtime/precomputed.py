"""Inputs an evaluation receives already computed from the validation stream (sandbox side).

A replay swaps the validation tokens in every tensor that carries stream positions. A value the
script computed from the stream *before* it called the evaluation (the hints of an n-gram
model, gates, masks, per-position tables passed in as arguments or kept on the model) keeps
the content of the original stream in a replay, so the replay probes cannot see what such a
value read. PR #1967 is the case: target-gated hints precomputed over the whole stream, outside
the timer, pass every replay probe.

The whole-pipeline reruns see it. For a scorer whose distribution at target t depends on the
prefix only, the NLL of t is the same whether its inputs were computed on the scored stream
itself (a rerun of the whole script) or on another stream with the same prefix (a replay of
the original call with the stream swapped in): nothing the two differ in lies before t. So:

1. the rerun on the stream changed after a cut (:func:`auditor.runtime.probing.probe_pipeline`)
   is compared with a replay on that stream. Up to the cut the two must agree (their largest
   difference is the floor of the tolerance); after it, positions where they differ show that
   the evaluation's inputs were computed from the stream (``derived``); the first changed
   target must agree: its prefix is the original one;
2. when inputs are derived from the stream, a few more reruns substitute one token at a target
   where they act, and compare that target's NLL with a replay on the same stream.

A difference is a finding (C1 of issue #1017: the score of a target read that target through
values computed before the evaluation ran). Agreement refutes it at the targets tried only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from auditor.runtime import data, probes

if TYPE_CHECKING:
    from auditor.runtime.capture import PassResult
    from auditor.runtime.driver import Run, Session
    from auditor.runtime.replay import Snapshot

PROBE = "pipeline_substitution"
#: Reruns of the whole script with one substituted target, at most.
SUBSTITUTION_RUNS = 3


@dataclass
class ChangedRun:
    """The rerun of the whole script on a stream changed after ``cut``."""

    cut: int
    stream: np.ndarray
    run: Run


def _pass_of(run: Run, snap: Snapshot) -> PassResult | None:
    assert snap.result is not None
    return next((p for p in run.passes if p.name == snap.name and p.index == snap.result.index
                 and p.complete and p.depth == 0), None)


def _last_nll(scored: probes.Scored) -> dict[int, float]:
    """Each scored target's NLL (its last score, where it was scored more than once)."""
    return {p: values[-1] for p, values in scored.by_position().items()}


def probe_precomputed(session: Session, snap: Snapshot, noise: float) -> probes.ProbeResult | None:
    """The probe of the module docstring on the evaluation ``snap`` (its baseline call), or
    None when the rerun on a changed stream did not happen (the report says so already)."""
    changed = session.changed_run
    if changed is None or snap.result is None:
        return None
    started = time.monotonic()

    def result(status: str, detail: str, **evidence: Any) -> probes.ProbeResult:
        return probes.ProbeResult(PROBE, status, detail, evidence, snap.name, time.monotonic() - started)

    rerun = _pass_of(changed.run, snap)
    if rerun is None:
        return result("inconclusive", "the evaluation's call was not captured in the rerun on the changed stream")
    try:
        replayed = session.replay(snap, changed.stream)
    except probes.Inconclusive as exc:
        return result("inconclusive", f"replay on the changed stream: {exc}")
    pipeline = rerun.scored()
    floor = probes.compare(pipeline, replayed, upto=changed.cut, tol=0.0)
    if not floor.ok:
        return result("inconclusive", f"rerun and replay up to the cut: {floor.mismatch}")
    if floor.max_delta > probes.NOISE_MAX:
        return result("inconclusive", f"up to the cut, the replay differs from the rerun by {floor.max_delta:.3g} "
                                      "nats: it does not reproduce the rerun")
    tol = probes.tolerance(max(floor.max_delta, noise))
    rerun_nll, replay_nll = _last_nll(pipeline), _last_nll(replayed)
    after = sorted(p for p in rerun_nll if p > changed.cut)
    derived = [p for p in after if p in replay_nll and abs(rerun_nll[p] - replay_nll[p]) > tol]
    first = next((p for p in after if changed.stream[p] != session.stream[p]), None)
    tried: list[dict[str, Any]] = []
    if first is not None and first in replay_nll:  # scored in both, or it proves nothing
        tried.append(_check(rerun_nll[first], replay_nll[first], first, int(session.stream[first]),
                            int(changed.stream[first]), tol))
        if tried[-1]["moved"]:
            return _failed(result, tried[-1], changed.cut, "the first target after the cut")
    if derived:
        ran = 0
        for t, v in _substitutions(session, snap, derived):
            if time.monotonic() + 1.5 * _seconds(session) > session.deadline:
                break
            outcome = _substituted_run(session, snap, t, v, tol)
            if isinstance(outcome, str):
                return result("inconclusive", outcome, derived_positions=len(derived))
            ran += 1
            tried.append(outcome)
            if outcome["moved"]:
                return _failed(result, outcome, None, "a substituted target")
        if not ran:
            return result("skipped", f"the evaluation's inputs were computed from the stream ({len(derived)} later "
                                     "target(s) differ between rerun and replay), and no rerun with a substituted "
                                     "target fitted in the time budget", derived_positions=len(derived))
    if not tried:
        return result("inconclusive", "no changed target was scored after the cut")
    where = ", ".join(f"{c['position']} ({c['original_token']} -> {c['token']})" for c in tried)
    source = (f"the evaluation's inputs were computed from the stream ({len(derived)} later target(s) differ "
              "between rerun and replay); " if derived else "")
    return result("pass", f"{source}rerun and replay agree at target(s) {where} (tolerance {tol:.2g})",
                  positions=[c["position"] for c in tried], derived_positions=len(derived), tolerance=tol,
                  floor=floor.max_delta)


def _check(rerun: float, replay: float, position: int, original: int, token: int, tol: float) -> dict[str, Any]:
    """One target's NLL in the rerun against the replay's."""
    delta = abs(rerun - replay)
    return {"position": position, "original_token": original, "token": token, "rerun_nll": rerun,
            "replay_nll": replay, "delta": delta, "tolerance": tol, "moved": delta > tol}


def _failed(result: Any, check: dict[str, Any], cut: int | None, which: str) -> probes.ProbeResult:
    how = (f"every token after index {cut} changed" if cut is not None
           else f"token {check['original_token']} at index {check['position']} replaced by {check['token']}")
    return result(
        "fail",
        f"{which} ({check['position']}) scores {check['rerun_nll']:.4g} nats when the whole script reruns on the "
        f"changed stream ({how}) and {check['replay_nll']:.4g} when the evaluation is replayed on the same stream "
        "with the inputs it was given for the original one: values computed before the evaluation read the token "
        "being scored",
        at_position=check["position"], max_abs_delta=check["delta"], tolerance=check["tolerance"],
        original_token=check["original_token"], token=check["token"], rerun_nll=check["rerun_nll"],
        replay_nll=check["replay_nll"], **({"cut": cut} if cut is not None else {}))


def _seconds(session: Session) -> float:
    runs = [r for r in session.result.runs if r.error is None]
    return max((r.seconds for r in runs), default=0.0)


def _substitutions(session: Session, snap: Snapshot, derived: list[int]) -> list[tuple[int, int]]:
    """Targets where the derived inputs act, spread over them, each with a token other than
    its own (BOS left out: it would move a document boundary). The token is one that starts a
    word where the original continues one, or the other way round, when the tokenizer says
    which: word-level state (word-start and within-word experts, word hashes) is what such
    inputs keep, and a token of the same kind would leave it as it was."""
    assert snap.result is not None and snap.result.positions is not None
    scored = set(snap.result.positions.tolist())
    picks = [p for p in derived if p in scored and session.stream[p] != data.BOS]
    if len(picks) > SUBSTITUTION_RUNS:
        picks = [picks[int(i)] for i in np.linspace(0, len(picks) - 1, SUBSTITUTION_RUNS)]
    rng = np.random.default_rng(session.settings.seed + 7)
    tokens = np.arange(data.FIRST_REGULAR, session.settings.vocab)
    tables = session.byte_tables
    if tables is not None and len(tables.is_boundary) >= session.settings.vocab:
        tokens = tokens[~tables.is_boundary[tokens]]
    out = []
    for t in picks:
        original = int(session.stream[t])
        others = tokens[tokens != original]
        if tables is not None and 0 <= original < len(tables.has_leading_space):
            other_kind = others[tables.has_leading_space[others] != tables.has_leading_space[original]]
            others = other_kind if len(other_kind) else others
        if len(others):
            out.append((t, int(rng.choice(others))))
    return out


def _substituted_run(session: Session, snap: Snapshot, t: int, v: int, tol: float) -> dict[str, Any] | str:
    stream = data.substitute(session.stream, t, v)
    passes, calls = session.passes, session.calls
    try:
        run = session.run_pipeline(f"substituted {t}", stream)
    finally:
        session.passes, session.calls = passes, calls
    session.result.runs.append(run.record)
    rerun = _pass_of(run, snap)
    if rerun is None:
        return f"the evaluation's call was not captured in the rerun with target {t} substituted"
    try:
        replayed = session.replay_at(snap, stream, t)
    except probes.Inconclusive as exc:
        return f"replay with target {t} substituted: {exc}"
    scored = rerun.scored()
    rerun_t = _last_nll(scored).get(t)
    if rerun_t is None:
        return f"target {t} was not scored in the rerun with it substituted"
    # the targets before t have the original prefix and token: the rerun must give them the
    # original run's NLLs, or it is not reproducible enough to compare at t
    assert snap.result is not None
    before = probes.compare(snap.result.scored(), scored, upto=t - 1, tol=0.0)
    if not before.ok:
        return f"rerun with target {t} substituted, targets before it: {before.mismatch}"
    if before.max_delta > probes.NOISE_MAX:
        return (f"the rerun with target {t} substituted moved earlier targets by {before.max_delta:.3g} nats: "
                "the script does not reproduce its own runs")
    tol = max(tol, probes.tolerance(before.max_delta))
    return _check(rerun_t, replayed, t, int(session.stream[t]), v, tol)

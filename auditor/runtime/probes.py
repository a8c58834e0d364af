"""The four probes of issue #1017's conditions, on any scorer that yields per-position NLLs.

A *scorer* maps a token stream to the NLLs it assigned, position by position (``Scored``:
the stream index of each scored target and its NLL, in scoring order). The probes perturb the
stream and compare:

- **determinism** (PG201): the same stream twice; the largest difference is the noise floor
  that sets every other tolerance;
- **future perturbation** (PG202): for a cut k, every token after k changes (document
  boundaries kept); the NLL of every target at index <= k must stay within tolerance. Cuts
  are taken at random, at window starts +-1 (read from where the scorer's records begin) and
  at chunk starts +-1;
- **target substitution** (PG203): at a position t, x_t := v for every v of the vocabulary
  (prefix and suffix fixed) and the NLL the scorer gives v is read; sum_v exp(-NLL_t(v))
  must not exceed 1. BOS is left out (it would move a document boundary), so a normalized
  scorer sums to slightly less than 1, never more;
- **score before update** (PG204): for an adaptive scorer, the first targets of chunk c keep
  their NLL when the rest of chunk c (and everything after it) changes.

Every comparison needs the same positions scored in both runs; when they differ the probe is
``inconclusive`` (the scoring structure itself moved), never ``pass``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auditor.runtime import data

#: Smallest tolerance on an NLL difference (nats); the determinism noise floor raises it.
ABS_TOL = 1e-6
#: How far above 1 a probability sum may go before it is a finding.
SUM_TOL = 1e-3
#: Noise beyond which the scorer is reported as nondeterministic.
NOISE_REPORT = 1e-4
#: Noise beyond which the NLL probes cannot conclude.
NOISE_MAX = 1e-2


class Inconclusive(Exception):
    """The scorer could not produce a usable capture (the message says why)."""


@dataclass
class Scored:
    """NLLs in scoring order, with the stream index of each scored target."""

    positions: np.ndarray  # int64
    nll: np.ndarray  # float64
    returned: float | None = None  # the loss the scorer itself reported, when it reports one
    seconds: float = 0.0
    starts: list[int] | None = None  # first targets of the scorer's windows (its records), when known

    def by_position(self) -> dict[int, list[float]]:
        out: dict[int, list[float]] = {}
        for p, v in zip(self.positions.tolist(), self.nll.tolist()):
            out.setdefault(p, []).append(v)
        return out


@dataclass
class Structure:
    """Where a scorer's windows and chunks begin (stream indices of first scored targets)."""

    window_starts: list[int] = field(default_factory=list)
    chunk_starts: list[int] = field(default_factory=list)
    doc_starts: list[int] = field(default_factory=list)


@dataclass
class ProbeResult:
    probe: str  # determinism | future | substitution | score_before_update | pipeline_future | ...
    status: str  # pass | fail | inconclusive | skipped
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    scorer: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"probe": self.probe, "status": self.status, "detail": self.detail, "evidence": self.evidence,
                "scorer": self.scorer, "seconds": round(self.seconds, 3)}


@dataclass
class Comparison:
    max_delta: float
    at: int | None  # stream index of the largest difference
    compared: int  # positions compared
    changed: int  # positions beyond tolerance
    mismatch: str = ""  # why the two runs cannot be compared

    @property
    def ok(self) -> bool:
        return not self.mismatch


def compare(base: Scored, other: Scored, upto: int | None = None, tol: float = ABS_TOL,
            positions: Sequence[int] | None = None) -> Comparison:
    """Largest NLL difference at target indices <= ``upto`` (or at ``positions``)."""
    a, b = base.by_position(), other.by_position()
    if positions is not None:
        keys = [p for p in positions if p in a]
    else:
        keys = [p for p in a if upto is None or p <= upto]
    worst, at, changed = 0.0, None, 0
    for p in keys:
        va, vb = a[p], b.get(p)
        if vb is None or len(vb) != len(va):
            return Comparison(math.inf, p, len(keys), changed,
                              f"target {p} was scored {len(va)} time(s) in one run and {0 if vb is None else len(vb)} "
                              "in the other")
        for x, y in zip(va, vb):
            if not (math.isfinite(x) and math.isfinite(y)):
                if x == y:
                    continue
                return Comparison(math.inf, p, len(keys), changed, f"non-finite NLL at target {p}")
            d = abs(x - y)
            if d > worst:
                worst, at = d, p
            if d > tol:
                changed += 1
    if upto is not None and positions is None:
        extra = [p for p in b if p <= upto and p not in a]
        if extra:
            return Comparison(worst, extra[0], len(keys), changed,
                              f"target {extra[0]} was scored in one run only")
    return Comparison(worst, at, len(keys), changed)


#: Where :attr:`ProbePlan.late` substitutes (fractions of the stream).
LATE_FRACTIONS = (0.95, 0.8)


@dataclass
class ProbePlan:
    """How much probing to do (the driver shrinks it to fit a time budget)."""

    random_cuts: int = 2
    window_cuts: int = 1  # window starts probed (each at -2, -1, 0)
    chunk_cuts: int = 1  # chunk starts probed (at -2, -1 here; 0 and +1 by score before update)
    substitution_positions: int = 3
    #: Substitute at the end of the stream first: set when the stream was grown because the
    #: scored mechanism did not act on a short one (it then has the most state behind it there).
    late: bool = False
    skip_tokens: tuple[int, ...] = (data.BOS,)
    seed: int = 1017


def tolerance(noise: float) -> float:
    return max(ABS_TOL, 10.0 * noise)


def _cuts_around(starts: Sequence[int], count: int, lo: int, hi: int) -> list[int]:
    """Up to ``count`` interior starts, each as cuts start-2, start-1, start (target indices).

    A chunk that begins with target s: cut s-1 changes all of the chunk; cut s keeps its first
    target and changes the rest; cut s-2 changes the last target before it as well.
    """
    inner = [s for s in starts if lo + 2 < s < hi - 1]
    if not inner:
        return []
    picks = [inner[0]]
    if count > 1 and len(inner) > 1:
        picks.append(inner[len(inner) // 2] if len(inner) > 2 else inner[-1])
    cuts: list[int] = []
    for s in picks[:count]:
        cuts.extend([s - 2, s - 1, s])
    return cuts


def structure_from(scored: Scored, chunk_tokens: int | None = None, stream: np.ndarray | None = None,
                   seq_len: int | None = None) -> Structure:
    """Window starts from the capture (where a new run of consecutive targets or a record begins),
    plus the starts of sequences of ``seq_len`` (plain evaluation scores them as one record)."""
    pos = scored.positions
    starts = [int(pos[0])] if len(pos) else []
    for i in range(1, len(pos)):
        if pos[i] != pos[i - 1] + 1:
            starts.append(int(pos[i]))
    if scored.starts:
        starts.extend(scored.starts)
    if seq_len and len(pos):
        starts.extend(range(seq_len + 1, int(pos.max()), seq_len))
    chunks: list[int] = []
    if chunk_tokens and len(pos):
        first, last = int(pos.min()), int(pos.max())
        chunks = [c for c in range(chunk_tokens + 1, last + 1, chunk_tokens) if c > first]
    docs = [int(i) for i in np.flatnonzero(stream == data.BOS)] if stream is not None else []
    return Structure(sorted(set(starts)), chunks, docs)


ScoreFn = Callable[[np.ndarray], Scored]
ScoreAtFn = Callable[[np.ndarray, int], float]


@dataclass
class ProbeRunner:
    """Runs the probes on one scorer within a time budget."""

    name: str
    score: ScoreFn
    stream: np.ndarray
    vocab: int
    chunk_tokens: int | None = None
    plan: ProbePlan = field(default_factory=ProbePlan)
    deadline: float = math.inf
    adaptive: bool = True  # probe score-before-update (chunked scorers)
    seq_len: int | None = None  # sequence length of plain evaluation (its window starts)
    score_at: ScoreAtFn | None = None  # the NLL of one target (may stop the scorer early)
    score_upto: Callable[[np.ndarray, int], Scored] | None = None  # NLLs of targets <= a cut (stops early)
    cost: Callable[[int], float] | None = None  # share of a full run needed to score a target (0..1)
    results: list[ProbeResult] = field(default_factory=list)
    noise: float = 0.0
    base: Scored | None = None
    fidelity: float = 0.0  # how far a rerun is from the original run (0 when it reproduces it)

    def _left(self) -> float:
        return self.deadline - time.monotonic()

    def _add(self, probe: str, status: str, detail: str, started: float, **evidence: Any) -> ProbeResult:
        result = ProbeResult(probe, status, detail, evidence, self.name, time.monotonic() - started)
        self.results.append(result)
        return result

    def run(self, base: Scored | None = None) -> list[ProbeResult]:
        started = time.monotonic()
        try:
            self.base = base or self.score(self.stream)
        except Inconclusive as exc:
            self._add("capture", "inconclusive", str(exc), started)
            return self.results
        if not len(self.base.positions):
            self._add("capture", "inconclusive", "the scorer scored no position", started)
            return self.results
        if not np.all(np.isfinite(self.base.nll)):
            self._add("capture", "inconclusive", "the scorer produced non-finite NLLs", started)
            return self.results
        self.determinism()
        if self.noise > NOISE_MAX:
            for probe in ("future", "substitution"):
                self._add(probe, "inconclusive", f"scores vary by {self.noise:.3g} nats between identical runs",
                          time.monotonic())
            return self.results
        structure = structure_from(self.base, self.chunk_tokens, self.stream, self.seq_len)
        if self.adaptive and structure.chunk_starts:
            self.score_before_update(structure)
        self.future(structure)
        self.substitution(structure)
        return self.results

    @property
    def failed(self) -> bool:
        return any(r.status == "fail" for r in self.results)

    # -- probes ---------------------------------------------------------------------------

    def determinism(self) -> None:
        """Two reruns on the same stream: their difference is the noise floor. When both agree but
        differ from the original run, the rerun does not reproduce it (state the harness could
        not restore): the probes then compare reruns with reruns, never with the original."""
        started = time.monotonic()
        assert self.base is not None
        try:
            first = self.score(self.stream)
            again = self.score(self.stream)
        except Inconclusive as exc:
            self._add("determinism", "inconclusive", str(exc), started)
            self.noise = math.inf
            return
        fidelity = compare(self.base, first, tol=0.0)
        if fidelity.ok and fidelity.max_delta > NOISE_REPORT:
            self.base = first
            self.fidelity = fidelity.max_delta
        cmp = compare(first, again, tol=0.0)
        if not cmp.ok:
            self._add("determinism", "fail", f"two runs on the same stream scored different positions: {cmp.mismatch}",
                      started, mismatch=cmp.mismatch)
            self.noise = math.inf
            return
        self.noise = cmp.max_delta
        status = "fail" if cmp.max_delta > NOISE_REPORT else "pass"
        where = f" at target {cmp.at}" if cmp.at is not None else ""
        detail = f"same stream twice: largest |dNLL| {cmp.max_delta:.3g}{where} over {cmp.compared} positions"
        if self.fidelity:
            detail += f" (reruns differ from the original run by up to {self.fidelity:.3g}; reruns compared)"
        self._add("determinism", status, detail, started, max_abs_delta=cmp.max_delta, at_position=cmp.at,
                  positions=cmp.compared, rerun_vs_original=self.fidelity)

    def _perturb_and_compare(self, probe: str, cuts: list[int], kind: str) -> None:
        assert self.base is not None
        tol = tolerance(self.noise)
        last = int(self.base.positions.max())
        rng_seed = self.plan.seed
        worst: ProbeResult | None = None
        ran = 0
        for i, cut in enumerate(cuts):
            if self._left() <= 0:
                self._add(probe, "skipped", f"time budget spent after {ran} of {len(cuts)} cuts", time.monotonic(),
                          cuts_run=ran, cuts_planned=len(cuts))
                return
            started = time.monotonic()
            stream = data.perturb_after(self.stream, cut, self.vocab, rng_seed + i)
            try:
                other = self.score_upto(stream, cut) if self.score_upto is not None else self.score(stream)
            except Inconclusive as exc:
                self._add(probe, "inconclusive", f"cut {cut}: {exc}", started, cut=cut)
                return
            ran += 1
            cmp = compare(self.base, other, upto=cut, tol=tol)
            if not cmp.ok:
                self._add(probe, "inconclusive", f"cut {cut}: {cmp.mismatch}", started, cut=cut)
                return
            if cmp.changed:
                result = ProbeResult(
                    probe, "fail",
                    f"changing every token after index {cut} ({kind}) changed the NLL of {cmp.changed} earlier "
                    f"target(s); largest |dNLL| {cmp.max_delta:.4g} at target {cmp.at} (tolerance {tol:.2g})",
                    {"cut": cut, "cut_kind": kind, "perturbed_from": cut + 1, "perturbed_to": int(len(self.stream) - 1),
                     "max_abs_delta": cmp.max_delta, "at_position": cmp.at, "positions_changed": cmp.changed,
                     "positions_compared": cmp.compared, "tolerance": tol, "last_scored": last},
                    self.name, time.monotonic() - started)
                if worst is None or result.evidence["max_abs_delta"] > worst.evidence["max_abs_delta"]:
                    worst = result
        if worst is not None:
            self.results.append(worst)
            return
        if ran:
            self._add(probe, "pass", f"{ran} cut(s) ({kind}): no earlier NLL moved beyond {tol:.2g}",
                      time.monotonic(), cuts=cuts[:ran], tolerance=tol)

    def future(self, structure: Structure) -> None:
        assert self.base is not None
        lo, hi = int(self.base.positions.min()), int(self.base.positions.max())
        rng = np.random.default_rng(self.plan.seed)
        cuts: list[int] = []
        sbu = self.adaptive and bool(structure.chunk_starts)  # chunk start and +1: score before update
        cuts += [c for c in _cuts_around(structure.chunk_starts, self.plan.chunk_cuts, lo, hi)
                 if not (sbu and c in structure.chunk_starts)]
        window_starts = [s for s in structure.window_starts if s not in structure.chunk_starts]
        cuts += _cuts_around(window_starts, self.plan.window_cuts, lo, hi)
        if hi - lo > 4:
            cuts += [int(c) for c in rng.integers(lo + 1, hi - 1, size=self.plan.random_cuts)]
        cuts = sorted(dict.fromkeys(c for c in cuts if lo <= c < hi))
        if not cuts:
            self._add("future", "inconclusive", "no position to cut at", time.monotonic())
            return
        self._perturb_and_compare("future", cuts, "random, window and chunk starts +-1")

    def score_before_update(self, structure: Structure) -> None:
        """The first targets of a chunk keep their NLL when the rest of the chunk changes."""
        assert self.base is not None
        hi = int(self.base.positions.max())
        starts = [s for s in structure.chunk_starts if s < hi - 2]
        cuts = []
        for s in starts[: max(1, self.plan.chunk_cuts)]:
            cuts.extend([s, s + 1])
        if not cuts:
            return
        self._perturb_and_compare("score_before_update", cuts, "first targets of a chunk kept, rest of it changed")

    def substitution_positions(self, structure: Structure) -> list[int]:
        """First targets of the second and third chunks (state built from earlier chunks: where a
        cache updated one token too far shows), then positions a fifth, two and three fifths into
        the stream (cheap to reach: a replay stops once its target is scored). With
        :attr:`ProbePlan.late`, targets in the last fifth of the stream instead."""
        assert self.base is not None
        scored = sorted(set(self.base.positions.tolist()))
        regular = [p for p in scored if self.stream[p] != data.BOS and p > 0]
        if not regular:
            return []
        n = len(self.stream)
        if self.plan.late:
            ends = [next(p for p in regular if p >= int(frac * n)) for frac in LATE_FRACTIONS
                    if regular[-1] >= int(frac * n)]
            return list(dict.fromkeys(ends or regular[-1:]))[: self.plan.substitution_positions]
        picks: list[int] = []
        for s in structure.chunk_starts[:2]:
            cands = [p for p in regular if p >= s]
            if cands:
                picks.append(cands[0])
        for frac in (0.2, 0.4, 0.6):
            cands = [p for p in regular if p >= int(frac * n)]
            if cands:
                picks.append(cands[0])
        if not picks:
            picks.append(regular[len(regular) // 2])
        if self.cost is not None:
            # Where the scorer does not go left to right (documents sorted by length), the cheapest
            # target with state behind it (past the first chunk, a fifth into the stream) comes first.
            floor = structure.chunk_starts[0] if structure.chunk_starts else int(0.2 * n)
            later = [p for p in regular if p >= floor]
            if later:
                cheapest = min(later, key=self.cost)
                if self.cost(cheapest) < 0.5 * min(self.cost(p) for p in picks):
                    picks.insert(0, cheapest)
        return list(dict.fromkeys(picks))[: self.plan.substitution_positions]

    def substitution(self, structure: Structure) -> None:
        assert self.base is not None
        positions = self.substitution_positions(structure)
        if not positions:
            self._add("substitution", "inconclusive", "no regular scored position to substitute at", time.monotonic())
            return
        tol = max(SUM_TOL, 100.0 * self.noise)
        done: list[dict[str, Any]] = []
        for t in positions:
            started = time.monotonic()
            total = 0.0
            nlls: dict[int, float] = {}
            for v in range(self.vocab):
                if v in self.plan.skip_tokens:
                    continue
                if self._left() <= 0:
                    if done:
                        break
                    self._add("substitution", "skipped", f"time budget spent at target {t} (token {v} of {self.vocab})",
                              started, position=t)
                    return
                stream = data.substitute(self.stream, t, v)
                try:
                    if self.score_at is not None:
                        value = self.score_at(stream, t)
                    else:
                        values = self.score(stream).by_position().get(t)
                        if not values:
                            raise Inconclusive(f"target {t} was not scored with token {v}")
                        value = values[-1]
                except Inconclusive as exc:
                    self._add("substitution", "inconclusive", f"target {t}, token {v}: {exc}", started, position=t)
                    return
                if not math.isfinite(value):
                    self._add("substitution", "inconclusive", f"target {t}, token {v}: non-finite NLL", started,
                              position=t)
                    return
                nlls[v] = value
                total += math.exp(-value)
            else:
                original = int(self.stream[t])
                best = min(nlls, key=nlls.get) if nlls else None
                evidence = {"position": t, "sum": total, "tokens": len(nlls), "original_token": original,
                            "original_nll": nlls.get(original), "most_likely_token": best,
                            "most_likely_p": math.exp(-nlls[best]) if best is not None else None,
                            "tolerance": tol, "left_out": list(self.plan.skip_tokens)}
                if total > 1.0 + tol:
                    self._add("substitution", "fail",
                              f"at target {t}, the probabilities the scorer gives the {len(nlls)} candidate tokens sum "
                              f"to {total:.4g} (> 1): the score depends on the token it scores", started, **evidence)
                    return
                done.append(evidence)
                continue
            break
        if done:
            sums = ", ".join(f"{d['position']}: {d['sum']:.6f}" for d in done)
            self._add("substitution", "pass", f"sums over the vocabulary (BOS left out) at targets {sums}",
                      time.monotonic(), positions=[d["position"] for d in done], sums=[d["sum"] for d in done],
                      tolerance=tol)

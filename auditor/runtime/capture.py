"""What one call of an evaluation function scored: the per-token losses behind the number it
returned (sandbox side).

:func:`select_scored` picks, among the records :mod:`auditor.runtime.track` made during the
call, the set whose mean is the returned loss; :class:`PassResult` keeps them by stream
position for the probes. :func:`walk` and :func:`assign_masked` reach the token tensors held
in arguments and module state, so that replays can swap the stream in place.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from auditor.runtime import probes, protocol, track
from auditor.runtime.track import TRACKER


@dataclass
class PassResult:
    name: str
    index: int  # how many calls of this function came before it in the run
    depth: int
    seconds: float
    returned: list[float]
    complete: bool
    reason: str = ""
    strategy: str = ""
    positions: np.ndarray | None = None
    nll: np.ndarray | None = None
    starts: list[int] = field(default_factory=list)
    returned_loss: float | None = None
    coverage: dict[str, int] = field(default_factory=dict)
    ordinals: np.ndarray | None = None  # record ordinal of each scored element
    ignored: bool = False  # not an evaluation after all
    record_positions: dict[int, np.ndarray] = field(default_factory=dict)  # ordinal -> all positions

    def scored(self) -> probes.Scored:
        assert self.positions is not None and self.nll is not None
        return probes.Scored(self.positions, self.nll, self.returned_loss, self.seconds, self.starts)

    def summary(self) -> protocol.PassRecord:
        return protocol.PassRecord(
            name=self.name, index=self.index, depth=self.depth, seconds=round(self.seconds, 3),
            returned=self.returned[:4], complete=self.complete, reason=self.reason, strategy=self.strategy,
            scored=0 if self.positions is None else int(len(self.positions)),
            coverage={k: int(v) for k, v in self.coverage.items()},
        )


def _floats(value: Any, depth: int = 0) -> list[float]:
    """Finite floats in a returned value (tuples, lists, dicts, tensors, numbers)."""
    out: list[float] = []
    if depth > 2:
        return out
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        if math.isfinite(float(value)):
            out.append(float(value))
    elif isinstance(value, torch.Tensor) and value.numel() == 1:
        out.append(float(value.detach().double().item()))
    elif isinstance(value, np.ndarray) and value.size == 1:
        out.append(float(value.reshape(-1)[0]))
    elif isinstance(value, np.generic):
        out.append(float(value))
    elif isinstance(value, (tuple, list)):
        for v in value[:8]:
            out.extend(_floats(v, depth + 1))
    elif isinstance(value, dict):
        for k, v in list(value.items())[:16]:
            if isinstance(k, str) and ("loss" in k or "nll" in k or "bpb" in k):
                out.extend(_floats(v, depth + 1))
    return [x for x in out if math.isfinite(x)]


def _has_number(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_has_number(v) for v in value[:8])
    return isinstance(value, (float, np.floating)) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def _matches(total: float, count: int, returned: list[float]) -> float | None:
    """The returned number that is the mean (or the sum) of the captured losses, if any."""
    mean = total / count
    for r in returned:
        if abs(mean - r) <= 2e-6 * max(1.0, abs(r)):
            return r
    for r in returned:
        if abs(total - r) <= 2e-6 * max(1.0, abs(r)):
            return r / count
    return None


#: Suffix of a strategy whose returned mean counts the exact zeros among its terms.
WITH_ZEROS = "+zeros"


def scored_terms(strategy: str, values: np.ndarray) -> np.ndarray:
    """Which terms of a capture are scores: exact zeros are masked-out terms, unless the
    evaluation's returned mean counted them (a mixture clipped to probability 1 scores its
    target at exactly 0), as the strategy that matched it says (:data:`WITH_ZEROS`)."""
    if strategy.endswith(WITH_ZEROS):
        return np.ones(values.shape, dtype=bool)
    return values != 0.0


def select_scored(pass_id: int, returned: list[float]) -> tuple[str, list[track.Record], float | None, str]:
    """The records whose mean is the returned loss: (strategy, records, loss, why-not).

    Strategies, in order: the records whose provenance reached a ``.item()`` of the pass (the
    accumulator), their union (all of it, then only the latest score of each target, then the
    scores of the last line of code that scored each target), every record made without
    autograd (scores, not optimisation losses), the same keeping only the latest scores
    (re-scoring passes), and the records made on one line of the audited code (one
    accumulator's terms). Exact zeros are masked-out terms unless only the mean that counts
    them is the returned loss (strategy suffix ``+zeros``).
    """
    records = {rid: r for rid, r in TRACKER.records.items() if pass_id in r.passes}
    if not records:
        return "", [], None, "no per-token loss of a validation target was seen"
    if not returned:
        return "", [], None, "the function returned no number to check the capture against"
    candidates: list[tuple[str, Any]] = []
    provs = [prov for value, prov, passes in TRACKER.items if pass_id in passes]
    seen: set[frozenset[int]] = set()
    for prov in reversed(provs):
        if prov not in seen:
            seen.add(prov)
            candidates.append(("provenance", lambda prov=prov: [records[r] for r in sorted(prov) if r in records]))
    if provs:
        union = frozenset().union(*provs)
        candidates.append(("provenance-union", lambda: [records[r] for r in sorted(union) if r in records]))
        # a mixer that reads the model's losses and sums its own per window (``float(mixed.sum())``)
        # reaches the accumulator with both: the latest score of each target is the mixed one
        candidates.append(("provenance-union-latest", lambda: _latest([records[r] for r in sorted(union) if r in records])))
        candidates.append(("provenance-union-site", lambda: _latest_site([records[r] for r in sorted(union) if r in records])))
    for acc in sorted({r.acc for r in records.values() if r.acc}):  # scalars added to one accumulator
        candidates.append(("accumulator", lambda acc=acc: [r for _, r in sorted(records.items()) if r.acc == acc]))
    no_grad = [r for _, r in sorted(records.items()) if not r.grad]
    candidates.append(("no-grad", lambda: no_grad))
    candidates.append(("no-grad-latest", lambda: _latest(no_grad)))
    candidates.append(("no-grad-site", lambda: _latest_site(no_grad)))
    # one line of code that sums scores into one accumulator, beside a line summing the model's
    # own losses into another (``mixed_sum += float(...)``, then ``model_sum += float(...)``)
    for site in dict.fromkeys(r.site for r in no_grad if r.site is not None):
        candidates.append(("one-line", lambda site=site: [r for r in no_grad if r.site == site]))
    candidates.append(("latest", lambda: _latest([r for _, r in sorted(records.items())])))
    tried = []
    for strategy, make in candidates:
        chosen = make()
        if not chosen:
            continue
        values = np.concatenate([r.values for r in chosen])
        # A loss of exactly 0 is a masked-out term ((nll * mask).sum()), not a scored target.
        counted = int(np.count_nonzero(values))
        if not counted:
            continue
        loss = _matches(float(values.sum()), counted, returned)
        if loss is None and counted < values.size and not strategy.endswith("latest"):
            # a mixture clipped to probability 1 scores some targets at exactly 0: when the
            # returned mean counts them, they are scored terms, not masked ones
            loss = _matches(float(values.sum()), int(values.size), returned)
            strategy += WITH_ZEROS if loss is not None else ""
        if loss is not None:
            return strategy, chosen, loss, ""
        kinds = ",".join(sorted({r.kind for r in chosen}))
        zeros = f" (+{values.size - counted} zero)" if values.size > counted else ""
        tried.append(f"{strategy}: mean {float(values.sum()) / counted:.6g} over {counted}{zeros} [{kinds}]")
    return "", [], None, (f"no set of captured per-token losses averages to the returned value(s) "
                          f"{', '.join(f'{r:.6g}' for r in returned[:3])} ({'; '.join(tried[-4:])})")


def _latest(chosen: list[track.Record]) -> list[track.Record]:
    """Per target, only the most recent non-zero score (copies; the records are not changed)."""
    return _last_owner(chosen, lambda i, rec: i)


def _latest_site(chosen: list[track.Record]) -> list[track.Record]:
    """Per target, the scores made by the last line of code that scored it, as many as that
    line made (copies).

    A second pass that rescores some windows (``loss_sum = loss_sum - old + new``) replaces
    the first pass's scores of those targets, while a window filter that scores the stream's
    last targets twice (a last window of exactly ``stride`` targets scored from 0) counts them
    twice. :func:`_latest` keeps one score per target and so misses the second.
    """
    return _last_owner(chosen, lambda i, rec: rec.site)


def _last_owner(chosen: list[track.Record], owner_of: Callable[[int, track.Record], Any]) -> list[track.Record]:
    """Per target, the non-zero scores of its last owner (``owner_of(index, record)``: the
    record itself, or the line that made it), as copies of the records holding them."""
    owner: dict[int, Any] = {}
    for i, rec in enumerate(chosen):
        for p, v in zip(rec.positions.tolist(), rec.values.tolist()):
            if v != 0.0:
                owner[p] = owner_of(i, rec)
    out = []
    for i, rec in enumerate(chosen):
        mine = owner_of(i, rec)
        mask = np.array([v != 0.0 and owner[p] == mine for p, v in zip(rec.positions.tolist(), rec.values.tolist())],
                        dtype=bool)
        if mask.any():
            out.append(dataclasses.replace(rec, positions=rec.positions[mask], values=rec.values[mask]))
    return out


def assign_masked(t: torch.Tensor, mask: torch.Tensor, values: torch.Tensor) -> None:
    """t[mask] = values, in place, for any integer dtype (uint16 included) and inference tensors."""
    raw = t.detach().numpy()
    raw = raw.view(np.ndarray) if isinstance(raw, np.ndarray) else raw
    raw[mask.numpy()] = values.numpy().astype(raw.dtype)


def set_in(holder: Any, key: Any, value: Any) -> None:
    try:
        if isinstance(holder, dict):
            holder[key] = value
        elif isinstance(holder, list):
            holder[key] = value
        elif holder is not None and not isinstance(holder, tuple):
            setattr(holder, key, value)
    except Exception:
        pass


def walk(obj: Any, max_depth: int = 3):
    """(holder, key, value) for values reachable through tuples, lists, dicts and plain objects."""
    seen: set[int] = set()
    stack = [(None, None, obj, 0)]
    while stack:
        holder, key, value, depth = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield holder, key, value
        if depth >= max_depth:
            continue
        if isinstance(value, (torch.Tensor, np.ndarray, str, bytes, int, float, types.ModuleType, type,
                              torch.nn.Module)) or callable(value) and not hasattr(value, "__dict__"):
            continue
        if isinstance(value, (tuple, list)):
            for i, v in enumerate(value[:256]):
                stack.append((value, i, v, depth + 1))
        elif isinstance(value, dict):
            for k, v in list(value.items())[:512]:
                if isinstance(k, str) and k.startswith("__"):
                    continue
                stack.append((value, k, v, depth + 1))
        elif hasattr(value, "__dict__") and not isinstance(value, types.FunctionType):
            try:
                items = list(vars(value).items())[:128]
            except TypeError:
                continue
            for k, v in items:
                stack.append((value, k, v, depth + 1))

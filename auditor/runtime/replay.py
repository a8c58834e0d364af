"""Replays: call an evaluation function again, from a snapshot of its arguments, on a changed
stream (sandbox side).

The probes need the NLLs an evaluation gives on perturbed streams. At its first call the
session deep-copies the arguments, the module's state and the random state
(:class:`Snapshot`); a replay restores them, swaps the validation tokens in every tensor that
carries stream positions, and calls the function again, optionally stopping as soon as the
record that scores a watched target exists (:class:`auditor.runtime.track.StopReplay`).
:class:`Replays` is the half of the session that does this.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import io
import random
import sys
import time
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from auditor.runtime import probes, track
from auditor.runtime.capture import PassResult, assign_masked, scored_terms, walk
from auditor.runtime.track import TRACKER

OUT_OF_TIME = "time budget spent"


@dataclass
class Snapshot:
    fn: Any
    name: str
    args: Any
    kwargs: Any
    rng: tuple[Any, Any, Any]
    module: Any
    result: PassResult | None = None


class Replays:
    """The replay half of :class:`auditor.runtime.driver.Session` (its attributes are the session's)."""

    def _snapshot(self, fn: Any, name: str, args: tuple, kwargs: dict) -> Snapshot | None:
        rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        state = {k: v for k, v in vars(self.module).items()
                 if not k.startswith("__") and isinstance(v, (dict, list, set, np.ndarray, torch.Tensor))}
        try:
            with torch.no_grad():
                copied = copy.deepcopy((args, kwargs, state))
        except Exception as exc:
            self.result.notes.append(f"{name}: arguments could not be copied for replays ({type(exc).__name__}: {exc})")
            return None
        snap = Snapshot(fn, name, copied[0], copied[1], rng, self.module)
        snap.globals = copied[2]  # type: ignore[attr-defined]
        return snap

    def _replay(self, snap: Snapshot, stream: np.ndarray, watch: int | None = None) -> track.StopReplay | None:
        """Call the evaluation again from its snapshot on another stream; where it stopped, or None."""
        if time.monotonic() > self.deadline:
            raise probes.Inconclusive(OUT_OF_TIME)
        args, kwargs, state = copy.deepcopy((snap.args, snap.kwargs, getattr(snap, "globals", {})))
        module_vars = vars(snap.module)
        saved = {k: module_vars.get(k) for k in state}
        module_vars.update(state)
        self._swap_tokens((args, kwargs), stream)
        globals_restore = self._swap_tokens(module_vars, stream, top_level=True)
        self.write_val(stream)
        torch.set_rng_state(snap.rng[0])
        np.random.set_state(snap.rng[1])
        random.setstate(snap.rng[2])
        self.take_snapshots = False
        TRACKER.watch = watch
        try:
            with quiet(self):
                self.call(snap.fn, snap.name, args, kwargs, record=False)
        except track.StopReplay as stop:
            return stop
        except probes.Inconclusive:
            raise
        except Exception as exc:
            raise probes.Inconclusive(f"the replay raised {type(exc).__name__}: {exc}") from exc
        finally:
            TRACKER.watch = None
            self.take_snapshots = True
            for undo in globals_restore:
                undo()
            module_vars.update(saved)
            self.write_val(self.stream)
        return None

    def replay(self, snap: Snapshot, stream: np.ndarray) -> probes.Scored:
        """The NLLs of a full replay on ``stream``."""
        self._replay(snap, stream)
        pr = self.last_pass
        if not pr.complete:
            raise probes.Inconclusive(f"capture incomplete in a replay: {pr.reason}")
        return pr.scored()

    def replay_at(self, snap: Snapshot, stream: np.ndarray, position: int) -> float:
        """The NLL of one target, replaying only until the record that scores it exists."""
        pr = snap.result
        assert pr is not None and pr.positions is not None and pr.ordinals is not None
        where = np.flatnonzero(pr.positions == position)
        if not len(where):
            raise probes.Inconclusive(f"target {position} is not scored")
        ordinal = int(pr.ordinals[where[-1]])
        stop = self._replay(snap, stream, watch=ordinal)
        if stop is None:  # the pass ended first: read it whole
            scored = self.last_pass
            if not scored.complete:
                raise probes.Inconclusive(f"capture incomplete in a replay: {scored.reason}")
            values = scored.scored().by_position().get(position)
            if not values:
                raise probes.Inconclusive(f"target {position} was not scored in a replay")
            return values[-1]
        record = stop.record
        expected = pr.record_positions.get(ordinal)
        if expected is None or not np.array_equal(record.positions, expected):
            raise probes.Inconclusive("the replay made its per-token losses in another order")
        hits = np.flatnonzero((record.positions == position) & scored_terms(pr.strategy, record.values))
        if not len(hits):
            raise probes.Inconclusive(f"target {position} was masked out in a replay")
        return float(record.values[hits[-1]])

    def replay_upto(self, snap: Snapshot, stream: np.ndarray, cut: int) -> probes.Scored:
        """The NLLs of every target <= cut, replaying only until the last record that scores one."""
        pr = snap.result
        assert pr is not None and pr.positions is not None and pr.ordinals is not None
        early = pr.ordinals[pr.positions <= cut]
        if not len(early):
            return self.replay(snap, stream)
        watch = int(early.max())
        stop = self._replay(snap, stream, watch=watch)
        if stop is None:
            scored = self.last_pass
            if not scored.complete:
                raise probes.Inconclusive(f"capture incomplete in a replay: {scored.reason}")
            return scored.scored()
        by_ordinal = {r.ordinal: r for r in stop.earlier}
        positions, values = [], []
        for ordinal in sorted({int(o) for o in pr.ordinals.tolist() if o <= watch}):
            rec = by_ordinal.get(ordinal)
            expected = pr.record_positions.get(ordinal)
            if rec is None or expected is None or not np.array_equal(rec.positions, expected):
                return self.replay(snap, stream)  # another order: read the whole pass instead
            keep = (rec.positions >= 0) & scored_terms(pr.strategy, rec.values)
            positions.append(rec.positions[keep])
            values.append(rec.values[keep])
        return probes.Scored(np.concatenate(positions), np.concatenate(values))

    def _swap_tokens(self, obj: Any, stream: np.ndarray, top_level: bool = False) -> list[Any]:
        undo: list[Any] = []
        for _holder, _key, value in walk(obj, max_depth=1 if top_level else 3):
            if isinstance(value, torch.Tensor) and not value.is_floating_point():
                pos = track.pos_of(value)
                if pos is None or pos.shape != value.shape:
                    continue
                mask = pos >= 0
                if not bool(mask.any()) or int(pos.max()) >= len(stream):
                    continue
                new = torch.from_numpy(stream[pos[mask].numpy()]).to(value.dtype)
                old = value.detach().clone()
                assign_masked(value, mask, new)
                if top_level:
                    undo.append(functools.partial(assign_masked, value, mask, old[mask]))
            elif isinstance(value, track.TArr) and value._pg_pos is not None and np.issubdtype(value.dtype, np.integer):
                pos = value._pg_pos
                mask = pos >= 0
                if not mask.any() or int(pos.max()) >= len(stream):
                    continue
                raw = value.view(np.ndarray)
                old = raw.copy()
                raw[mask] = stream[pos[mask]]
                if top_level:
                    undo.append(functools.partial(np.copyto, raw, old))
        return undo


def _deepcopy_function(fn: types.FunctionType, memo: dict) -> types.FunctionType:
    """Functions are copied with their closures, so that a closure over the model (a
    ``forward_ttt_train`` built around it) refers to the copied model, not the one the run mutated."""
    if not fn.__closure__ or getattr(fn, "__pg_original__", None) is not None:
        return fn  # no state, or the harness's own wrapper of an evaluation
    cells = []
    for cell in fn.__closure__:
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (the variable was not assigned yet)
            cells.append(types.CellType())
            continue
        try:
            cells.append(types.CellType(copy.deepcopy(contents, memo)))
        except Exception:  # a module, a lock, a file: shared, as it was
            cells.append(types.CellType(contents))
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(cells))
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    return new


def _deepcopy_ordered_dict(od: collections.OrderedDict, memo: dict) -> collections.OrderedDict:
    """What ``copy.deepcopy`` makes of an OrderedDict through its ``__reduce__``, without that path's
    per-object cost: a module has a dozen of them (parameters, buffers, children, hooks), mostly
    empty, and a replay restores every module of the model. One with attributes of its own takes
    the general path."""
    if vars(od):
        return copy._reconstruct(od, memo, *od.__reduce_ex__(4))  # type: ignore[attr-defined]
    new: collections.OrderedDict = collections.OrderedDict()
    memo[id(od)] = new
    for key, value in od.items():
        new[copy.deepcopy(key, memo)] = copy.deepcopy(value, memo)
    return new


def _deepcopy_set(items: set, memo: dict) -> set:
    """What ``copy.deepcopy`` makes of a set (``set(deepcopy(list(items)))``), on the short path."""
    return {copy.deepcopy(item, memo) for item in items}


copy._deepcopy_dispatch[types.FunctionType] = _deepcopy_function  # type: ignore[attr-defined]
# exact types only (the table is looked up by type): subclasses keep their own __reduce__
copy._deepcopy_dispatch[collections.OrderedDict] = _deepcopy_ordered_dict  # type: ignore[attr-defined]
copy._deepcopy_dispatch[set] = _deepcopy_set  # type: ignore[attr-defined]


@contextlib.contextmanager
def quiet(session: Any):
    """Send the script's prints to a buffer (the tail is kept for error reports)."""
    buffer = io.StringIO()
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = buffer
    try:
        yield
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        text = buffer.getvalue()
        if text:
            session.log_tail = (session.log_tail + text.splitlines())[-40:]
            session.saw_output(text)

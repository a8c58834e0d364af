"""NumPy arrays that carry stream positions: the NumPy half of :mod:`auditor.runtime.track`
(sandbox side).

Scripts move validation tokens and losses across the NumPy boundary (``.numpy()``,
``np.fromfile`` of the shard, ``torch.from_numpy``) and score with NumPy (hashed n-gram
caches). :class:`TArr`, an ``ndarray`` subclass, keeps ``_pg_pos`` and ``_pg_prov`` through
ufuncs, indexing, joins and reductions, as tagged tensors do; a reduction over tagged losses
becomes a :class:`auditor.runtime.track.Record`, and a scalar it yields is a
:class:`_ProvScalar` that carries its provenance into ``float`` arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from auditor.runtime.track import TRACKER, tag


def _from_tarr(out: Any, arr: TArr) -> Any:
    if isinstance(out, torch.Tensor):
        pos = arr._pg_pos
        tag(out, torch.from_numpy(np.array(pos, dtype=np.int64)).reshape(out.shape) if pos is not None and pos.size == out.numel()
            else None, arr._pg_prov)
    return out


def to_tarr(arr: np.ndarray, pos: np.ndarray | None, prov: frozenset[int] = frozenset()) -> np.ndarray:
    if pos is None and not prov:
        return arr
    out = arr.view(TArr)
    out._pg_pos = pos if pos is not None and pos.shape == arr.shape else None
    out._pg_prov = frozenset(prov)
    return out


def _raw(x: Any) -> Any:
    if isinstance(x, TArr):
        return x.view(np.ndarray)
    if isinstance(x, tuple):
        return tuple(_raw(v) for v in x)
    if isinstance(x, list):
        return [_raw(v) for v in x]
    return x


def _npos(x: Any) -> np.ndarray | None:
    return getattr(x, "_pg_pos", None) if isinstance(x, TArr) else None


def _np_combine(cands: list[np.ndarray]) -> np.ndarray | None:
    if not cands:
        return None
    out = cands[0]
    for other in cands[1:]:
        if other is out:
            continue
        out = np.where(out == other, out, np.where(out < 0, other, np.where(other < 0, out, -2)))
    return out


NP_SUMS = (np.sum, np.mean, np.nansum, np.nanmean)
NP_JOIN = (np.concatenate, np.stack, np.hstack, np.vstack)


class TArr(np.ndarray):
    """An ndarray that carries stream positions (``_pg_pos``) and provenance (``_pg_prov``)."""

    _pg_pos: np.ndarray | None = None
    _pg_prov: frozenset[int] = frozenset()

    def __array_finalize__(self, obj: Any) -> None:
        if obj is None:
            return
        pos = getattr(obj, "_pg_pos", None)
        self._pg_pos = pos if pos is not None and pos.shape == self.shape else None
        self._pg_prov = getattr(obj, "_pg_prov", frozenset())

    def _wrap(self, result: Any, pos: np.ndarray | None, prov: frozenset[int]) -> Any:
        if isinstance(result, np.ndarray) and not isinstance(result, TArr):
            return to_tarr(result, pos, prov)
        if isinstance(result, TArr):
            result._pg_pos = pos if pos is not None and pos.shape == result.shape else None
            result._pg_prov = prov
        return result

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        raw_inputs = [_raw(x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_raw(o) for o in out)
        result = getattr(ufunc, method)(*raw_inputs, **kwargs)
        prov = frozenset().union(*(getattr(x, "_pg_prov", frozenset()) for x in inputs if isinstance(x, TArr)))
        if method == "__call__":
            shape = np.shape(result[0] if isinstance(result, tuple) else result)
            cands = []
            for x in inputs:
                p = _npos(x)
                if p is not None:
                    try:
                        cands.append(np.broadcast_to(p, shape))
                    except ValueError:
                        pass
            pos = _np_combine(cands)
            if out is not None:
                for o in out:
                    if isinstance(o, TArr) and o._pg_pos is None and pos is not None and pos.shape == o.shape:
                        o._pg_pos = np.array(pos)
                    if isinstance(o, TArr):
                        o._pg_prov = o._pg_prov | prov
                return out[0] if len(out) == 1 else out
            if isinstance(result, tuple):
                return tuple(self._wrap(r, pos, prov) for r in result)
            return self._wrap(result, pos, prov)
        if method == "reduce" and ufunc is np.add and inputs and isinstance(inputs[0], TArr):
            src = inputs[0]
            rid = None
            if src._pg_pos is not None and np.issubdtype(src.dtype, np.floating):
                axis = kwargs.get("axis", 0)
                if axis is None or src.ndim <= 1:
                    rid = TRACKER.record(src._pg_pos, np.asarray(raw_inputs[0], dtype=np.float64), "np-sum", False)
                else:
                    rid = TRACKER.record(src._pg_pos, np.asarray(raw_inputs[0], dtype=np.float64), "np-sum-axis", False)
            prov = prov | ({rid} if rid else frozenset())
            if isinstance(result, np.ndarray):
                return to_tarr(result, None, prov)
            if prov:
                return to_tarr(np.asarray(result), None, prov)[()] if False else _ProvScalar.make(result, prov)
            return result
        return result

    def __array_function__(self, func, types, args, kwargs):
        raw_args = tuple(_raw(a) for a in args)
        raw_kwargs = {k: _raw(v) for k, v in kwargs.items()}
        if func in NP_SUMS and args and isinstance(args[0], TArr):
            src = args[0]
            result = func(*raw_args, **raw_kwargs)
            rid = None
            axis = raw_kwargs.get("axis", raw_args[1] if len(raw_args) > 1 else None)
            if src._pg_pos is not None and np.issubdtype(src.dtype, np.floating) and (axis is None or src.ndim <= 1):
                rid = TRACKER.record(src._pg_pos, np.asarray(raw_args[0], dtype=np.float64), "np-" + func.__name__, False)
            prov = src._pg_prov | ({rid} if rid else frozenset())
            if isinstance(result, np.ndarray) and result.ndim:
                return to_tarr(result, None, prov)
            return _ProvScalar.make(result, prov) if prov else result
        result = func(*raw_args, **raw_kwargs)
        prov = frozenset().union(*(getattr(a, "_pg_prov", frozenset()) for a in _flat(args)))
        if func in NP_JOIN and args:
            seq = args[0]
            if isinstance(seq, (list, tuple)) and any(_npos(s) is not None for s in seq):
                shadows = [_npos(s) if _npos(s) is not None else np.full(np.shape(s), -1, dtype=np.int64) for s in seq]
                try:
                    pos = func(shadows, *raw_args[1:], **raw_kwargs)
                except Exception:
                    pos = None
                return self._wrap(result, pos, prov)
        if func is np.where and len(args) == 3:
            cands = []
            pa, pb = _npos(args[1]), _npos(args[2])
            shape = np.shape(result)
            if pa is not None and pb is not None:
                return self._wrap(result, np.where(raw_args[0], np.broadcast_to(pa, shape), np.broadcast_to(pb, shape)), prov)
            for p in (pa, pb):
                if p is not None:
                    cands.append(np.broadcast_to(p, shape))
            return self._wrap(result, _np_combine(cands), prov)
        if isinstance(result, np.ndarray):
            for a in args:
                p = _npos(a)
                if p is not None and p.shape == result.shape:
                    return self._wrap(result, p, prov)
            return self._wrap(result, None, prov) if prov else result
        return result

    def __getitem__(self, index: Any) -> Any:
        raw_index = _raw(index)
        result = self.view(np.ndarray)[raw_index]
        if not isinstance(result, np.ndarray):
            return result
        pos = None
        if self._pg_pos is not None:
            try:
                pos = self._pg_pos[raw_index]
            except (IndexError, ValueError):
                pos = None
        elif self.ndim >= 2:  # a 1-D table is a per-token constant, not a score
            parts = index if isinstance(index, tuple) else (index,)
            tagged = [_npos(p) for p in parts if _npos(p) is not None]
            if len(tagged) == 1 and tagged[0].shape == result.shape:
                pos = tagged[0]
        return to_tarr(result, pos, self._pg_prov) if (pos is not None or self._pg_prov) else result

    def __setitem__(self, index: Any, value: Any) -> None:
        raw_index = _raw(index)
        self.view(np.ndarray)[raw_index] = _raw(value)
        vpos = _npos(value)
        if vpos is None and self._pg_pos is None:
            return
        dpos = np.array(self._pg_pos) if self._pg_pos is not None else np.full(self.shape, -1, dtype=np.int64)
        try:
            if vpos is not None:
                dpos[raw_index] = vpos
            elif not np.issubdtype(self.dtype, np.floating):
                dpos[raw_index] = -1
        except (IndexError, ValueError):
            return
        self._pg_pos = dpos
        self._pg_prov = self._pg_prov | getattr(value, "_pg_prov", frozenset())

    def _shape_method(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.view(np.ndarray), name)(*args, **kwargs)
        pos = getattr(self._pg_pos, name)(*args, **kwargs) if self._pg_pos is not None else None
        return to_tarr(result, pos, self._pg_prov) if (pos is not None or self._pg_prov) else result

    def reshape(self, *args: Any, **kwargs: Any) -> Any:
        return self._shape_method("reshape", *args, **kwargs)

    def ravel(self, *args: Any, **kwargs: Any) -> Any:
        return self._shape_method("ravel", *args, **kwargs)

    def flatten(self, *args: Any, **kwargs: Any) -> Any:
        return self._shape_method("flatten", *args, **kwargs)

    def transpose(self, *args: Any, **kwargs: Any) -> Any:
        return self._shape_method("transpose", *args, **kwargs)

    def squeeze(self, *args: Any, **kwargs: Any) -> Any:
        return self._shape_method("squeeze", *args, **kwargs)

    @property
    def T(self) -> Any:
        return self._shape_method("transpose")

    def sum(self, *args: Any, **kwargs: Any) -> Any:
        return np.sum(self, *args, **kwargs)

    def mean(self, *args: Any, **kwargs: Any) -> Any:
        return np.mean(self, *args, **kwargs)

    def item(self, *args: Any) -> Any:
        value = self.view(np.ndarray).item(*args)
        if self._pg_prov and self.size == 1:
            TRACKER.item(value, self._pg_prov)
        return value

    def __float__(self) -> float:
        value = float(self.view(np.ndarray))
        if self._pg_prov and self.size == 1:
            TRACKER.item(value, self._pg_prov)
        return value

    def __reduce__(self):  # pickling drops the tags
        return self.view(np.ndarray).__reduce__()


def _flat(args: Any) -> list[Any]:
    out = []
    for a in args:
        if isinstance(a, (list, tuple)):
            out.extend(a)
        else:
            out.append(a)
    return out


class _ProvScalar(float):
    """A float (the result of summing tagged values) that remembers its provenance."""

    _pg_prov: frozenset[int] = frozenset()

    @classmethod
    def make(cls, value: Any, prov: frozenset[int]) -> Any:
        try:
            out = cls(float(value))
        except (TypeError, ValueError):
            return value
        out._pg_prov = prov
        return out

    def __float__(self) -> float:
        TRACKER.item(float.__float__(self), self._pg_prov)
        return float.__float__(self)

    def item(self) -> float:
        TRACKER.item(float.__float__(self), self._pg_prov)
        return float.__float__(self)


def from_numpy(original):
    """``torch.from_numpy`` that carries the tags of a tracked array over to the tensor."""

    def wrapper(arr):
        if isinstance(arr, TArr):
            out = original(arr.view(np.ndarray))
            return _from_tarr(out, arr)
        return original(arr)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper

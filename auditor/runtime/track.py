"""Which stream position each number of an evaluation belongs to (runs inside the sandbox).

Evaluation loops return aggregates (val_loss, val_bpb); the probes need the NLL of every
scored position. This module recovers them without knowing the loop:

- every tensor (and NumPy array) holding validation tokens carries ``_pg_pos``: for each
  element, the index in the validation stream of the token it holds (-1 for none);
- the tags follow the data through slicing, indexing, reshaping, concatenation, dtype and
  device moves, element-wise arithmetic, ``__setitem__`` and ``copy_``, and across the
  NumPy boundary (``.numpy()``, ``torch.from_numpy``);
- a cross-entropy (or a ``gather`` from log-probabilities) whose *target* is tagged yields
  per-element losses tagged with their target's stream index;
- a sum or mean over tagged losses becomes a :class:`Record` (positions, values), and the
  scalar it returns carries ``_pg_prov``, the ids of the records it came from; provenance
  follows the scalar through accumulation (``loss_sum += ...``), division and ``.item()``.

After the evaluation returns, the driver finds the records whose provenance reached the
returned loss and checks that their mean equals it (capture completeness). Nothing here
changes a computed value: the tags live beside the data.
"""

from __future__ import annotations

import itertools
import math
import os
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from auditor.runtime import dtypes

POS = "_pg_pos"
PROV = "_pg_prov"


@dataclass
class Record:
    """A reduction over tagged values: what was summed, and where each term came from."""

    rid: int
    positions: np.ndarray  # int64, -1 where an element belongs to no stream position
    values: np.ndarray  # float64
    kind: str  # "sum", "mean", "ce-mean", "np-sum" ...
    grad: bool  # computed with autograd recording (an optimisation loss, not a score)
    passes: tuple[int, ...] = ()
    ordinal: int = 0  # how many records the outermost open pass had made before this one
    acc: int = 0  # for scalar additions: which accumulator tensor received them (its id)
    site: tuple[str, int] | None = None  # the line of the audited code that made the reduction


#: Where code that is not the audited script's lives: the interpreter's libraries (torch,
#: numpy, the standard library). The harness's own modules run as ``<frozen ...>`` code.
_LIBRARY_ROOTS = tuple(sorted({
    *(os.path.join(p, "") for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)),
    *(os.path.join(p, "") for key in ("stdlib", "platstdlib", "purelib", "platlib")
      if (p := sysconfig.get_paths().get(key))),
}))


def code_site(skip: int = 1, depth: int = 64) -> tuple[str, int] | None:
    """The innermost line of the audited code on the stack (file, line): the first frame
    outside the harness and the interpreter's libraries. Code a wrapper ``exec``s counts as
    audited (``<string>``); frozen modules (the harness's, the interpreter's) do not."""
    frame = sys._getframe(skip + 1)
    for _ in range(depth):
        if frame is None:
            return None
        name = frame.f_code.co_filename
        if not name.startswith(_LIBRARY_ROOTS) and not name.startswith("<frozen"):
            return name, frame.f_lineno
        frame = frame.f_back
    return None


class StopReplay(BaseException):
    """Raised inside a replay once the watched record exists (the rest of the pass is not needed).

    A BaseException, so that a submission's ``except Exception`` does not swallow it.
    """

    def __init__(self, record: Record, earlier: list[Record]) -> None:
        super().__init__("watched record reached")
        self.record = record
        self.earlier = earlier  # every record of the pass so far, the watched one included


@dataclass
class Tracker:
    """Records and ``.item()`` values of the evaluation passes that are open."""

    records: dict[int, Record] = field(default_factory=dict)
    items: list[tuple[float, frozenset[int], tuple[int, ...]]] = field(default_factory=list)
    open_passes: list[int] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))
    counters: dict[int, int] = field(default_factory=dict)
    watch: int | None = None  # ordinal of the record that ends a replay early
    max_records: int = 2_000_000
    #: Stream position of the last tagged scalar read with .item() (loops that score token by
    #: token in Python: ``nll[i, t].item()`` ... ``loss_sum += scored``).
    last_item_pos: int | None = None
    #: Provenance of the numbers most recently read out of tagged scalars (``float(nll.sum())``,
    #: ``.item()``), by value: a plain float added to an accumulator tensor right after it was
    #: read (``loss_sum += float(seg_nll.sum())``) is the same number and carries the same records.
    recent: dict[float, frozenset[int]] = field(default_factory=dict)
    max_recent: int = 64

    def record(self, positions: np.ndarray, values: np.ndarray, kind: str, grad: bool, acc: int = 0) -> int | None:
        if not self.open_passes:
            return None
        rid = next(self.ids)
        outer = self.open_passes[0]
        ordinal = self.counters.get(outer, 0)
        self.counters[outer] = ordinal + 1
        rec = Record(rid, positions.astype(np.int64, copy=False).reshape(-1),
                     values.astype(np.float64, copy=False).reshape(-1), kind, grad, tuple(self.open_passes), ordinal,
                     acc, code_site())
        if len(self.records) < self.max_records:
            self.records[rid] = rec
        if self.watch is not None and ordinal == self.watch:
            raise StopReplay(rec, [r for r in self.records.values() if outer in r.passes])
        return rid

    def item(self, value: Any, prov: frozenset[int]) -> None:
        if self.open_passes and prov:
            try:
                number = float(value)
            except (TypeError, ValueError):
                return
            self.items.append((number, prov, tuple(self.open_passes)))
            if math.isfinite(number) and number != 0.0:
                self.recent.pop(number, None)
                self.recent[number] = prov
                if len(self.recent) > self.max_recent:
                    del self.recent[next(iter(self.recent))]

    def provenance_of_number(self, value: Any) -> frozenset[int]:
        """The records behind a plain number just read out of a tagged scalar (empty if none)."""
        if not self.recent or not isinstance(value, float):
            return frozenset()
        return self.recent.get(value, frozenset())

    def forget(self, pass_id: int) -> None:
        """Drop what only this pass needed (called once the pass has been read)."""
        self.records = {k: r for k, r in self.records.items() if r.passes != (pass_id,)}
        self.items = [i for i in self.items if i[2] != (pass_id,)]
        self.counters.pop(pass_id, None)
        self.recent.clear()


TRACKER = Tracker()


# -- tags on tensors -------------------------------------------------------------------------


def pos_of(x: Any) -> torch.Tensor | None:
    return getattr(x, POS, None) if isinstance(x, torch.Tensor) else None


def prov_of(x: Any) -> frozenset[int]:
    return getattr(x, PROV, frozenset()) if isinstance(x, (torch.Tensor, np.ndarray)) else frozenset()


def tag(t: torch.Tensor, positions: torch.Tensor | None, prov: frozenset[int] = frozenset()) -> torch.Tensor:
    """Attach tags to a tensor (positions must have its shape)."""
    try:
        if positions is not None and tuple(positions.shape) == tuple(t.shape):
            setattr(t, POS, positions)
        if prov:
            setattr(t, PROV, prov_of(t) | prov)
    except (AttributeError, RuntimeError):
        pass
    return t


def tag_stream(t: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Tag a 1-D tensor of stream tokens starting at stream index ``offset``."""
    return tag(t, torch.arange(offset, offset + t.numel(), dtype=torch.int64).reshape(t.shape))


def _tagged(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, TArr)) and (getattr(x, POS, None) is not None or bool(getattr(x, PROV, None)))


def _any_tagged(args: Iterable[Any]) -> bool:
    for a in args:
        if _tagged(a):
            return True
        if isinstance(a, (list, tuple)):
            for b in a:
                if _tagged(b):
                    return True
                if isinstance(b, (list, tuple)) and any(_tagged(c) for c in b):
                    return True
    return False


def _union_prov(args: Iterable[Any]) -> frozenset[int]:
    out: frozenset[int] = frozenset()
    for a in args:
        if isinstance(a, (list, tuple)):
            out |= _union_prov(a)
        else:
            out |= prov_of(a)
    return out


def _broadcast_pos(pos: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    if tuple(pos.shape) == tuple(shape):
        return pos
    try:
        return torch.broadcast_to(pos, shape)
    except RuntimeError:
        return None


def _combine(candidates: list[torch.Tensor]) -> torch.Tensor | None:
    if not candidates:
        return None
    out = candidates[0]
    for other in candidates[1:]:
        if other is out:
            continue
        out = torch.where(out == other, out, torch.where(out < 0, other, torch.where(other < 0, out, -2)))
    return out


def _as_float(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


SHAPE_OPS = frozenset({
    "__getitem__", "reshape", "view", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
    "t", "expand", "repeat", "repeat_interleave", "narrow", "select", "flip", "roll", "movedim", "moveaxis",
    "swapaxes", "swapdims", "unfold", "index_select", "take", "masked_select", "split", "chunk", "unbind",
    "tensor_split", "view_as", "reshape_as", "expand_as", "ravel", "diagonal", "tile", "broadcast_to",
    "T", "mT", "narrow_copy", "atleast_1d", "atleast_2d", "split_with_sizes", "hsplit", "vsplit",
})
SAME_SHAPE_OPS = frozenset({
    "to", "type", "float", "double", "half", "bfloat16", "long", "int", "short", "char", "byte", "bool",
    "cpu", "cuda", "type_as", "contiguous", "clone", "detach", "requires_grad_", "detach_", "pin_memory",
    "share_memory_", "data", "__get__", "coalesce", "cfloat",
})
ELEMENTWISE = frozenset({
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide", "remainder",
    "fmod", "neg", "negative", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sigmoid", "tanh",
    "abs", "absolute", "pow", "sqrt", "rsqrt", "square", "clamp", "clamp_min", "clamp_max", "clip", "minimum",
    "maximum", "fmin", "fmax", "where", "lerp", "nan_to_num", "reciprocal", "sign", "relu", "softplus",
    "logaddexp", "logaddexp2", "masked_fill", "float_power", "xlogy", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_not", "logical_and", "logical_or", "logical_xor", "bitwise_xor", "bitwise_and", "bitwise_or",
    "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "round", "floor", "ceil", "trunc", "frac",
    "addcmul", "addcdiv", "isnan", "isinf", "isfinite", "logit", "erf", "sin", "cos", "lgamma", "digamma",
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__neg__", "__pos__", "__pow__", "__rpow__",
    "__abs__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__and__", "__or__", "__xor__",
    "__rand__", "__ror__", "__rxor__", "__invert__", "__lshift__", "__rshift__", "__rlshift__", "__rrshift__",
    "__matmul_scalar__", "rsub", "sinh", "cosh", "hardtanh", "leaky_relu", "elu", "silu", "gelu", "softsign",
    "heaviside", "hypot", "copysign", "positive", "conj",
})
INPLACE = frozenset({
    "add_", "sub_", "mul_", "div_", "clamp_", "clamp_min_", "clamp_max_", "exp_", "log_", "neg_", "pow_",
    "masked_fill_", "lerp_", "addcmul_", "addcdiv_", "sqrt_", "abs_", "sigmoid_", "tanh_", "relu_",
    "nan_to_num_", "floor_", "ceil_", "round_", "remainder_", "fmod_", "bitwise_xor_", "bitwise_and_",
    "bitwise_or_", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__",
    "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__", "reciprocal_", "log1p_",
    "expm1_", "minimum_", "maximum_", "clip_", "true_divide_", "logical_not_",
})
REDUCTIONS = frozenset({"sum", "mean", "nansum", "nanmean"})
ITEMS = frozenset({"item", "__float__", "__int__", "tolist", "__index__"})
CE = frozenset({"cross_entropy", "nll_loss"})


class TrackMode(TorchFunctionMode):
    """Propagates stream-position tags and records reductions of tagged losses."""

    def __init__(self, cpu: bool = False) -> None:
        super().__init__()
        self.cpu = cpu  # also run CUDA device requests on the CPU (see auditor.runtime.stubs)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "__get__":
            name = getattr(getattr(func, "__self__", None), "__name__", "__get__")
        if self.cpu:
            if "device" in kwargs or kwargs.get("pin_memory"):
                kwargs = dict(kwargs)
                if "device" in kwargs:
                    kwargs["device"] = _cpu_device(kwargs["device"])
                if kwargs.get("pin_memory"):
                    kwargs["pin_memory"] = False
            if name in ("cuda", "pin_memory"):
                return args[0]
            if name == "is_pinned":
                return False
            if name == "to" and len(args) > 1:
                first = args[1]
                if isinstance(first, (torch.device, str)) or (isinstance(first, int) and not isinstance(first, bool)):
                    args = (args[0], _cpu_device(first), *args[2:])
            if name in dtypes.UNIFY or name in dtypes.INTO_SELF:  # bf16 code with float32 modules
                args, kwargs = dtypes.consistent(name, args, kwargs, _cast)
        if not (_any_tagged(args) or _any_tagged(kwargs.values())):
            if name in ("tensor", "as_tensor", "asarray") and args and isinstance(args[0], (TArr, _ProvScalar)):
                return _factory(func, name, args, kwargs)
            if name in ("__iadd__", "add_") and TRACKER.open_passes and (
                    TRACKER.last_item_pos is not None or len(args) > 1 and TRACKER.provenance_of_number(args[1])):
                return _inplace(func, name, args, kwargs)  # a score read out in Python added to an accumulator
            return func(*args, **kwargs)
        try:
            handler = _HANDLERS.get(name)
            if handler is None:
                if name in SHAPE_OPS:
                    handler = _shape_op
                elif name in SAME_SHAPE_OPS:
                    handler = _same_shape
                elif name in ELEMENTWISE:
                    handler = _elementwise
                elif name in INPLACE or (name.endswith("_") and name[:-1] in ELEMENTWISE):
                    handler = _inplace
                elif name in REDUCTIONS:
                    handler = _reduction
                elif name in ITEMS:
                    handler = _item
            if handler is None:
                out = func(*args, **kwargs)
                prov = _union_prov(args) | _union_prov(kwargs.values())
                if prov and isinstance(out, torch.Tensor) and out.numel() == 1:
                    tag(out, None, prov)
                return out
            return handler(func, name, args, kwargs)
        except _Passthrough:
            return func(*args, **kwargs)


class _Passthrough(Exception):
    pass


_CPU = torch.device("cpu")


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, with its tags (a cast moves no value)."""
    return tag(t.to(dtype), pos_of(t), prov_of(t))


def _cpu_device(value: Any) -> Any:
    """The CPU in place of any CUDA device spec; other values unchanged."""
    if isinstance(value, torch.device):
        return _CPU if value.type == "cuda" else value
    if isinstance(value, str) and value.startswith("cuda"):
        return _CPU
    if isinstance(value, int) and not isinstance(value, bool):
        return _CPU  # .to(0) / device=0 means the first GPU
    return value


def _shape_op(func, name, args, kwargs):
    out = func(*args, **kwargs)
    src = args[0] if args else None
    pos = pos_of(src)
    prov = prov_of(src)
    if pos is not None:
        try:
            out_pos = func(pos, *args[1:], **kwargs)
        except Exception:  # an op the shadow cannot follow (view as another dtype, ...)
            out_pos = None
        _assign(out, out_pos, prov)
    elif name == "__getitem__" and len(args) > 1 and isinstance(src, torch.Tensor) and src.dim() >= 2:
        # An untagged table of scores indexed with tagged targets: log_probs[arange, y] -> y's
        # positions. A 1-D table is a per-token constant (bytes per token), not a score.
        index = args[1] if isinstance(args[1], tuple) else (args[1],)
        tagged = [pos_of(i) for i in index if pos_of(i) is not None]
        if len(tagged) == 1 and isinstance(out, torch.Tensor):
            _assign(out, _broadcast_pos(tagged[0], out.shape), prov)
        elif prov:
            _assign(out, None, prov)
    elif prov:
        _assign(out, None, prov)
    return out


def _assign(out: Any, out_pos: Any, prov: frozenset[int]) -> None:
    if isinstance(out, torch.Tensor):
        tag(out, out_pos if isinstance(out_pos, torch.Tensor) else None, prov)
    elif isinstance(out, (tuple, list)) and isinstance(out_pos, (tuple, list)) and len(out) == len(out_pos):
        for o, p in zip(out, out_pos):
            if isinstance(o, torch.Tensor):
                tag(o, p if isinstance(p, torch.Tensor) else None, prov)


def _same_shape(func, name, args, kwargs):
    out = func(*args, **kwargs)
    src = args[0] if args else None
    if isinstance(out, torch.Tensor) and isinstance(src, torch.Tensor):
        pos = pos_of(src)
        tag(out, pos if pos is not None and tuple(pos.shape) == tuple(out.shape) else None, prov_of(src))
    return out


def _tensor_args(args, kwargs) -> list[Any]:
    found = [a for a in args if isinstance(a, torch.Tensor)]
    found += [v for v in kwargs.values() if isinstance(v, torch.Tensor)]
    return found


def _elementwise(func, name, args, kwargs):
    out = func(*args, **kwargs)
    if not isinstance(out, torch.Tensor):
        return out
    inputs = _tensor_args(args, kwargs)
    if name == "where" and len(args) >= 3:
        inputs = [a for a in args[1:3] if isinstance(a, torch.Tensor)]
        cond = args[0]
        pa = pos_of(args[1]) if isinstance(args[1], torch.Tensor) else None
        pb = pos_of(args[2]) if isinstance(args[2], torch.Tensor) else None
        if pa is not None and pb is not None:
            try:
                tag(out, torch.where(cond, _broadcast_pos(pa, out.shape), _broadcast_pos(pb, out.shape)),
                    _union_prov(inputs))
                return out
            except Exception:
                pass
    candidates = []
    for t in inputs:
        p = pos_of(t)
        if p is not None:
            b = _broadcast_pos(p, out.shape)
            if b is not None:
                candidates.append(b)
    tag(out, _combine(candidates), _union_prov(inputs))
    return out


def _inplace(func, name, args, kwargs):
    dest = args[0]
    out = func(*args, **kwargs)
    others = _tensor_args(args[1:], kwargs)
    prov = _union_prov(others)
    read = TRACKER.provenance_of_number(args[1]) if name in ("__iadd__", "add_") and len(args) > 1 else frozenset()
    if read and isinstance(dest, torch.Tensor) and dest.numel() == 1:
        prov = prov | read  # a window's score read out with float() and added back
    elif (name in ("__iadd__", "add_") and len(args) > 1 and isinstance(args[1], (float, int)) and not isinstance(
            args[1], bool) and isinstance(dest, torch.Tensor) and dest.numel() == 1 and _as_float(dest)
            and TRACKER.open_passes and TRACKER.last_item_pos is not None):
        # a Python number added to a scalar accumulator right after a tagged score was read
        rid = TRACKER.record(np.array([TRACKER.last_item_pos]), np.array([float(args[1])]), "scalar-add",
                             False, acc=id(dest))
        if rid:
            prov = prov | {rid}
    if isinstance(dest, torch.Tensor):
        if pos_of(dest) is None:
            candidates = [b for b in (_broadcast_pos(pos_of(t), dest.shape) for t in others if pos_of(t) is not None)
                          if b is not None]
            tag(dest, _combine(candidates), prov)
        elif prov:
            tag(dest, None, prov)
    return out


def _copy(func, name, args, kwargs):
    dest, src = args[0], args[1] if len(args) > 1 else kwargs.get("src")
    out = func(*args, **kwargs)
    if isinstance(dest, torch.Tensor):
        sp = pos_of(src)
        if sp is not None:
            b = _broadcast_pos(sp, dest.shape)
            tag(dest, b.clone() if b is not None else None, prov_of(src))
        elif pos_of(dest) is not None and not _as_float(dest):
            setattr(dest, POS, torch.full(tuple(dest.shape), -1, dtype=torch.int64))
        elif prov_of(src):
            tag(dest, None, prov_of(src))
    return out


def _fill(func, name, args, kwargs):
    dest = args[0]
    out = func(*args, **kwargs)
    if isinstance(dest, torch.Tensor) and pos_of(dest) is not None and not _as_float(dest):
        setattr(dest, POS, torch.full(tuple(dest.shape), -1, dtype=torch.int64))
    return out


def _setitem(func, name, args, kwargs):
    dest, index, value = args[0], args[1], args[2]
    out = func(*args, **kwargs)
    vpos = pos_of(value)
    dpos = pos_of(dest)
    prov = prov_of(value)
    if vpos is None and dpos is None:
        if prov:
            tag(dest, None, prov)
        return out
    if dpos is None:
        dpos = torch.full(tuple(dest.shape), -1, dtype=torch.int64)
    else:
        dpos = dpos.clone()
    try:
        if vpos is not None:
            dpos[index] = vpos
        elif not _as_float(dest):
            dpos[index] = -1
    except Exception:
        dpos = None
    if dpos is not None:
        setattr(dest, POS, dpos)
    if prov:
        tag(dest, None, prov)
    return out


def _index_put(func, name, args, kwargs):
    dest = args[0]
    indices = args[1] if len(args) > 1 else kwargs.get("indices")
    values = args[2] if len(args) > 2 else kwargs.get("values")
    out = func(*args, **kwargs)
    vpos = pos_of(values)
    target = out if name == "index_put" else dest
    if vpos is not None and isinstance(target, torch.Tensor):
        base = pos_of(dest)
        base = base.clone() if base is not None else torch.full(tuple(dest.shape), -1, dtype=torch.int64)
        try:
            base.index_put_(tuple(indices), torch.broadcast_to(vpos, values.shape))
            tag(target, base, prov_of(values))
        except Exception:
            pass
    return out


def _scatter(func, name, args, kwargs):
    dest = args[0]
    out = func(*args, **kwargs)
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    index = args[2] if len(args) > 2 else kwargs.get("index")
    src = args[3] if len(args) > 3 else kwargs.get("src", kwargs.get("value"))
    spos = pos_of(src)
    target = dest if name.endswith("_") else out
    if spos is not None and isinstance(target, torch.Tensor) and "add" not in name and "reduce" not in name:
        base = pos_of(dest)
        base = base.clone() if base is not None else torch.full(tuple(dest.shape), -1, dtype=torch.int64)
        try:
            tag(target, base.scatter_(dim, index, spos), prov_of(src))
        except Exception:
            pass
    return out


def _gather(func, name, args, kwargs):
    out = func(*args, **kwargs)
    src = args[0]
    if name == "take_along_dim":
        index = args[1] if len(args) > 1 else kwargs.get("indices")
        dim = args[2] if len(args) > 2 else kwargs.get("dim")
    else:
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        index = args[2] if len(args) > 2 else kwargs.get("index")
    spos, ipos = pos_of(src), pos_of(index)
    if spos is not None:
        try:
            out_pos = torch.gather(spos, dim, index) if name == "gather" else torch.take_along_dim(spos, index, dim)
            tag(out, out_pos, prov_of(src))
        except Exception:
            pass
    elif ipos is not None and isinstance(out, torch.Tensor):
        tag(out, _broadcast_pos(ipos, out.shape), prov_of(src))
    return out


def _cat(func, name, args, kwargs):
    out = func(*args, **kwargs)
    tensors = args[0] if args else kwargs.get("tensors")
    if not isinstance(tensors, (list, tuple)):
        return out
    if any(pos_of(t) is not None for t in tensors):
        shadows = [pos_of(t) if pos_of(t) is not None else torch.full(tuple(t.shape), -1, dtype=torch.int64)
                   for t in tensors]
        try:
            out_pos = func(shadows, *args[1:], **kwargs) if args else func(tensors=shadows, **{
                k: v for k, v in kwargs.items() if k != "tensors"})
            tag(out, out_pos, _union_prov(tensors))
        except Exception:
            pass
    else:
        tag(out, None, _union_prov(tensors))
    return out


def _record_tensor(x: torch.Tensor, kind: str) -> int | None:
    pos = pos_of(x)
    if pos is None:
        return None
    with torch.no_grad():
        values = x.detach().to(torch.float64).reshape(-1).cpu().numpy()
    grad = bool(x.requires_grad)
    return TRACKER.record(pos.reshape(-1).numpy(), values, kind, grad)


def _one_position_per_slice(pos: torch.Tensor, dims: list[int]) -> torch.Tensor | None:
    """The positions of a reduction along ``dims`` (descending) when every reduced slice holds
    at most one stream position, else None.

    Elements without a position of their own (-1, or -2 where an element combined several)
    go with any, as they do in element-wise arithmetic (:func:`_combine`): a mixture summed
    over its experts (``(weights * expert_p).sum(-1)``, the model's probability of the target
    beside hashed-table estimates) is still the score of that target, not a reduction over
    targets. A slice with two different positions (a window's losses) is a reduction.
    """
    if any(pos.size(d) == 0 for d in dims):
        return None
    known = pos >= 0
    hi = torch.where(known, pos, torch.full_like(pos, -1))
    lo = torch.where(known, pos, torch.full_like(pos, torch.iinfo(torch.int64).max))
    unknown = torch.where(known, torch.full_like(pos, 0), pos)  # -1 or -2 where unknown
    for d in dims:
        hi, lo, unknown = hi.amax(d), lo.amin(d), unknown.amin(d)
    if bool(((hi >= 0) & (lo != hi)).any()):
        return None
    return torch.where(hi >= 0, hi, unknown)


def _reduction(func, name, args, kwargs):
    out = func(*args, **kwargs)
    src = args[0]
    if not isinstance(src, torch.Tensor):
        return out
    prov = prov_of(src)
    pos = pos_of(src)
    if pos is None or not _as_float(src):
        if prov and isinstance(out, torch.Tensor):
            tag(out, None, prov)
        return out
    dim = args[1] if len(args) > 1 and not isinstance(args[1], torch.dtype) else kwargs.get("dim")
    if dim is not None and isinstance(out, torch.Tensor):
        dims = sorted({d % pos.dim() for d in ((dim,) if isinstance(dim, int) else tuple(dim))}, reverse=True)
        reduced = _one_position_per_slice(pos, dims)
        if reduced is not None:
            keepdim = bool(kwargs.get("keepdim", False) or (len(args) > 2 and args[2] is True))
            if keepdim:
                for d in sorted(dims):
                    reduced = reduced.unsqueeze(d)
            tag(out, reduced if tuple(reduced.shape) == tuple(out.shape) else None, prov)
            return out
    rid = _record_tensor(src, name)
    if isinstance(out, torch.Tensor):
        tag(out, None, prov | ({rid} if rid else frozenset()))
    return out


def _cross_entropy(func, name, args, kwargs):
    target = args[1] if len(args) > 1 else kwargs.get("target")
    tpos = pos_of(target)
    if tpos is None:
        raise _Passthrough
    inp = args[0] if args else kwargs.get("input")
    reduction = kwargs.get("reduction", "mean")
    if len(args) > 6 and isinstance(args[6], str):
        reduction = args[6]
    ignore_index = kwargs.get("ignore_index", -100)
    if len(args) > 4 and isinstance(args[4], int):
        ignore_index = args[4]
    if kwargs.get("reduce") is False or kwargs.get("size_average") is not None:
        raise _Passthrough
    rest = {k: v for k, v in kwargs.items() if k not in ("reduction", "input", "target", "reduce", "size_average")}
    pos = torch.where(target == ignore_index, torch.full_like(tpos, -1), tpos)
    if reduction == "none":
        out = func(inp, target, *args[2:6], **rest, reduction="none") if len(args) > 2 else func(
            inp, target, **rest, reduction="none")
        tag(out, _broadcast_pos(pos, out.shape))
        return out
    out = func(*args, **kwargs)
    with torch.no_grad():
        per = func(inp.detach(), target, *args[2:6], **rest, reduction="none") if len(args) > 2 else func(
            inp.detach(), target, **rest, reduction="none")
    values = per.to(torch.float64).reshape(-1).cpu().numpy()
    keep = (target != ignore_index).reshape(-1).numpy()
    grad = bool(torch.is_grad_enabled() and inp.requires_grad)
    rid = TRACKER.record(pos.reshape(-1).numpy()[keep], values[keep], f"ce-{reduction}", grad)
    if rid:
        tag(out, None, frozenset({rid}))
    return out


def _item(func, name, args, kwargs):
    out = func(*args, **kwargs)
    src = args[0]
    prov = prov_of(src)
    pos = pos_of(src)
    if pos is not None and pos.numel() == 1 and _as_float(src) and int(pos.reshape(-1)[0]) >= 0:
        TRACKER.last_item_pos = int(pos.reshape(-1)[0])
    if prov and isinstance(src, torch.Tensor) and src.numel() == 1:
        TRACKER.item(out if not isinstance(out, list) else (out[0] if out else 0.0), prov)
    return out


def _numpy(func, name, args, kwargs):
    out = func(*args, **kwargs)
    src = args[0]
    if isinstance(out, np.ndarray):
        pos = pos_of(src)
        return to_tarr(out, pos.numpy() if pos is not None else None, prov_of(src))
    return out


def _factory(func, name, args, kwargs):
    out = func(*args, **kwargs)
    if args and isinstance(args[0], TArr):
        return _from_tarr(out, args[0])
    if args and isinstance(args[0], _ProvScalar) and isinstance(out, torch.Tensor):
        return tag(out, None, args[0]._pg_prov)
    if args and isinstance(args[0], torch.Tensor):
        src = args[0]
        pos = pos_of(src)
        tag(out, pos if pos is not None and tuple(pos.shape) == tuple(out.shape) else None, prov_of(src))
    return out


_HANDLERS = {
    "__setitem__": _setitem,
    "copy_": _copy,
    "fill_": _fill,
    "zero_": _fill,
    "index_put_": _index_put,
    "index_put": _index_put,
    "scatter": _scatter,
    "scatter_": _scatter,
    "gather": _gather,
    "take_along_dim": _gather,
    "cat": _cat,
    "concat": _cat,
    "concatenate": _cat,
    "stack": _cat,
    "hstack": _cat,
    "vstack": _cat,
    "cross_entropy": _cross_entropy,
    "nll_loss": _cross_entropy,
    "numpy": _numpy,
    "__array__": _numpy,
    "tensor": _factory,
    "as_tensor": _factory,
    "asarray": _factory,
}


# The NumPy half lives in its own module; it builds on the tracker above.
from auditor.runtime.track_numpy import TArr, _from_tarr, _ProvScalar, to_tarr  # noqa: E402
from auditor.runtime.track_numpy import from_numpy as from_numpy  # noqa: E402 - re-exported: track.from_numpy

"""The CPU dtype policy for code written for bf16 on the GPU (sandbox side; used by the tracking mode).

On the H100 a submission mixes float32 and bfloat16 freely: CUDA autocast casts the operands
of every matrix product to one dtype, and ``model.bfloat16()`` puts the weights in the dtype
the script then casts its activations to. On the CPU the harness keeps modules in float32 and
runs autocast regions off (:func:`auditor.runtime.stubs.install`), while the script's own
tensor casts (``x.to(torch.bfloat16)``, ``.bfloat16()``, ``dtype=torch.bfloat16`` buffers)
stay as written so that quantization rounds as it does on the GPU. A bf16 activation then
meets a float32 weight in an operation that accepts one dtype only, and the run stops with
"expected m1 and m2 to have the same dtype" before anything is scored.

The policy does what autocast does on the GPU, one dtype per operation, choosing the widest
instead of the narrowest:

- matrix products, convolutions and attention (:data:`UNIFY`) take floating operands of
  different dtypes in the widest of them (bf16 with float32 computes in float32);
- operations that write a source into a tensor of fixed dtype (:data:`INTO_SELF`:
  ``index_add_``, ``scatter_add_``, ``lerp_`` ...) take the source in that tensor's dtype, as
  the GPU code, whose tensors agreed, stored it.

Operations whose operands already agree are untouched, and a cast changes no value's position
in the stream, so what the probes test (which tokens a score depends on, whether it is a
normalized distribution) is what the script computes; only the rounding differs, which the
determinism probe's noise floor already covers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

#: Operations that need all floating operands in one dtype: computed in the widest.
UNIFY = frozenset({
    "linear", "bilinear", "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "mv", "dot", "vdot", "inner",
    "addmm", "addmv", "addbmm", "baddbmm", "einsum", "tensordot", "chain_matmul", "multi_dot",
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "scaled_dot_product_attention",
})
#: Operations that write floating operands into ``args[0]``: those operands take its dtype.
INTO_SELF = frozenset({
    "index_add_", "index_add", "index_copy_", "index_copy", "scatter_add_", "scatter_add", "scatter_",
    "scatter_reduce_", "index_put_", "index_put", "masked_scatter_", "lerp_", "addmm_", "addmv_", "addbmm_",
    "baddbmm_",
})

Cast = Callable[[torch.Tensor, torch.dtype], torch.Tensor]


def _floating(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def _operands(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    out = [a for a in (*args, *kwargs.values()) if _floating(a)]
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)):
            out.extend(b for b in a if _floating(b))
    return out


def _recast(value: Any, dtype: torch.dtype, cast: Cast) -> Any:
    if _floating(value) and value.dtype != dtype:
        return cast(value, dtype)
    if isinstance(value, (list, tuple)) and any(_floating(b) and b.dtype != dtype for b in value):
        return type(value)(cast(b, dtype) if _floating(b) and b.dtype != dtype else b for b in value)
    return value


def consistent(name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               cast: Cast) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments of ``name`` with their floating operands in one dtype (see the module
    docstring); unchanged when they already agree or the operation is not one of the policy's.
    ``cast`` converts a tensor (and keeps whatever the caller tracks on it)."""
    if name in UNIFY:
        operands = _operands(args, kwargs)
        dtypes = {t.dtype for t in operands}
        if len(dtypes) < 2:
            return args, kwargs
        target = operands[0].dtype
        for t in operands[1:]:
            target = torch.promote_types(target, t.dtype)
        skip = 0
    elif name in INTO_SELF and args and _floating(args[0]):
        target = args[0].dtype
        if all(t.dtype == target for t in _operands(args[1:], kwargs)):
            return args, kwargs
        skip = 1  # the tensor written into keeps its dtype
    else:
        return args, kwargs
    new_args = tuple(a if i < skip else _recast(a, target, cast) for i, a in enumerate(args))
    new_kwargs = {k: _recast(v, target, cast) for k, v in kwargs.items()}
    return new_args, new_kwargs

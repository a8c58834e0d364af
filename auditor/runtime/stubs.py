"""CPU stand-ins for what submissions expect of an H100 box (runs inside the sandbox).

Submissions are written for 8xH100 under torchrun: they insist on CUDA, compile with
``torch.compile``, attend with FlashAttention 3, launch Triton kernels and all-reduce their
sums. The harness runs them on one CPU process instead, so this module

- makes ``torch.cuda`` answer as if one device were present (the torch function mode of
  :mod:`auditor.runtime.track` turns every CUDA device request into the CPU: ``device=``
  arguments, ``.cuda()``, ``.to("cuda")``), maps CUDA autocast to bf16 autocast on the CPU, and turns synchronisation,
  memory statistics, events and streams into harmless no-ops;
- makes ``torch.compile`` the identity;
- gives ``torch.distributed`` a world of size one (collectives are identities);
- provides, to the submission's imports only (:class:`SubmissionImporter`),
  ``flash_attn_interface`` / ``flash_attn`` built on ``scaled_dot_product_attention``
  (grouped-query heads and the varlen API included) and a ``triton`` whose kernels refuse to
  launch (a script that needs one on its evaluation path is reported inconclusive rather than
  mis-measured).

Nothing here changes what the evaluation computes, only where it runs.
"""

from __future__ import annotations

import builtins
import contextlib
import time
import types
from typing import Any

import torch
import torch.nn.functional as F

from auditor.runtime import absent

class KernelUnavailable(RuntimeError):
    """A GPU-only kernel (Triton, CUTLASS) was launched on the CPU."""


# -- torch.cuda ---------------------------------------------------------------------------


class _Event:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.t = None

    def record(self, *args: Any, **kwargs: Any) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def wait(self, *args: Any, **kwargs: Any) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, other: _Event) -> float:
        return 1000.0 * ((other.t or 0.0) - (self.t or 0.0))


class _Stream:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait_stream(self, *args: Any) -> None:
        pass

    def wait_event(self, *args: Any) -> None:
        pass

    def record_event(self, *args: Any) -> _Event:
        return _Event()

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def _props(*args: Any, **kwargs: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        name="CPU stand-in for NVIDIA H100 80GB HBM3", major=9, minor=0, multi_processor_count=132,
        total_memory=80 * 2**30, is_integrated=False,
    )


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _distinct(value: Any, name: str) -> Any:
    """A function object of its own for each stand-in (torch's tracer keys rules by object)."""
    if isinstance(value, type) or not callable(value):
        return value

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        return value(*args, **kwargs)

    stand_in.__name__ = stand_in.__qualname__ = name
    return stand_in


def _zero(*args: Any, **kwargs: Any) -> int:
    return 0


FP32 = {"on": False}  # run in float32: autocast off, modules kept in fp32 (set by install)


class _CpuAutocast(torch.autocast):
    """``torch.autocast`` that runs CUDA autocast regions as bf16 autocast on the CPU (or not at all)."""

    def __init__(self, device_type: str = "cuda", dtype: torch.dtype | None = None, enabled: bool = True,
                 cache_enabled: bool | None = None) -> None:
        if device_type == "cuda":
            device_type = "cpu"
            if dtype is None or dtype == torch.float16:
                dtype = torch.bfloat16
        if FP32["on"]:
            enabled = False
        super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


def _keep_fp32(original: Any) -> Any:
    def cast(self: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return self

    cast.__wrapped__ = original  # type: ignore[attr-defined]
    return cast


def _module_to(original: Any) -> Any:
    def to(self: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        low = (torch.bfloat16, torch.float16)
        if kwargs.get("dtype") in low:
            kwargs = {k: v for k, v in kwargs.items() if k != "dtype"}
        args = tuple(a for a in args if a not in low)
        return original(self, *args, **kwargs) if (args or kwargs) else self

    to.__wrapped__ = original  # type: ignore[attr-defined]
    return to


def _cuda_autocast(enabled: bool = True, dtype: torch.dtype = torch.bfloat16, cache_enabled: bool = True):
    return _CpuAutocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


def _install_cuda() -> None:
    cuda = torch.cuda
    values = {
        "is_available": lambda: True,
        "device_count": lambda: 1,
        "current_device": _zero,
        "set_device": _noop,
        "synchronize": _noop,
        "empty_cache": _noop,
        "ipc_collect": _noop,
        "reset_peak_memory_stats": _noop,
        "reset_max_memory_allocated": _noop,
        "reset_accumulated_memory_stats": _noop,
        "manual_seed": _noop,
        "manual_seed_all": _noop,
        "seed_all": _noop,
        "max_memory_allocated": _zero,
        "max_memory_reserved": _zero,
        "memory_allocated": _zero,
        "memory_reserved": _zero,
        "mem_get_info": lambda *a, **k: (80 * 2**30, 80 * 2**30),
        "memory_stats": lambda *a, **k: {},
        "get_device_name": lambda *a, **k: _props().name,
        "get_device_properties": _props,
        "get_device_capability": lambda *a, **k: (9, 0),
        "is_bf16_supported": lambda *a, **k: True,
        "is_initialized": lambda: True,
        "init": _noop,
        "Event": _Event,
        "Stream": _Stream,
        "current_stream": lambda *a, **k: _Stream(),
        "default_stream": lambda *a, **k: _Stream(),
        "stream": lambda *a, **k: contextlib.nullcontext(),
        "device": lambda *a, **k: contextlib.nullcontext(),
        "set_per_process_memory_fraction": _noop,
    }
    for name, value in values.items():
        setattr(cuda, name, _distinct(value, name))
    cuda.nvtx = types.SimpleNamespace(range_push=_noop, range_pop=_noop, range=lambda *a, **k: contextlib.nullcontext(),
                                      mark=_noop)
    try:
        cuda.amp.autocast = _cuda_autocast  # type: ignore[attr-defined]
    except AttributeError:
        pass
    original_generator = torch.Generator

    class Generator(original_generator):  # type: ignore[misc,valid-type]
        """``torch.Generator(device="cuda")`` as a CPU generator."""

        def __new__(cls, device: Any = None) -> Any:
            return super().__new__(cls, device="cpu")

        def __init__(self, device: Any = None) -> None:
            pass

    torch.Generator = Generator  # type: ignore[misc]
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None:  # a CUDA build must not go looking for its (absent) driver
        accelerator.current_accelerator = _distinct(lambda *a, **k: None, "current_accelerator")
        accelerator.is_available = _distinct(lambda *a, **k: False, "is_available")
    torch.autocast = _CpuAutocast  # type: ignore[misc]
    torch.amp.autocast = _CpuAutocast  # type: ignore[attr-defined]
    torch.nn.Module.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    backends = torch.backends.cuda
    for name in ("enable_flash_sdp", "enable_math_sdp", "enable_mem_efficient_sdp", "enable_cudnn_sdp"):
        setattr(backends, name, _distinct(_noop, name))
    backends.sdp_kernel = lambda *a, **k: contextlib.nullcontext()  # type: ignore[attr-defined]
    try:
        import torch.nn.attention as attention

        original = attention.sdpa_kernel

        def sdpa_kernel(*args: Any, **kwargs: Any) -> contextlib.AbstractContextManager:
            return contextlib.nullcontext()

        sdpa_kernel.__wrapped__ = getattr(original, "__wrapped__", original)  # type: ignore[attr-defined]
        attention.sdpa_kernel = sdpa_kernel  # type: ignore[assignment]
    except ImportError:  # pragma: no cover - old torch
        pass


class _InferenceMode(torch.no_grad):
    """``torch.inference_mode`` as ``torch.no_grad``: the same values, no inference tensors.

    Compiled code on the GPU tolerates tensors cached under inference mode (rotary tables, for
    one) being reused in training; eager code on the CPU does not. No-grad computes the same.
    """

    def __new__(cls, mode: Any = True) -> Any:
        if callable(mode):  # used bare as a decorator: @torch.inference_mode
            return cls(True)(mode)
        return object.__new__(cls)

    def __init__(self, mode: bool = True) -> None:
        super().__init__()
        self.mode = bool(mode)

    def __enter__(self) -> None:
        if self.mode:
            super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.mode:
            super().__exit__(*exc)

    def clone(self) -> _InferenceMode:
        return self.__class__(self.mode)


# -- torch.compile ------------------------------------------------------------------------


def _compile(model: Any = None, *args: Any, **kwargs: Any) -> Any:
    """``torch.compile`` as the identity, in both its call and its decorator forms."""
    if model is None:
        return lambda fn: fn
    return model


def _install_compile() -> None:
    torch.compile = _compile  # type: ignore[assignment]
    torch.inference_mode = _InferenceMode  # type: ignore[misc,assignment]
    torch.autograd.inference_mode = _InferenceMode  # type: ignore[attr-defined]


# -- torch.distributed (a world of one) ---------------------------------------------------


class _Work:
    def wait(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def is_completed(self) -> bool:
        return True

    def get_future(self) -> Any:
        fut: torch.futures.Future = torch.futures.Future()
        fut.set_result(None)
        return fut


def _install_distributed() -> None:
    import torch.distributed as dist

    state = {"initialized": False}

    def init_process_group(*args: Any, **kwargs: Any) -> None:
        state["initialized"] = True

    def destroy_process_group(*args: Any, **kwargs: Any) -> None:
        state["initialized"] = False

    def done(async_op: bool = False) -> _Work | None:
        return _Work() if async_op else None

    def all_reduce(tensor, op=None, group=None, async_op=False):
        return done(async_op)

    def broadcast(tensor, src=0, group=None, async_op=False):
        return done(async_op)

    def reduce(tensor, dst=0, op=None, group=None, async_op=False):
        return done(async_op)

    def all_gather(tensor_list, tensor, group=None, async_op=False):
        tensor_list[0].copy_(tensor)
        return done(async_op)

    def all_gather_into_tensor(output, input, group=None, async_op=False):
        output.copy_(input.reshape(output.shape))
        return done(async_op)

    def reduce_scatter_tensor(output, input, op=None, group=None, async_op=False):
        output.copy_(input.reshape(output.shape))
        return done(async_op)

    def reduce_scatter(output, input_list, op=None, group=None, async_op=False):
        output.copy_(input_list[0])
        return done(async_op)

    def all_gather_object(object_list, obj, group=None):
        object_list[0] = obj

    def broadcast_object_list(object_list, src=0, group=None, device=None):
        return None

    def all_to_all_single(output, input, *args, async_op=False, **kwargs):
        output.copy_(input)
        return done(async_op)

    values = {
        "is_available": lambda: True,
        "is_initialized": lambda: state["initialized"],
        "is_torchelastic_launched": lambda: False,
        "init_process_group": init_process_group,
        "destroy_process_group": destroy_process_group,
        "get_rank": lambda *a, **k: 0,
        "get_world_size": lambda *a, **k: 1,
        "get_local_rank": lambda *a, **k: 0,
        "barrier": lambda *a, **k: None,
        "monitored_barrier": lambda *a, **k: None,
        "new_group": lambda *a, **k: None,
        "all_reduce": all_reduce,
        "broadcast": broadcast,
        "reduce": reduce,
        "all_gather": all_gather,
        "all_gather_into_tensor": all_gather_into_tensor,
        "_all_gather_base": all_gather_into_tensor,
        "reduce_scatter_tensor": reduce_scatter_tensor,
        "_reduce_scatter_base": reduce_scatter_tensor,
        "reduce_scatter": reduce_scatter,
        "all_gather_object": all_gather_object,
        "broadcast_object_list": broadcast_object_list,
        "all_to_all_single": all_to_all_single,
    }
    for name, value in values.items():
        setattr(dist, name, _distinct(value, name))

    class DistributedDataParallel(torch.nn.Module):
        """DDP in a world of one: the wrapped module itself."""

        def __init__(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
            super().__init__()
            self.module = module

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.module(*args, **kwargs)

        def no_sync(self) -> contextlib.AbstractContextManager:
            return contextlib.nullcontext()

    import torch.nn.parallel as parallel

    parallel.DistributedDataParallel = DistributedDataParallel  # type: ignore[misc]
    torch.nn.parallel.distributed.DistributedDataParallel = DistributedDataParallel  # type: ignore[misc]


# -- FlashAttention ------------------------------------------------------------------------


def _sdpa_bthd(q, k, v, causal: bool, softmax_scale: float | None = None, window: tuple[int, int] | None = None):
    """Attention on [B, T, H, D] tensors (FlashAttention's layout), grouped-query heads allowed."""
    dtype = q.dtype
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, T, D]
    if kh.size(1) != qh.size(1):
        repeat = qh.size(1) // kh.size(1)
        kh = kh.repeat_interleave(repeat, dim=1)
        vh = vh.repeat_interleave(repeat, dim=1)
    kh, vh = kh.to(qh.dtype), vh.to(qh.dtype)
    mask = None
    if window is not None and window[0] is not None and window[0] >= 0:
        tq, tk = qh.size(2), kh.size(2)
        i = torch.arange(tq).unsqueeze(1) + (tk - tq)
        j = torch.arange(tk).unsqueeze(0)
        mask = (j >= i - window[0]) & ((j <= i) if causal else (j <= i + max(window[1], 0)))
    if mask is not None:
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=softmax_scale)
    else:
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=causal and qh.size(2) > 1, scale=softmax_scale)
    return out.transpose(1, 2).to(dtype)


def flash_attn_func(q, k, v, dropout_p: float = 0.0, softmax_scale: float | None = None, causal: bool = False,
                    window_size: tuple[int, int] = (-1, -1), *args: Any, **kwargs: Any):
    """``flash_attn_func`` on the CPU: q [B, Tq, Hq, D], k/v [B, Tk, Hk, D] -> [B, Tq, Hq, D]."""
    return _sdpa_bthd(q, k, v, bool(causal), softmax_scale, tuple(window_size) if window_size else None)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q: int = 0, max_seqlen_k: int = 0,
                           dropout_p: float = 0.0, softmax_scale: float | None = None, causal: bool = False,
                           window_size: tuple[int, int] = (-1, -1), *args: Any, **kwargs: Any):
    """Packed sequences ([total, H, D]) cut at ``cu_seqlens``: attention never crosses a cut."""
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[-1], dtype=q.dtype, device=q.device)
    cq = [int(x) for x in cu_seqlens_q.tolist()]
    ck = [int(x) for x in cu_seqlens_k.tolist()]
    for i in range(len(cq) - 1):
        qs, qe, ks, ke = cq[i], cq[i + 1], ck[i], ck[i + 1]
        if qe <= qs or ke <= ks:
            continue
        seg = _sdpa_bthd(q[qs:qe][None], k[ks:ke][None], v[ks:ke][None], bool(causal), softmax_scale,
                         tuple(window_size) if window_size else None)
        out[qs:qe] = seg[0]
    return out


def flash_attn_qkvpacked_func(qkv, dropout_p: float = 0.0, softmax_scale=None, causal: bool = False, *a, **k):
    return flash_attn_func(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], softmax_scale=softmax_scale, causal=causal)


def _flash_attn_modules() -> dict[str, types.ModuleType]:
    modules = {}
    for name in ("flash_attn_interface", "flash_attn", "flash_attn.flash_attn_interface", "flash_attn_3",
                 "flash_attn_3.flash_attn_interface", "hopper", "hopper.flash_attn_interface"):
        module = types.ModuleType(name)
        module.flash_attn_func = flash_attn_func  # type: ignore[attr-defined]
        module.flash_attn_varlen_func = flash_attn_varlen_func  # type: ignore[attr-defined]
        module.flash_attn_qkvpacked_func = flash_attn_qkvpacked_func  # type: ignore[attr-defined]
        module.__path__ = []  # type: ignore[attr-defined]  # a package, for "flash_attn.x" imports
        modules[name] = module
    for name, module in modules.items():
        if "." in name:
            parent, _, child = name.rpartition(".")
            setattr(modules[parent], child, module)
    return modules


# -- Triton -------------------------------------------------------------------------------


class _Anything:
    """Stands for any attribute of ``triton.language`` at definition time (annotations, dtypes)."""

    def __init__(self, name: str = "tl") -> None:
        self._name = name

    def __getattr__(self, name: str) -> _Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(f"{self._name}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]  # used as a decorator
        return _Anything(f"{self._name}()")

    def __getitem__(self, item: Any) -> _Anything:
        return self

    def __repr__(self) -> str:
        return f"<stub {self._name}>"


class _Kernel:
    """A ``@triton.jit`` function: can be defined and indexed with a grid, never launched."""

    def __init__(self, fn: Any, **kwargs: Any) -> None:
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __getitem__(self, grid: Any) -> Any:
        def launch(*args: Any, **kwargs: Any) -> None:
            raise KernelUnavailable(f"Triton kernel {self.__name__} cannot run on the CPU")

        return launch

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise KernelUnavailable(f"Triton kernel {self.__name__} cannot run on the CPU")

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise KernelUnavailable(f"Triton kernel {self.__name__} cannot run on the CPU")


def _jit(fn: Any = None, **kwargs: Any) -> Any:
    if fn is None:
        return lambda f: _Kernel(f, **kwargs)
    return _Kernel(fn, **kwargs)


def _decorator_factory(*args: Any, **kwargs: Any) -> Any:
    def wrap(fn: Any) -> Any:
        return fn if isinstance(fn, _Kernel) else _Kernel(fn)

    return wrap


def _triton_modules() -> dict[str, types.ModuleType]:
    triton = types.ModuleType("triton")
    triton.__path__ = []  # type: ignore[attr-defined]
    triton.__version__ = "0.0.0+cpu-stub"  # type: ignore[attr-defined]
    triton.jit = _jit  # type: ignore[attr-defined]
    triton.autotune = _decorator_factory  # type: ignore[attr-defined]
    triton.heuristics = _decorator_factory  # type: ignore[attr-defined]
    triton.Config = lambda *a, **k: types.SimpleNamespace(args=a, kwargs=k)  # type: ignore[attr-defined]
    triton.cdiv = lambda a, b: -(-a // b)  # type: ignore[attr-defined]
    triton.next_power_of_2 = lambda n: 1 if n <= 1 else 1 << (int(n) - 1).bit_length()  # type: ignore[attr-defined]
    language = types.ModuleType("triton.language")
    language.__getattr__ = lambda name: _Anything(f"tl.{name}")  # type: ignore[attr-defined]
    language.constexpr = _Anything("tl.constexpr")  # type: ignore[attr-defined]
    triton.language = language  # type: ignore[attr-defined]
    tools = types.ModuleType("triton.tools")
    tools.__path__ = []  # type: ignore[attr-defined]
    descriptor = types.ModuleType("triton.tools.tensor_descriptor")

    class TensorDescriptor:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        @classmethod
        def from_tensor(cls, *args: Any, **kwargs: Any) -> TensorDescriptor:
            return cls()

    descriptor.TensorDescriptor = TensorDescriptor  # type: ignore[attr-defined]
    tools.tensor_descriptor = descriptor  # type: ignore[attr-defined]
    triton.tools = tools  # type: ignore[attr-defined]
    runtime = types.ModuleType("triton.runtime")
    runtime.driver = _Anything("triton.runtime.driver")  # type: ignore[attr-defined]
    triton.runtime = runtime  # type: ignore[attr-defined]
    testing = types.ModuleType("triton.testing")
    testing.do_bench = lambda *a, **k: 0.0  # type: ignore[attr-defined]
    triton.testing = testing  # type: ignore[attr-defined]
    return {
        "triton": triton, "triton.language": language, "triton.tools": tools,
        "triton.tools.tensor_descriptor": descriptor, "triton.runtime": runtime, "triton.testing": testing,
    }


def _tool_modules() -> dict[str, types.ModuleType]:
    """Packages of the challenge's environment that only size the code: ``python_minifier`` (used
    to log the compressed code size) returns the code unchanged when it is not installed."""
    minifier = types.ModuleType("python_minifier")
    minifier.minify = lambda source, *a, **k: source  # type: ignore[attr-defined]
    return {"python_minifier": minifier}


class SubmissionImporter:
    """``__import__`` for submission code: FlashAttention and Triton come from the stand-ins.

    The stand-ins are served only to the submission's own imports (its ``__builtins__``), never
    put into ``sys.modules``: torch's own code must keep seeing a machine without Triton. A
    script that imports Triton inside ``try:`` has a fallback, so it gets the ImportError it
    expects on a machine without a GPU.
    """

    def __init__(self, triton_optional: bool = False, unguarded: frozenset[str] = frozenset()) -> None:
        self.modules = {**_flash_attn_modules(), **_triton_modules(), **_tool_modules()}
        self.triton_optional = triton_optional
        self.real = builtins.__import__  # the interpreter's (the harness's own may differ)
        #: Packages the scripts import outside any ``try:``: missing, they get a stand-in
        #: (:mod:`auditor.runtime.absent`), and the names of those that did.
        self.unguarded = unguarded
        self.absent: dict[str, types.ModuleType] = {}

    def __call__(self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and name == "python_minifier":
            try:
                return self.real(name, globals, locals, fromlist, level)
            except ImportError:
                return self.modules[name]
        if level == 0 and (name in self.modules or name.split(".")[0] in ("triton", "flash_attn", "flash_attn_interface",
                                                                            "flash_attn_3", "hopper")):
            if name.split(".")[0] == "triton" and self.triton_optional:
                raise ImportError(f"No module named {name!r} (no GPU: the script's fallback is used)")
            if name not in self.modules:
                raise ImportError(f"No module named {name!r}")
            if fromlist:
                return self.modules[name]
            return self.modules[name.split(".")[0]]
        try:
            return self.real(name, globals, locals, fromlist, level)
        except ModuleNotFoundError as exc:
            top = name.split(".")[0]
            if level or top not in self.unguarded or (exc.name or "").split(".")[0] != top:
                raise  # a fallback handles it, or an installed package's own dependency is missing
            return self._stand_in(name if fromlist else top)

    def _stand_in(self, name: str) -> types.ModuleType:
        if name not in self.absent:
            self.absent[name] = absent.stand_in(name)
        return self.absent[name]


def install(threads: int = 2, fp32: bool = False) -> None:
    """Install every stand-in (the caller enters ``track.TrackMode(cpu=True)`` as well).

    With ``fp32`` the model runs in float32: autocast regions are off and ``Module.bfloat16()``
    / ``.half()`` / ``.to(bf16)`` keep the weights in float32 (tensor casts are untouched, so
    quantization still rounds the way it does on the GPU).
    """
    FP32["on"] = fp32
    if fp32:
        torch.nn.Module.bfloat16 = _keep_fp32(torch.nn.Module.bfloat16)  # type: ignore[method-assign]
        torch.nn.Module.half = _keep_fp32(torch.nn.Module.half)  # type: ignore[method-assign]
        torch.nn.Module.to = _module_to(torch.nn.Module.to)  # type: ignore[method-assign]
    torch.set_num_threads(max(1, threads))

    _install_cuda()
    _install_compile()
    _install_distributed()


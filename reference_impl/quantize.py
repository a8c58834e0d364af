"""Post-training quantization, the compressed artifact, and the 16,000,000-byte accounting.

int8+zlib (the baseline), per state-dict entry:
- non-float tensors: stored as they are;
- float tensors with <= 65,536 elements: kept as floats, fp32 for control tensors, else fp16;
- 2-D float tensors: per row, clip at the 0.9999984 quantile of |W_row|, scale = clip/127 (at least
  1/127, stored fp16), q = round(W/scale) in [-127, 127] as int8;
- other float tensors: the same with one scale for the whole tensor (fp32 scalar).
The container dict is torch.save'd and zlib-compressed at level 9 (format "int8_clean_per_row_v1",
the challenge's own layout, so artifacts load in either code base).

int6+lzma (the later records' "GPTQ-lite" export): the block matrices use 6-bit rows, q in
[-31, 31] still stored as int8, each row's clip picked from a few quantiles by least squared error;
the embedding and everything else as in int8; compressed with lzma preset 9.

Artifact bytes = compressed model file + code bytes. The reference is a package, so its code bytes
are the UTF-8 bytes of every module a run executes: all reference_impl/*.py except rerun.py (the
driver that builds corpora and compares logs, like the challenge's data scripts, is not part of a
submission), plus the two-line `train_gpt.py` entry script a records folder runs them through
(`ENTRY_SCRIPT`). See `submission_code_files()`.
"""

from __future__ import annotations

import io
import lzma
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .model import is_control_tensor

ARTIFACT_CAP_BYTES = 16_000_000  # decimal, code + compressed model
KEEP_FLOAT_MAX_NUMEL = 65_536
INT8_CLIP_QUANTILE = 0.9999984  # 99.99984th percentile of |W| per row
INT6_CLIP_QUANTILES = (0.999, 0.9995, 0.9999, 0.99999, 1.0)
NOT_SUBMITTED = ("rerun.py",)  # reference_impl modules that a training run never executes
#: The records folder's train_gpt.py: it runs the package, and its bytes count as code too.
ENTRY_SCRIPT = 'from reference_impl.train import main\n\nif __name__ == "__main__":\n    main()\n'


FORMATS = {  # format name -> (container tag, row bits of the block matrices, compress, decompress)
    "int8+zlib": ("int8_clean_per_row_v1", 8, lambda b: zlib.compress(b, level=9), zlib.decompress),
    "int6+lzma": ("int6_per_row_v1", 6, lambda b: lzma.compress(b, preset=9), lzma.decompress),
}


def tensor_nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def quantize_rows(w: Tensor, bits: int = 8,
                  clip_quantiles: tuple[float, ...] = (INT8_CLIP_QUANTILE,)) -> tuple[Tensor, Tensor]:
    """Symmetric per-row quantization of a 2-D tensor: (q int8 [R, C], scale fp16 [R]).

    With several clip quantiles, each row keeps the one whose dequantized row has the least
    squared error. Rounding uses the fp32 scale; dequantization uses the stored fp16 copy.
    """
    w = w.float()
    qmax = 2 ** (bits - 1) - 1  # 127 for int8, 31 for int6
    best_q = best_scale = best_err = None
    for quantile in clip_quantiles:
        clip = torch.quantile(w.abs(), quantile, dim=1) if w.numel() else torch.zeros(w.shape[0])  # [R]
        scale = (clip / qmax).clamp_min(1.0 / qmax)  # [R]; the floor keeps all-zero rows finite
        clipped = torch.maximum(torch.minimum(w, clip[:, None]), -clip[:, None])
        q = torch.clamp(torch.round(clipped / scale[:, None]), -qmax, qmax).to(torch.int8)
        scale16 = scale.to(torch.float16)
        if len(clip_quantiles) == 1:
            return q.contiguous(), scale16.contiguous()
        err = (q.float() * scale16.float()[:, None] - w).square().sum(dim=1)  # [R]
        if best_err is None:
            best_q, best_scale, best_err = q, scale16, err
        else:
            better = err < best_err
            best_q = torch.where(better[:, None], q, best_q)
            best_scale = torch.where(better, scale16, best_scale)
            best_err = torch.minimum(err, best_err)
    return best_q.contiguous(), best_scale.contiguous()


def quantize_tensor(t: Tensor) -> tuple[Tensor, Tensor]:
    """Per-tensor int8 for float tensors that are not 2-D: (q int8, scale fp32 scalar)."""
    t = t.float()
    clip = float(torch.quantile(t.abs().flatten(), INT8_CLIP_QUANTILE)) if t.numel() else 0.0
    scale = torch.tensor(clip / 127.0 if clip > 0 else 1.0, dtype=torch.float32)
    q = torch.clamp(torch.round(torch.clamp(t, -clip, clip) / scale), -127, 127).to(torch.int8)
    return q.contiguous(), scale


def quantize_state_dict(state_dict: dict[str, Tensor], fmt: str = "int8+zlib") -> tuple[dict, dict[str, int]]:
    """The artifact container of `state_dict` and its byte statistics (payload = bytes of every
    stored tensor, baseline_tensor_bytes = bytes of the original tensors)."""
    tag, matrix_bits, _, _ = FORMATS[fmt]
    quantized, scales, dtypes, passthrough, orig_dtypes, qmeta = {}, {}, {}, {}, {}, {}
    stats = dict.fromkeys(("param_count", "num_tensors", "baseline_tensor_bytes", "payload_bytes"), 0)
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu().contiguous()
        stats["param_count"] += t.numel()
        stats["num_tensors"] += 1
        stats["baseline_tensor_bytes"] += tensor_nbytes(t)
        if not t.is_floating_point():
            passthrough[name] = t
            stats["payload_bytes"] += tensor_nbytes(t)
            continue
        if t.numel() <= KEEP_FLOAT_MAX_NUMEL:  # small tensors: the bytes saved would not pay for the scales
            if is_control_tensor(name):
                kept = t.float()
            elif t.dtype in (torch.float32, torch.bfloat16):
                kept = t.to(torch.float16)
                orig_dtypes[name] = str(t.dtype).removeprefix("torch.")
            else:
                kept = t
            passthrough[name] = kept.contiguous()
            stats["payload_bytes"] += tensor_nbytes(kept)
            continue
        if t.ndim == 2:
            bits = matrix_bits if name.startswith("blocks.") else 8  # int6 only for the block matrices
            quantiles = (INT8_CLIP_QUANTILE,) if bits == 8 else INT6_CLIP_QUANTILES
            q, s = quantize_rows(t, bits, quantiles)
            qmeta[name] = {"scheme": "per_row", "axis": 0}
            if bits != 8:  # int8 entries keep the challenge's exact metadata (and thus its byte count)
                qmeta[name]["bits"] = bits
        else:
            q, s = quantize_tensor(t)
        quantized[name], scales[name] = q, s
        dtypes[name] = str(t.dtype).removeprefix("torch.")
        stats["payload_bytes"] += tensor_nbytes(q) + tensor_nbytes(s)
    container = {"__quant_format__": tag, "quantized": quantized, "scales": scales, "dtypes": dtypes,
                 "passthrough": passthrough}
    if qmeta:
        container["qmeta"] = qmeta
    if orig_dtypes:
        container["passthrough_orig_dtypes"] = orig_dtypes
    return container, stats


def dequantize_state_dict(container: dict) -> dict[str, Tensor]:
    """Float tensors back from a container (either format): q * scale, cast to the recorded dtype."""
    out: dict[str, Tensor] = {}
    for name, q in container["quantized"].items():
        scale = container["scales"][name].float()
        if scale.ndim > 0:  # per row: broadcast the row scale over the trailing dimensions
            scale = scale.view(q.shape[0], *([1] * (q.ndim - 1)))
        out[name] = (q.float() * scale).to(getattr(torch, container["dtypes"][name])).contiguous()
    orig_dtypes = container.get("passthrough_orig_dtypes", {})
    for name, t in container["passthrough"].items():
        out[name] = t.to(getattr(torch, orig_dtypes[name])) if name in orig_dtypes else t
    return out


# -----------------------------------------------------------------------------
# The artifact file and its accounting


@dataclass(frozen=True)
class ArtifactSize:
    """Everything the size lines of the log report; total_bytes is what the 16 MB cap limits."""

    fmt: str
    model_bytes: int  # the compressed model file
    code_bytes: int
    payload_bytes: int
    raw_torch_bytes: int  # torch.save of the container, before compression
    baseline_tensor_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.model_bytes + self.code_bytes

    @property
    def payload_ratio(self) -> float:
        return self.baseline_tensor_bytes / max(self.payload_bytes, 1)

    @property
    def within_cap(self) -> bool:
        return self.total_bytes <= ARTIFACT_CAP_BYTES

    def log_lines(self) -> list[str]:
        """The challenge's two size lines for the compressed artifact."""
        return [
            f"Serialized model {self.fmt}: {self.model_bytes} bytes (payload:{self.payload_bytes} "
            f"raw_torch:{self.raw_torch_bytes} payload_ratio:{self.payload_ratio:.2f}x)",
            f"Total submission size {self.fmt}: {self.total_bytes} bytes",
        ]


def save_artifact(state_dict: dict[str, Tensor], path: str | Path, fmt: str, code_bytes: int) -> ArtifactSize:
    """Quantize, torch.save, compress and write the artifact; the sizes come from what was written."""
    container, stats = quantize_state_dict(state_dict, fmt)
    buffer = io.BytesIO()
    torch.save(container, buffer)
    raw = buffer.getvalue()
    path = Path(path)
    path.write_bytes(FORMATS[fmt][2](raw))
    return ArtifactSize(fmt, path.stat().st_size, code_bytes, stats["payload_bytes"], len(raw),
                        stats["baseline_tensor_bytes"])


def load_artifact(path: str | Path, fmt: str) -> dict[str, Tensor]:
    """Read an artifact back from disk: decompress, torch.load (tensors only), dequantize."""
    raw = FORMATS[fmt][3](Path(path).read_bytes())
    container = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    expected = FORMATS[fmt][0]
    if container.get("__quant_format__") != expected:
        raise ValueError(f"{path}: container format {container.get('__quant_format__')!r}, expected {expected!r}")
    return dequantize_state_dict(container)


def submission_code_files() -> list[Path]:
    """The files whose bytes count as code: every reference_impl module a run executes."""
    package = Path(__file__).resolve().parent
    return sorted(p for p in package.glob("*.py") if p.name not in NOT_SUBMITTED)


def code_bytes(files: list[Path] | None = None) -> int:
    """Summed byte size of the code files (UTF-8 source, counted as stored).

    Without ``files``: the submitted code, i.e. the package modules plus the entry script.
    """
    if files is not None:
        return sum(len(p.read_bytes()) for p in files)
    return sum(len(p.read_bytes()) for p in submission_code_files()) + len(ENTRY_SCRIPT.encode("utf-8"))

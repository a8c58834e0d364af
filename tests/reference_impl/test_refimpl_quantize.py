"""int8 / int6 round trips, the container layout, and exact artifact byte accounting."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reference_impl.model import GPT, GPTConfig, cast_for_bf16
from reference_impl.quantize import (
    ENTRY_SCRIPT,
    INT6_CLIP_QUANTILES,
    code_bytes,
    dequantize_state_dict,
    load_artifact,
    quantize_rows,
    quantize_state_dict,
    save_artifact,
    submission_code_files,
)

# Size lines as the records validator reads them (research/pipeline.md §6.3).
R_QMODEL = re.compile(r"^Serialized model (?P<fmt>[\w.+\-]+):\s*(?P<bytes>\d+) bytes \(payload:(?P<payload>\d+) "
                      r"raw_torch:(?P<raw>\d+) payload_ratio:(?P<ratio>[\d.]+)x\)$")
R_TOTAL = re.compile(r"^Total submission size (?P<fmt>[\w.+\-]+):\s*(?P<bytes>\d+) bytes$")


def test_int8_rows_round_trip_within_half_a_step_except_clipped_outliers():
    torch.manual_seed(0)
    w = torch.randn(300, 400)
    w[7, 3] = 40.0  # an outlier: with 400 entries the 0.9999984 quantile lies just below the row's max
    w[11] = 0.0  # an all-zero row keeps the 1/127 floor and comes back as zeros
    container, _ = quantize_state_dict({"blocks.0.mlp.fc.weight": w})
    q = container["quantized"]["blocks.0.mlp.fc.weight"]
    scale = container["scales"]["blocks.0.mlp.fc.weight"]
    assert q.dtype == torch.int8 and int(q.abs().max()) <= 127
    assert scale.dtype == torch.float16 and scale.shape == (300,)
    back = dequantize_state_dict(container)["blocks.0.mlp.fc.weight"]
    s = scale.float()[:, None]
    # Half a quantization step, plus the fp16 rounding of the scale (relative 2^-11, times 127 steps),
    # plus whatever lies beyond the clip.
    bound = 0.5 * s + 127 * s * 2**-11 + (w.abs() - 127 * s * (1 + 2**-10)).clamp_min(0)
    assert bool(((back - w).abs() <= bound + 1e-6).all())
    assert float((back - w).abs()[w.abs() < 3].max()) < 0.6 * float(s.max())
    assert 39.0 < float(scale[7]) * 127 <= 40.0  # so it sets its row's scale (clipped by a hair at most)
    assert abs(float(back[7, 3]) - 40.0) < float(scale[7])
    assert float(scale[11]) == pytest.approx(1 / 127, rel=1e-3) and not back[11].any()


def test_container_rules_and_a_hand_counted_payload():
    torch.manual_seed(1)
    state = {
        "blocks.0.attn.c_q.weight": torch.randn(300, 256),  # 76,800 > 65,536: int8 rows + 300 fp16 scales
        "blocks.0.attn_scale": torch.randn(256),  # control tensor: kept fp32
        "blocks.0.norm_gain": torch.randn(100),  # small float: stored fp16, restored to fp32
        "step": torch.tensor(5, dtype=torch.int64),  # non-float: stored as it is
        "conv.weight": torch.randn(70, 1000, 1),  # large, not 2-D: one fp32 scale for the tensor
    }
    container, stats = quantize_state_dict(state)
    assert container["__quant_format__"] == "int8_clean_per_row_v1"
    assert set(container["quantized"]) == {"blocks.0.attn.c_q.weight", "conv.weight"}
    assert container["passthrough"]["blocks.0.attn_scale"].dtype == torch.float32
    assert container["passthrough"]["blocks.0.norm_gain"].dtype == torch.float16
    assert container["passthrough_orig_dtypes"] == {"blocks.0.norm_gain": "float32"}
    assert container["qmeta"] == {"blocks.0.attn.c_q.weight": {"scheme": "per_row", "axis": 0}}
    assert container["scales"]["conv.weight"].shape == ()
    assert stats["payload_bytes"] == (76_800 + 600) + 1_024 + 200 + 8 + (70_000 + 4)
    assert stats["baseline_tensor_bytes"] == 76_800 * 4 + 1_024 + 400 + 8 + 70_000 * 4
    back = dequantize_state_dict(container)
    assert {k: v.dtype for k, v in back.items()} == {k: v.dtype for k, v in state.items()}
    assert torch.equal(back["blocks.0.attn_scale"], state["blocks.0.attn_scale"])
    assert torch.equal(back["step"], state["step"])
    assert float((back["conv.weight"] - state["conv.weight"]).abs().max()) < 0.03


def test_baseline_container_has_the_records_payload_and_raw_size():
    # The Naive Baseline's log: payload:17178912 raw_torch:17224025 payload_ratio:3.91x. Both numbers
    # depend only on shapes and dtypes (tok_emb in bf16 as on CUDA), not on the trained values. The raw
    # torch.save size also depends on torch's zip layout, which has been stable across 2.x releases.
    container, stats = quantize_state_dict(cast_for_bf16(GPT(GPTConfig.baseline())).state_dict())
    assert stats["param_count"] == 17_059_912
    assert stats["payload_bytes"] == 17_178_912
    assert f"{stats['baseline_tensor_bytes'] / stats['payload_bytes']:.2f}" == "3.91"
    buffer = io.BytesIO()
    torch.save(container, buffer)
    assert len(buffer.getvalue()) == 17_224_025


@pytest.mark.parametrize("fmt", ["int8+zlib", "int6+lzma"])
def test_artifact_file_accounting_is_exact(tmp_path, tiny_model, fmt):
    path = tmp_path / "model.ptz"
    size = save_artifact(tiny_model.state_dict(), path, fmt, code_bytes=12_345)
    assert size.model_bytes == len(path.read_bytes())
    assert size.total_bytes == size.model_bytes + 12_345
    model_line, total_line = size.log_lines()
    m = R_QMODEL.match(model_line)
    assert m and m["fmt"] == fmt and int(m["bytes"]) == size.model_bytes
    assert int(m["payload"]) == size.payload_bytes and int(m["raw"]) == size.raw_torch_bytes
    t = R_TOTAL.match(total_line)
    assert t and t["fmt"] == fmt and int(t["bytes"]) == size.model_bytes + 12_345
    assert size.within_cap
    back = load_artifact(path, fmt)
    assert set(back) == set(tiny_model.state_dict())
    torch.testing.assert_close(back["blocks.0.attn.c_q.weight"], tiny_model.state_dict()["blocks.0.attn.c_q.weight"],
                               atol=0.02, rtol=0)
    other = "int6+lzma" if fmt == "int8+zlib" else "int8+zlib"
    with pytest.raises(Exception):  # noqa: B017 -- the wrong decompressor or container format
        load_artifact(path, other)


def test_int6_uses_six_bit_block_rows_and_never_a_worse_clip_than_amax():
    torch.manual_seed(2)
    w = torch.randn(64, 2048) * torch.linspace(0.1, 2.0, 64)[:, None]
    w[:, 0] *= 8  # heavy-tailed rows: a clip below the max pays off
    container, _ = quantize_state_dict({"blocks.1.mlp.fc.weight": w, "tok_emb.weight": torch.randn(300, 256)},
                                       "int6+lzma")
    assert container["__quant_format__"] == "int6_per_row_v1"
    assert int(container["quantized"]["blocks.1.mlp.fc.weight"].abs().max()) <= 31
    assert int(container["quantized"]["tok_emb.weight"].abs().max()) > 31  # the embedding stays int8
    q_best, s_best = quantize_rows(w, 6, INT6_CLIP_QUANTILES)
    q_amax, s_amax = quantize_rows(w, 6, (1.0,))
    err_best = (q_best.float() * s_best.float()[:, None] - w).square().sum(1)
    err_amax = (q_amax.float() * s_amax.float()[:, None] - w).square().sum(1)
    assert bool((err_best <= err_amax + 1e-6).all()) and bool((err_best < err_amax).any())


def test_code_bytes_are_the_modules_a_run_executes():
    files = submission_code_files()
    names = {p.name for p in files}
    assert "rerun.py" not in names and {"train.py", "model.py", "evaluate.py", "quantize.py"} <= names
    assert code_bytes() == sum(p.stat().st_size for p in files) + len(ENTRY_SCRIPT.encode())
    # Every reference_impl module that a training run imports must be counted.
    probe = ("import sys, reference_impl.train; "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('reference_impl.'))))")
    root = Path(__file__).resolve().parents[2]
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=root)
    modules = {m.split(".", 1)[1] + ".py" for m in loaded.stdout.split()}
    assert modules <= names, modules - names

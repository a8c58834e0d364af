"""Small hand-written logs and folders in the challenge's formats, for rule cases and tests.

Nothing here is copied from a real submission: the lines follow the shapes the baseline
script and later records print (``step:…``, ``stopping_early: …``, ``Serialized model …``,
``final_… val_loss:… val_bpb:…``), with numbers chosen for each case.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: A tiny script; its byte length is the shipped code size of the sample folders.
SCRIPT = (
    '"""A tiny stand-in for train_gpt.py (sample submission)."""\n'
    "import os\n"
    "import torch\n\n"
    "def main():\n"
    "    seed = int(os.environ.get('SEED', '1337'))\n"
    "    torch.manual_seed(seed)\n\n"
    "if __name__ == '__main__':\n"
    "    main()\n"
)
SCRIPT_BYTES = len(SCRIPT.encode())

SP1024_TOKENS = 62_021_632
SP1024_BT = 2.4359301
SP8192_TOKENS = 40_540_160
SP8192_BT = 3.726631


def pair(bpb: float, bytes_per_token: float) -> tuple[float, float]:
    """A (val_loss, val_bpb) pair with the given bytes-per-token ratio."""
    return bpb * math.log(2.0) * bytes_per_token, bpb


def baseline_log(
    seed: int = 1337,
    *,
    model_bytes: int = 15_800_000,
    code_bytes: int = SCRIPT_BYTES,
    train_ms: int = 600_021,
    eval_ms: int = 1_396,
    world_size: int = 8,
    bpb: float = 1.22471118,
    bytes_per_token: float = SP1024_BT,
    val_tokens: int = SP1024_TOKENS,
    train_shards: int = 80,
    extra: str = "",
    stage: str = "final_int8_zlib_roundtrip",
) -> str:
    """A 2026-03-style console log of a baseline-like run (sp1024, int8+zlib)."""
    loss, bpb = pair(bpb, bytes_per_token)
    steps = max(1, train_ms // 44)
    total = model_bytes + code_bytes
    return (
        "val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model\n"
        f"train_loader:dataset:fineweb10B_sp1024 train_shards:{train_shards}\n"
        f"val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:{val_tokens}\n"
        "model_params:17059912\n"
        f"world_size:{world_size} grad_accum_steps:{max(1, 8 // max(world_size, 1))}\n"
        "train_batch_tokens:524288 train_seq_len:1024 iterations:20000 warmup_steps:20 max_wallclock_seconds:600.000\n"
        f"seed:{seed}\n"
        "step:0/20000 val_loss:6.9357 val_bpb:4.1077 train_time:0ms step_avg:0.02ms\n"
        "step:1/20000 train_loss:6.8974 train_time:43ms step_avg:43.50ms\n"
        f"step:{steps}/20000 val_loss:2.0559 val_bpb:1.2176 train_time:{train_ms}ms step_avg:43.50ms\n"
        f"stopping_early: wallclock_cap train_time:{train_ms}ms step:{steps}/20000\n"
        "peak memory allocated: 10184 MiB reserved: 10588 MiB\n"
        "Serialized model: 67224983 bytes\n"
        f"Code size: {code_bytes} bytes\n"
        f"Total submission size: {67224983 + code_bytes} bytes\n"
        f"Serialized model int8+zlib: {model_bytes} bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)\n"
        f"Total submission size int8+zlib: {total} bytes\n"
        f"{extra}"
        f"{stage} val_loss:{loss:.4f} val_bpb:{bpb:.4f} eval_time:{eval_ms}ms\n"
        f"{stage}_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}\n"
    )


def modern_log(
    seed: int = 42,
    *,
    model_bytes: int = 15_900_000,
    code_bytes: int | None = None,
    code_uncompressed: int | None = None,
    train_ms: int = 596_100,
    reserve_s: float = 4.0,
    eval_ms: int = 455_128,
    world_size: int = 8,
    bpb: float = 1.06124613,
    bytes_per_token: float = 3.157152,
    val_tokens: int = 47_851_520,
    train_shards: int = 80,
    gpu: str = "NVIDIA H100 80GB HBM3",
    stage: str = "quantized_ttt_phased",
    after_eval: str = "",
) -> str:
    """A 2026-04-style log (Hyperparameters block, CaseOps, phased TTT, per-group compression)."""
    loss, bpb = pair(bpb, bytes_per_token)
    code_bytes = SCRIPT_BYTES if code_bytes is None else code_bytes
    code_lines = (
        f"Code size (uncompressed): {code_uncompressed} bytes\nCode size (compressed): {code_bytes} bytes\n"
        if code_uncompressed is not None
        else f"Code size: {code_bytes} bytes\n"
    )
    smi = "".join(
        f"|   {i}  {gpu:<28}On  |   00000000:{i:02X}:00.0 Off |                    0 |\n" for i in range(world_size)
    )
    effective = int(600_000 - reserve_s * 1000)
    return (
        "W0426 19:59:28.614000 762659 torch/distributed/run.py:803] *****************************************\n"
        f"{smi}"
        "Hyperparameters:\n"
        "  caseops_enabled: True\n"
        "  max_wallclock_seconds: 600.0\n"
        f"  seed: {seed}\n"
        "  tokenizer_path: ./data/tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model\n"
        "  vocab_size: 8192\n"
        f"  world_size: {world_size}\n"
        f"train_shards: {train_shards}\n"
        f"val_tokens: {val_tokens}\n"
        "model_params:35945671\n"
        f"gptq:reserving {reserve_s:.0f}s, effective={effective}ms\n"
        "warmup_step: 1/20\n"
        "1/20000 train_loss: 9.0121 train_time: 0.0m tok/s: 8297317\n"
        "4000/20000 train_loss: 2.9502 train_time: 7.2m tok/s: 7299379\n"
        f"4945/20000 val_loss: 2.3539 val_bpb: 1.0756\n"
        f"stopping_early: wallclock_cap train_time: {train_ms}ms step: 4945/20000\n"
        "peak memory allocated: 41717 MiB reserved: 47140 MiB\n"
        "ema:applying EMA weights\n"
        "diagnostic pre-quantization post-ema val_loss:2.32848665 val_bpb:1.06395844 eval_time:6718ms\n"
        "Serialized model: 135417533 bytes\n"
        f"{code_lines}"
        "GPTQ:collecting Hessians from calibration data...\n"
        "GPTQ:collected 67 Hessians in 3.1s\n"
        f"Serialized model quantized+pergroup: {model_bytes} bytes\n"
        f"Total submission size quantized+pergroup: {model_bytes + code_bytes} bytes\n"
        "diagnostic quantized val_loss:2.34727563 val_bpb:1.07254371 eval_time:49995ms\n"
        "ttt_lora:compile warmup done (137.6s)\n"
        "\n"
        "beginning TTT eval timer\n"
        f"{stage} val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:{eval_ms}ms\n"
        f"total_eval_time:{eval_ms / 1000:.1f}s\n"
        f"{after_eval}"
    )


def submission(**fields: Any) -> str:
    """A submission.json with the required fields and the given ones."""
    data: dict[str, Any] = {
        "author": "Sample Author",
        "github_id": "sample-author",
        "name": "Sample submission",
        "date": "2026-04-01",
        "track": "track_10min_16mb",
    }
    data.update(fields)
    return json.dumps(data, indent=2) + "\n"


README = "# Sample submission\n\nA hand-written example folder for the auditor's tests.\n"


def folder(logs: dict[str, str], json_fields: dict[str, Any] | None = None, *, script: str = SCRIPT,
           extra: dict[str, str] | None = None) -> dict[str, str]:
    """The files of a records folder: README, submission.json, train_gpt.py and the logs."""
    files = {"README.md": README, "train_gpt.py": script, "submission.json": submission(**(json_fields or {}))}
    files.update(logs)
    files.update(extra or {})
    return files

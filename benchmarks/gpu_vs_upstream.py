"""Upstream's train_gpt.py and reference_impl side by side on one CUDA GPU, at the Naive Baseline config.

    git -C CLONE show main:train_gpt.py > out/upstream_train_gpt.py   # openai/parameter-golf, never committed
    python benchmarks/gpu_vs_upstream.py --upstream out/upstream_train_gpt.py [--out DIR] [--components]

Both programs train the 9x512 baseline (vocab 1024, seq 1024, 524,288 tokens a step: 8 gradient
accumulation steps on one GPU) for WARMUP_STEPS untimed steps, then ITERATIONS timed steps at a
constant learning rate (no warmdown, no wallclock cap), then serialize to int8+zlib and score the
round trip. They read the same synthetic shards in the official format (a phrase-level Markov
stream, so that the loss falls as in real training) and a 1024-piece SentencePiece model trained on
the project's own text corpus, both made here in a work folder. The script prints, for each
program, ms per step over steps 10..ITERATIONS (from the `train_time` of the step log lines), the
train loss at steps 1 and ITERATIONS, peak allocated memory, the final val_loss and the val_loss
after the int8+zlib round trip, then the ratio of step times; `--components` also times one
compiled forward+backward micro-batch and one Muon step of each program's own modules on the same
weights, to say where a gap comes from. Figures go to stdout and, with --out, to DIR/gpu_vs_upstream.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a clone without installing

from reference_impl.data import write_shard  # noqa: E402
from reference_impl.tokenizer import train_sentencepiece  # noqa: E402

VOCAB = 1024
SEQ_LEN = 1024
BATCH_TOKENS = 524_288

_STEP = re.compile(r"^step:(\d+)/\d+ train_loss:([\d.]+) train_time:(\d+)ms")
_PEAK = re.compile(r"^peak memory allocated: (\d+) MiB")
_VAL = re.compile(r"^step:(\d+)/(\d+) val_loss:([\d.]+)")
_ROUNDTRIP = re.compile(r"^final_int8_zlib_roundtrip_exact val_loss:([\d.]+)")


def phrase_stream(rng: np.random.Generator, phrases: np.ndarray, n_tokens: int, stickiness: int = 4) -> np.ndarray:
    """A token stream of whole phrases; each phrase is followed by one of `stickiness` fixed successors."""
    n_phrases, length = phrases.shape
    successors = rng.integers(0, n_phrases, size=(n_phrases, stickiness))
    picks = np.empty(n_tokens // length + 1, dtype=np.int64)
    picks[0] = 0
    choices = rng.integers(0, stickiness, size=picks.size)
    for i in range(1, picks.size):  # ~10^5 picks: fast enough in Python
        picks[i] = successors[picks[i - 1], choices[i]]
    return phrases[picks].reshape(-1)[:n_tokens]


def make_corpus(work: Path, train_tokens: int, val_tokens: int) -> tuple[Path, Path]:
    """(dataset folder, tokenizer model): synthetic shards and a 1024-piece tokenizer."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "fixtures" / "text").glob("*.txt"))]
    tokenizer = train_sentencepiece(texts, work / "tokenizer" / "sp1024.model", VOCAB)
    rng = np.random.default_rng(20240520)
    phrases = rng.integers(3, VOCAB, size=(4096, 48))  # ids 0-2 are control pieces
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_shard(data / "fineweb_train_000000.bin", phrase_stream(rng, phrases, train_tokens).astype(np.uint16))
    write_shard(data / "fineweb_val_000000.bin", phrase_stream(rng, phrases, val_tokens).astype(np.uint16))
    return data, tokenizer


def run_program(name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: int) -> dict:
    """Run one training program to completion and read its figures from its log."""
    cwd.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return {"name": name, "failed": True, "wall_s": wall}
    figures: dict = {"name": name, "wall_s": round(wall, 1), "train": {}}
    for line in log.read_text(encoding="utf-8").splitlines():
        if m := _STEP.match(line):
            figures["train"][int(m[1])] = (float(m[2]), int(m[3]))
        elif m := _PEAK.match(line):
            figures["peak_mib"] = int(m[1])
        elif (m := _VAL.match(line)) and m[1] == m[2]:
            figures["val_loss"] = float(m[3])
        elif m := _ROUNDTRIP.match(line):
            figures["roundtrip_val_loss"] = float(m[1])
    return figures


def step_ms(figures: dict, first: int, last: int) -> float:
    """Mean step time between two logged steps, from their cumulative train_time."""
    return (figures["train"][last][1] - figures["train"][first][1]) / (last - first)


def time_cuda(fn, repeats: int) -> float:
    """Mean milliseconds of fn() over `repeats` calls after three warm-up calls, by CUDA events."""
    import torch

    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def components(upstream_path: Path, repeats: int = 10) -> dict:
    """Compiled forward+backward of one 64x1024 micro-batch and one Muon step, for each program's own
    model and optimizer classes on the same weights and gradients."""
    import torch

    from reference_impl.model import GPT, GPTConfig, cast_for_bf16
    from reference_impl.optim import Muon as RefMuon
    from reference_impl.optim import newton_schulz_orthogonalize

    spec = importlib.util.spec_from_file_location("upstream_train_gpt", upstream_path)
    upstream = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(upstream)  # defines classes only: its main() runs under __main__

    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    ref = GPT(GPTConfig.baseline()).to(device)
    up = upstream.GPT(vocab_size=VOCAB, num_layers=9, model_dim=512, num_heads=8, num_kv_heads=4, mlp_mult=2,
                      tie_embeddings=True, tied_embed_init_std=0.005, logit_softcap=30.0, rope_base=10000.0,
                      qk_gain_init=1.5).to(device)
    up.load_state_dict(ref.state_dict(), strict=True)  # the same names and shapes
    cast_for_bf16(ref)
    up.bfloat16()
    for module in up.modules():
        if isinstance(module, upstream.CastedLinear):
            module.float()
    upstream.restore_low_dim_params_to_fp32(up)

    x = torch.randint(0, VOCAB, (BATCH_TOKENS // 8 // SEQ_LEN, SEQ_LEN), device=device)
    y = torch.roll(x, -1, dims=1)
    result = {}
    for name, model in (("upstream", up), ("reference_impl", ref)):
        compiled = torch.compile(model, dynamic=False, fullgraph=True)

        def fwd_bwd(compiled=compiled) -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = compiled(x, y)
            (loss / 8).backward()

        result[f"{name}_fwd_bwd_ms"] = time_cuda(fwd_bwd, repeats)

    def matrices(model) -> list:
        return [p for n, p in model.blocks.named_parameters()
                if p.ndim == 2 and not any(c in n for c in upstream.CONTROL_TENSOR_NAME_PATTERNS)]

    up_ns = torch.compile(upstream.zeropower_via_newtonschulz5)
    upstream.zeropower_via_newtonschulz5 = up_ns  # what upstream's main() does
    up_muon = upstream.Muon(matrices(up), lr=0.04, momentum=0.95, backend_steps=5)
    ref_muon = RefMuon(matrices(ref), lr=0.04, momentum=0.95, backend_steps=5)
    ref_muon.orthogonalize = torch.compile(newton_schulz_orthogonalize)
    for name, opt in (("upstream", up_muon), ("reference_impl", ref_muon)):
        for p in opt.param_groups[0]["params"]:
            p.grad = torch.randn_like(p) * 1e-3
        result[f"{name}_muon_step_ms"] = time_cuda(opt.step, repeats)
    return {k: round(v, 3) for k, v in result.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=Path, required=True, help="openai/parameter-golf's train_gpt.py")
    parser.add_argument("--out", type=Path, help="write gpu_vs_upstream.json and both logs here")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed warm-up steps (default 20)")
    parser.add_argument("--iterations", type=int, default=40, help="timed steps (default 40)")
    parser.add_argument("--components", action="store_true", help="also time forward+backward and Muon alone")
    parser.add_argument("--timeout", type=int, default=600, help="seconds each program may take (default 600)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark runs on a GPU machine")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, python {sys.version.split()[0]}")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_vs_upstream_"))
    t0 = time.perf_counter()
    data, tokenizer = make_corpus(work, train_tokens=8 * BATCH_TOKENS, val_tokens=2 * BATCH_TOKENS + 1)
    print(f"corpus and tokenizer in {time.perf_counter() - t0:.1f} s: {work}")

    env = {
        **os.environ, "DATA_PATH": str(data), "TOKENIZER_PATH": str(tokenizer), "VOCAB_SIZE": str(VOCAB),
        "TRAIN_SEQ_LEN": str(SEQ_LEN), "TRAIN_BATCH_TOKENS": str(BATCH_TOKENS), "VAL_BATCH_SIZE": str(BATCH_TOKENS),
        "ITERATIONS": str(args.iterations), "WARMUP_STEPS": str(args.warmup), "WARMDOWN_ITERS": "0",
        "MAX_WALLCLOCK_SECONDS": "0", "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1", "SEED": "1337",
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
    }
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(key, None)
    runs = [
        run_program("upstream", [sys.executable, str(args.upstream.resolve())], {**env, "RUN_ID": "upstream"},
                    work / "upstream", work / "upstream" / "logs" / "upstream.txt", args.timeout),
        run_program("reference_impl", [sys.executable, "-m", "reference_impl.train"],
                    {**env, "RUN_ID": "reference", "OUT_DIR": str(work / "reference"), "DEVICE": "cuda"},
                    ROOT, work / "reference" / "logs" / "reference.txt", args.timeout),
    ]
    report: dict = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "runs": []}
    first, last = 10, args.iterations
    print(f"\n{'':16}{'ms/step ' + str(first) + '-' + str(last):>16}{'loss@1':>10}{'loss@' + str(last):>10}"
          f"{'peak MiB':>10}{'val_loss':>10}{'int8 rt':>10}{'wall s':>8}")
    for figures in runs:
        if figures.get("failed"):
            report["runs"].append(figures)
            continue
        ms = step_ms(figures, first, last)
        row = {"name": figures["name"], "ms_per_step": round(ms, 2), "loss_first": figures["train"][1][0],
               "loss_last": figures["train"][last][0], "peak_mib": figures.get("peak_mib"),
               "val_loss": figures.get("val_loss"), "roundtrip_val_loss": figures.get("roundtrip_val_loss"),
               "wall_s": figures["wall_s"]}
        report["runs"].append(row)
        print(f"{row['name']:16}{ms:>16.1f}{row['loss_first']:>10.4f}{row['loss_last']:>10.4f}"
              f"{row['peak_mib'] or 0:>10}{row['val_loss'] or 0:>10.4f}{row['roundtrip_val_loss'] or 0:>10.4f}"
              f"{row['wall_s']:>8.0f}")
    ok = [r for r in report["runs"] if "ms_per_step" in r]
    if len(ok) == 2:
        report["ratio"] = round(ok[1]["ms_per_step"] / ok[0]["ms_per_step"], 4)
        print(f"\nreference_impl / upstream step time: {report['ratio']:.3f}x")
    if args.components:
        report["components"] = components(args.upstream)
        for key, value in report["components"].items():
            print(f"  {key:32} {value:8.2f} ms")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_vs_upstream.json").write_text(json.dumps(report, indent=2) + "\n")
        for name, log in (("upstream", work / "upstream" / "logs" / "upstream.txt"),
                          ("reference", work / "reference" / "logs" / "reference.txt")):
            if log.exists():
                (args.out / f"{name}.log").write_text(log.read_text(encoding="utf-8"))
    return 0 if len(ok) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())

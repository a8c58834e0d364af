"""Speed of the reference implementation on CPU: training and evaluation tokens per second at the
smoke and the baseline configuration, and (with --smoke-rerun) the wall time of the whole smoke rerun.

    python benchmarks/reference_speed.py                 # about 70 s of CPU time (one thread)
    python benchmarks/reference_speed.py --smoke-rerun   # plus the end-to-end smoke rerun
    python benchmarks/reference_speed.py --threads 2     # torch intra-op threads (default 1)

Training steps use the real optimizers (Muon + Adam) on random tokens; evaluation scores a random
stream with each evaluator. Numbers on a shared machine vary with its load (the script prints the
load average): run it twice. One thread is the default because several OpenMP threads on a machine
whose cores are busy with other work can be many times slower than one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable from a clone without installing

from reference_impl.evaluate import score_ngram_mixer, score_plain, score_sliding, score_ttt
from reference_impl.hparams import Hyperparameters
from reference_impl.model import GPT, GPTConfig
from reference_impl.optim import build_optimizers


def train_tokens_per_second(config: GPTConfig, batch_seqs: int, steps: int) -> float:
    """Forward + backward + optimizer steps on [batch_seqs, seq_len] random tokens (after one untimed step)."""
    torch.manual_seed(0)
    model = GPT(config)
    optimizers, _ = build_optimizers(model, Hyperparameters())
    x = torch.randint(0, config.vocab_size, (batch_seqs, config.seq_len))

    def step() -> None:
        model(x, x.roll(-1, dims=1)).backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad(set_to_none=True)

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * x.numel() / (time.perf_counter() - t0)


def eval_tokens_per_second(config: GPTConfig, num_targets: int, evaluators: dict) -> dict[str, float]:
    torch.manual_seed(0)
    model = GPT(config).eval()
    tokens = torch.randint(0, config.vocab_size, (num_targets + 1,))
    rates = {}
    for name, scorer in evaluators.items():
        t0 = time.perf_counter()
        scorer(model, tokens)
        rates[name] = num_targets / (time.perf_counter() - t0)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke-rerun", action="store_true", help="also time the full smoke rerun end to end")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPUs, load average {load}")

    smoke = GPTConfig.smoke()
    smoke_hp = Hyperparameters.smoke()
    L, s = smoke.seq_len, smoke_hp.eval_stride
    print(f"\nsmoke config: {smoke.num_layers}x{smoke.model_dim}, vocab {smoke.vocab_size}, seq {L}, "
          f"{GPT(smoke).num_params():,} params")
    rate = train_tokens_per_second(smoke, smoke_hp.train_batch_tokens // L, steps=20)
    print(f"  train   {rate:>10,.0f} tokens/s  ({smoke_hp.train_batch_tokens} tokens/step)")
    for name, value in eval_tokens_per_second(smoke, 8192, {
        "plain": lambda m, t: score_plain(m, t, L),
        f"sliding s={s}": lambda m, t: score_sliding(m, t, L, s),
        f"legal TTT s={s}": lambda m, t: score_ttt(m, t, L, s, chunk_tokens=smoke_hp.ttt_chunk_tokens,
                                                   epochs=smoke_hp.ttt_epochs, lr=smoke_hp.ttt_lr, batch_seqs=8),
        f"n-gram mixer s={s}": lambda m, t: score_ngram_mixer(m, t, L, s, order=3, chunk_tokens=1024,
                                                              max_buckets=4096),
    }).items():
        print(f"  eval    {value:>10,.0f} tokens/s  {name}")

    base = GPTConfig.baseline()
    L = base.seq_len
    print(f"\nbaseline config: 9x512, vocab 1024, seq {L}, {GPT(base).num_params():,} params (float32 on CPU)")
    rate = train_tokens_per_second(base, batch_seqs=4, steps=3)
    print(f"  train   {rate:>10,.0f} tokens/s  (4 x {L} tokens per step; the record uses 524,288)")
    for name, value in eval_tokens_per_second(base, 8 * L, {
        "plain": lambda m, t: score_plain(m, t, L, batch_seqs=8),
        "sliding s=512": lambda m, t: score_sliding(m, t, L, 512, batch_windows=8),
    }).items():
        print(f"  eval    {value:>10,.0f} tokens/s  {name}")

    if args.smoke_rerun:
        from reference_impl.rerun import run_smoke

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_smoke(Path(tmp), console=False)
            print(f"\nsmoke rerun end to end: {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

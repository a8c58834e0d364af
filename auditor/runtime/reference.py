"""The reference implementation's evaluators as probe targets: the positive control.

``reference_impl.evaluate`` returns per-position NLLs directly (``nll[i]`` for target
``tokens[i + 1]``), so no capture is needed: each evaluator becomes a scorer for
:class:`auditor.runtime.probes.ProbeRunner` and must pass every probe. The model is the
reference's tiny GPT with random weights (a context-dependent predictor is all the probes need);
it runs in-process, since the reference code is the project's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from auditor.runtime import data, probes


def available() -> bool:
    try:
        import reference_impl.evaluate
        import reference_impl.model  # noqa: F401
    except ImportError:
        return False
    return True


def tiny_model(vocab: int, seed: int = 0) -> Any:
    import torch
    from reference_impl.model import GPT, GPTConfig

    torch.manual_seed(seed)
    model = GPT(GPTConfig.tiny(vocab_size=vocab))
    with torch.no_grad():  # random, non-zero output projections: every position reads its context
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    return model.eval()


def scorers(vocab: int = 64, seq_len: int = 64, stride: int = 16, chunk: int = 128) -> dict[str, tuple[Callable, int | None]]:
    """name -> (stream -> Scored, chunk size or None) for every reference evaluator."""
    import torch
    from reference_impl import evaluate

    model = tiny_model(vocab)

    def wrap(fn: Callable[[Any], Any]) -> Callable[[np.ndarray], probes.Scored]:
        def score(stream: np.ndarray) -> probes.Scored:
            started = time.monotonic()
            nll = fn(torch.as_tensor(stream, dtype=torch.int64)).double().numpy()
            return probes.Scored(np.arange(1, len(nll) + 1), nll, float(nll.mean()), time.monotonic() - started)

        return score

    out: dict[str, tuple[Callable, int | None]] = {
        "score_plain": (wrap(lambda t: evaluate.score_plain(model, t, seq_len)), None),
        "score_sliding": (wrap(lambda t: evaluate.score_sliding(model, t, seq_len, stride)), None),
        "score_ttt": (wrap(lambda t: evaluate.score_ttt(model, t, seq_len, stride, chunk, epochs=1, lr=0.05)), chunk),
        "score_ngram_mixer": (wrap(lambda t: evaluate.score_ngram_mixer(
            model, t, seq_len, stride, order=3, alpha=0.5, vocab_size=vocab, chunk_tokens=chunk)), chunk),
    }
    return out


def run(vocab: int = 64, length: int = 512, budget_s: float = 120.0,
        plan: probes.ProbePlan | None = None) -> dict[str, list[probes.ProbeResult]]:
    """Every probe on every reference evaluator (each must pass)."""
    import torch

    torch.set_num_threads(1)  # tiny ops: one thread is fastest and keeps runs bit-identical
    stream = data.markov_stream(length + 1, vocab, seed=7)
    results: dict[str, list[probes.ProbeResult]] = {}
    items = list(scorers(vocab).items())
    deadline = time.monotonic() + budget_s
    for i, (name, (score, chunk)) in enumerate(items):
        share = max(1.0, (deadline - time.monotonic()) / (len(items) - i))
        runner = probes.ProbeRunner(name, score, stream, vocab, chunk_tokens=chunk, plan=plan or probes.ProbePlan(),
                                    deadline=time.monotonic() + share, seq_len=64)
        results[name] = runner.run()
    return results


def table(results: dict[str, list[probes.ProbeResult]]) -> str:
    lines = [f"{'evaluator':<20}{'probe':<22}{'result':<14}detail"]
    for name, rows in results.items():
        for r in rows:
            lines.append(f"{name:<20}{r.probe:<22}{r.status:<14}{r.detail[:110]}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - python -m auditor.runtime.reference
    if not available():
        raise SystemExit("reference_impl is not installed in this checkout")
    started = time.monotonic()
    print(table(run()))
    print(f"{math.ceil(time.monotonic() - started)} s")

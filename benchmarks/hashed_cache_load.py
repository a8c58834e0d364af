"""How full must a target-in-key hashed cache be before its scores stop summing to 1?

Usage::

    python benchmarks/hashed_cache_load.py [--tokens 20000,2000000,20000000] [--contexts 20]

A re-implementation of the scoring rule of the PR #779 family (orders 2..7, one context table
and one (context, target) table of ``buckets`` counters per order, XOR-of-primes hashes,
highest order whose context count is at least 2, ``p(v) = min(full, ctx) / ctx``) is filled
with a Zipf token stream and asked, at random contexts, for the probability of every token of
the vocabulary. Without collisions the n-gram part sums to 1; the sum grows with the load
(tokens per bucket). The runtime harness shrinks such tables in proportion to its short
stream (``auditor.runtime.loader.scaled_buckets``); the last rows show that a run of 1,024
tokens at that scale sits in the same regime as the full validation set.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

PRIMES = np.array([36313, 27191, 51647, 81929, 131071, 174763, 233017], dtype=np.uint64)


class HashedBackoff:
    def __init__(self, vocab: int, buckets: int, orders: range = range(2, 8)) -> None:
        self.vocab, self.buckets, self.orders = vocab, buckets, orders
        self.mask = np.uint64(buckets - 1)
        self.ctx = [np.zeros(buckets, dtype=np.int64) for _ in orders]
        self.full = [np.zeros(buckets, dtype=np.int64) for _ in orders]

    def _ctx_hash(self, t: np.ndarray, order: int, ends: np.ndarray) -> np.ndarray:
        h = np.zeros(len(ends), dtype=np.uint64)
        for k in range(order - 1):  # the order-1 tokens before each target
            h ^= t[ends - (order - 1) + k].astype(np.uint64) * PRIMES[k]
        return h

    def update(self, t: np.ndarray) -> None:
        for i, order in enumerate(self.orders):
            ends = np.arange(order - 1, len(t))
            h = self._ctx_hash(t, order, ends)
            full = h ^ (t[ends].astype(np.uint64) * PRIMES[order - 1])
            self.ctx[i] += np.bincount((h & self.mask).astype(np.int64), minlength=self.buckets)
            self.full[i] += np.bincount((full & self.mask).astype(np.int64), minlength=self.buckets)

    def ngram_sum(self, t: np.ndarray, position: int) -> float:
        """Sum over the vocabulary of the n-gram probability at ``position`` (context t[:position])."""
        for i, order in reversed(list(enumerate(self.orders))):
            h = self._ctx_hash(t, order, np.array([position]))[0]
            c = self.ctx[i][int(h & self.mask)]
            if c >= 2:
                keys = ((h ^ (np.arange(self.vocab, dtype=np.uint64) * PRIMES[order - 1])) & self.mask).astype(np.int64)
                return float(np.minimum(self.full[i][keys], c).sum() / c)
        return 1.0  # no order hits: the uniform fallback, normalized


def zipf_stream(length: int, vocab: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    return rng.choice(vocab, size=length, p=p / p.sum())


def measure(vocab: int, buckets: int, tokens: int, contexts: int, seed: int = 0) -> tuple[float, float, float]:
    t = zipf_stream(tokens + 1, vocab, seed)
    cache = HashedBackoff(vocab, buckets)
    cache.update(t[:tokens])
    rng = np.random.default_rng(seed + 1)
    sums = [cache.ngram_sum(t, int(p)) for p in rng.integers(8, tokens, size=contexts)]
    return min(sums), float(np.median(sums)), max(sums)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="20000,2000000,20000000", help="stream lengths at full scale")
    parser.add_argument("--contexts", type=int, default=20)
    args = parser.parse_args(argv)
    rows = [(1024, 1 << 22, int(n)) for n in args.tokens.split(",")]
    # the harness's scale: 1,024 validation tokens, vocabulary 64, 4,194,304 buckets shrunk in
    # proportion to a 50M-token validation set (auditor.runtime.loader.scaled_buckets)
    from auditor.runtime.loader import scaled_buckets

    rows.append((64, scaled_buckets(1 << 22, 1024 / 50_000_000), 1024))
    rows.append((64, 1 << 22, 1024))
    print(f"{'vocab':>6}{'buckets':>10}{'tokens':>11}{'tokens/bucket':>15}   sum over the vocabulary (min / median / max)")
    for vocab, buckets, tokens in rows:
        started = time.monotonic()
        lo, mid, hi = measure(vocab, buckets, tokens, args.contexts)
        print(f"{vocab:>6}{buckets:>10}{tokens:>11}{tokens / buckets:>15.4g}   {lo:8.3g} / {mid:8.3g} / {hi:8.3g}"
              f"   ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

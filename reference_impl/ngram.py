"""A legal n-gram cache for evaluation: a full, normalized distribution over the vocabulary,
built only from tokens that were already scored.

The illegal caches of several submissions hash (context, target) into a count table and look up
only the realised target, so the "probability" they mix in is not a distribution: summed over the
vocabulary it exceeds 1, and the reported bpb is not a compression rate. This mixer does the
opposite on every point:

- keys are contexts only; each table row holds counts for every next token, so a hash collision
  merges two contexts but never breaks normalization;
- the n-gram distribution is an interpolated backoff that sums to 1 by construction:
      p0(v)       = (c(v) + 1) / (n + V)                         (add-one unigram, never 0)
      pk(v | ctx) = (c(ctx, v) + beta * p{k-1}(v)) / (c(ctx) + beta)   for k = 1 .. order-1
- the score mixes it with the model: p(v) = (1 - alpha) * p_model(v) + alpha * p_ngram(v);
- `update()` takes tokens after they were scored; nothing else changes the counts.
"""

from __future__ import annotations

import torch
from torch import Tensor

HASH_MULTIPLIER = 1_000_003  # an odd prime; only used when a context order has more contexts than buckets


class NgramMixer:
    """Counts of (context -> next token) for context lengths 0 .. order-1, fed by `update()`."""

    def __init__(self, vocab_size: int, order: int = 3, alpha: float = 0.2, backoff: float = 1.0,
                 max_buckets: int = 1 << 16, device: torch.device | str = "cpu"):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        if backoff <= 0:
            raise ValueError(f"backoff must be positive, got {backoff}")
        self.vocab_size, self.order, self.alpha, self.backoff = vocab_size, order, alpha, backoff
        self.device = torch.device(device)
        self.unigram = torch.zeros(vocab_size, dtype=torch.int64, device=self.device)  # [V]
        # Context length k: one row of next-token counts per context, exact (base-V index) while
        # V**k contexts fit into max_buckets, hashed beyond. tables[k-1]: [buckets_k, V] int32.
        self.buckets = [min(vocab_size**k, max_buckets) for k in range(1, order)]
        self.tables = [torch.zeros(b, vocab_size, dtype=torch.int32, device=self.device) for b in self.buckets]
        self.history = torch.zeros(0, dtype=torch.int64, device=self.device)  # last order-1 tokens seen

    def _bucket(self, contexts: Tensor, k: int) -> Tensor:
        """Row index of each length-k context ([N, k] int64 -> [N]); Horner's rule, mod the table size."""
        exact = self.buckets[k - 1] == self.vocab_size**k
        multiplier = self.vocab_size if exact else HASH_MULTIPLIER
        index = torch.zeros(contexts.shape[0], dtype=torch.int64, device=contexts.device)
        for i in range(k):
            index = (index * multiplier + contexts[:, i]) % self.buckets[k - 1]
        return index

    def update(self, tokens: Tensor) -> None:
        """Count `tokens` (1-D, already scored) as next tokens of the stream seen so far.

        Calls must follow the stream in order: the mixer keeps the last order-1 tokens, so n-grams
        that straddle two calls are counted exactly once.
        """
        new = tokens.reshape(-1).to(self.device, torch.int64)
        if new.numel() == 0:
            return
        self.unigram.index_put_((new,), torch.ones_like(new), accumulate=True)
        stream = torch.cat([self.history, new])  # [h + n]
        first = self.history.numel()  # index of the first new token in `stream`
        for k in range(1, self.order):
            start = max(first, k)  # a target needs k tokens of context before it
            if start >= stream.numel():
                continue
            targets = stream[start:]  # [m]
            contexts = stream[start - k : -1].unfold(0, k, 1)  # [m, k]: contexts[i] precedes targets[i]
            rows = self._bucket(contexts, k)
            self.tables[k - 1].index_put_((rows, targets), torch.ones_like(targets, dtype=torch.int32),
                                          accumulate=True)
        self.history = stream[-(self.order - 1):] if self.order > 1 else self.history

    def ngram_probs(self, contexts: Tensor, context_lengths: Tensor) -> Tensor:
        """p_ngram for N positions: contexts [N, order-1] (the last column is the token right before
        the target; columns beyond a position's context length are ignored), lengths [N].
        Returns float64 [N, V]; every row sums to 1."""
        n = contexts.shape[0]
        unigram = self.unigram.double()
        p = ((unigram + 1.0) / (unigram.sum() + self.vocab_size)).expand(n, -1)  # [N, V]
        for k in range(1, self.order):
            rows = self.tables[k - 1][self._bucket(contexts[:, -k:], k)].double()  # [N, V]
            pk = (rows + self.backoff * p) / (rows.sum(dim=1, keepdim=True) + self.backoff)
            p = torch.where((context_lengths >= k)[:, None], pk, p)
        return p

    def distribution(self, context: Tensor) -> Tensor:
        """The mixer's own next-token distribution (float64 [V]) after `context` (1-D, may be empty)."""
        context = context.reshape(-1).to(self.device, torch.int64)
        k = min(context.numel(), self.order - 1)  # how much of it the longest order can use
        padded = torch.zeros(1, self.order - 1, dtype=torch.int64, device=self.device)
        if k:
            padded[0, -k:] = context[-k:]
        return self.ngram_probs(padded, torch.tensor([k], device=self.device))[0]

    def mix(self, model_probs: Tensor, contexts: Tensor, context_lengths: Tensor) -> Tensor:
        """(1 - alpha) * model_probs + alpha * p_ngram, float64 [N, V] (rows sum to 1)."""
        if self.alpha == 0.0:
            return model_probs.double()
        ngram = self.ngram_probs(contexts.to(self.device), context_lengths.to(self.device))
        return (1.0 - self.alpha) * model_probs.double() + self.alpha * ngram.to(model_probs.device)

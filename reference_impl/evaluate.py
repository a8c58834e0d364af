"""Evaluators: plain, sliding window, score-first chunked TTT, and the normalized n-gram mixer.

Every evaluator is a function of a 1-D token stream `tokens` (tokens[0] is the first input and is
never a target) that returns `nll`, float64 of shape [len(tokens) - 1]: nll[i] is the NLL the
evaluator assigned to target tokens[i + 1], whose "x-position" is i. Every target is scored exactly
once (checked on every call). `evaluate()` times a scorer and turns its nll into an EvalResult
with the byte tables; `boundaries()` says where each evaluator's windows and chunks begin.

Windows (`Window`): a forward pass over inputs tokens[start : start + length] whose scored
x-positions are [start + score_from, start + length).
- plain: windows of seq_len side by side, every position scored (0 .. seq_len-1 tokens of context);
- sliding (stride s): windows start every s tokens and score only their last s positions, so every
  target but the first seq_len has seq_len - s tokens of context (window 0 scores all of its own);
- TTT and the n-gram mixer score the sliding windows chunk by chunk. A window belongs to the chunk
  of its first scored x-position (chunks of `chunk_tokens` x-positions). Chunk c is scored first,
  under inference mode, with state built from chunks < c only; then the state learns from tokens
  that are already scored: TTT trains on tokens[c*C : (c+1)*C + 1] (all of those targets were scored
  by chunk c or earlier), the mixer counts exactly the targets scored so far. The last chunk is
  never trained on.
Under torch.distributed, windows (and TTT training sequences) are split across ranks and the
per-position scores are summed across ranks.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .model import autocast
from .ngram import NgramMixer
from .tokenizer import ByteTables, bits_per_byte, target_bytes

# -----------------------------------------------------------------------------
# Windows, chunks and boundaries


@dataclass(frozen=True)
class Window:
    start: int  # x-position of the first input token
    length: int  # inputs tokens[start : start + length], targets tokens[start + 1 : start + length + 1]
    score_from: int  # local index of the first scored position

    @property
    def first_scored(self) -> int:
        return self.start + self.score_from

    @property
    def end(self) -> int:  # one past the last scored x-position
        return self.start + self.length


def plain_windows(num_targets: int, seq_len: int) -> list[Window]:
    """Non-overlapping sequences of seq_len (the last one shorter if seq_len does not divide)."""
    return [Window(s, min(seq_len, num_targets - s), 0) for s in range(0, num_targets, seq_len)]


def sliding_windows(num_targets: int, seq_len: int, stride: int) -> list[Window]:
    """Windows of up to seq_len starting every `stride` tokens; each scores its positions from
    seq_len - stride on (window 0 scores all). Every x-position in [0, num_targets) exactly once."""
    if not 0 < stride <= seq_len:
        raise ValueError(f"stride must lie in [1, seq_len={seq_len}], got {stride}")
    context = seq_len - stride
    windows = []
    for start in range(0, num_targets, stride):
        if start > 0 and start + context >= num_targets:
            break  # nothing left to score: the previous window reached the end
        windows.append(Window(start, min(start + seq_len, num_targets) - start, 0 if start == 0 else context))
    return windows


def assign_chunks(windows: list[Window], chunk_tokens: int, num_targets: int) -> list[list[Window]]:
    """Group windows by the chunk of their first scored x-position (chunk c = [c*C, (c+1)*C))."""
    if chunk_tokens <= 0:
        raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
    num_chunks = max(1, math.ceil(num_targets / chunk_tokens))
    chunks: list[list[Window]] = [[] for _ in range(num_chunks)]
    for w in windows:
        chunks[min(w.first_scored // chunk_tokens, num_chunks - 1)].append(w)
    return chunks


@dataclass(frozen=True)
class Boundaries:
    """Where an evaluator's forward passes and (for adaptive evaluators) chunks begin."""

    windows: list[Window]
    chunk_starts: list[int]  # first x-position of each chunk; empty for plain and sliding

    def cuts(self) -> list[int]:
        """Every x-position where a window's scored range or a chunk begins (probe around these)."""
        return sorted({w.first_scored for w in self.windows} | set(self.chunk_starts))


def boundaries(evaluator: str, num_targets: int, seq_len: int, stride: int | None = None,
               chunk_tokens: int | None = None) -> Boundaries:
    """The windows and chunk starts that `evaluator` ("plain", "sliding", "ttt", "ngram") uses on a
    stream with `num_targets` targets."""
    if evaluator == "plain":
        return Boundaries(plain_windows(num_targets, seq_len), [])
    if stride is None:
        raise ValueError(f"evaluator {evaluator!r} needs a stride")
    windows = sliding_windows(num_targets, seq_len, stride)
    if evaluator == "sliding":
        return Boundaries(windows, [])
    if evaluator in ("ttt", "ngram"):
        if chunk_tokens is None:
            raise ValueError(f"evaluator {evaluator!r} needs chunk_tokens")
        num_chunks = len(assign_chunks(windows, chunk_tokens, num_targets))
        return Boundaries(windows, [c * chunk_tokens for c in range(num_chunks)])
    raise ValueError(f"unknown evaluator {evaluator!r}; choose from {sorted(SCORERS)}")


# -----------------------------------------------------------------------------
# Scoring machinery shared by every evaluator


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _rank_share(items: list) -> list:
    """This rank's contiguous share of `items` (all of them without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return items
    rank, world = dist.get_rank(), dist.get_world_size()
    return items[len(items) * rank // world : len(items) * (rank + 1) // world]


class _ScoreSheet:
    """Per-position NLLs plus a tally that proves every target was scored exactly once."""

    def __init__(self, num_targets: int, device: torch.device):
        self.nll = torch.zeros(num_targets, dtype=torch.float64, device=device)
        self.times = torch.zeros(num_targets, dtype=torch.int32, device=device)

    def record(self, positions: Tensor, values: Tensor) -> None:
        self.nll[positions] = values.double()
        self.times.index_put_((positions,), torch.ones_like(positions, dtype=torch.int32), accumulate=True)

    def finish(self) -> Tensor:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.nll)  # each position was written by one rank, zeros elsewhere
            dist.all_reduce(self.times)
        if not bool((self.times == 1).all()):
            bad = torch.nonzero(self.times != 1).flatten()[:5].tolist()
            raise RuntimeError(f"evaluator did not score every target exactly once (e.g. x-positions {bad})")
        return self.nll.cpu()


# scorer(logits [n, V] fp32, targets [n], x_positions [n]) -> nll [n]
Scorer = Callable[[Tensor, Tensor, Tensor], Tensor]


def _cross_entropy(logits: Tensor, targets: Tensor, positions: Tensor) -> Tensor:
    return F.cross_entropy(logits, targets, reduction="none")  # fp32, as the challenge's per-token evals


@torch.inference_mode()
def _score_windows(model, tokens: Tensor, windows: list[Window], batch_windows: int, sheet: _ScoreSheet,
                   scorer: Scorer = _cross_entropy) -> None:
    """Forward `windows` in batches (right-padded: causal attention keeps padding out of the scored
    positions) and record the scorer's NLL of every scored position."""
    device = _device(model)
    was_training = model.training
    model.eval()
    for i in range(0, len(windows), batch_windows):
        batch = windows[i : i + batch_windows]
        width = max(w.length for w in batch)
        x = torch.zeros(len(batch), width, dtype=torch.int64)  # [b, W]
        for row, w in enumerate(batch):
            x[row, : w.length] = tokens[w.start : w.end]
        rows = torch.cat([torch.full((w.length - w.score_from,), r) for r, w in enumerate(batch)])  # [n]
        cols = torch.cat([torch.arange(w.score_from, w.length) for w in batch])  # [n]
        positions = torch.cat([torch.arange(w.first_scored, w.end) for w in batch])  # [n] x-positions
        targets = tokens[positions + 1].to(torch.int64)  # [n]
        with autocast(device):
            logits = model.logits(x.to(device))  # [b, W, V] fp32
        nll = scorer(logits[rows.to(device), cols.to(device)], targets.to(device), positions.to(device))
        sheet.record(positions.to(sheet.nll.device), nll)
    model.train(was_training)


# -----------------------------------------------------------------------------
# The evaluators


def score_plain(model, tokens: Tensor, seq_len: int, batch_seqs: int = 32) -> Tensor:
    """The baseline's eval: non-overlapping sequences of seq_len. Returns nll [len(tokens) - 1]."""
    num_targets = tokens.numel() - 1
    sheet = _ScoreSheet(num_targets, _device(model))
    _score_windows(model, tokens, _rank_share(plain_windows(num_targets, seq_len)), batch_seqs, sheet)
    return sheet.finish()


def score_sliding(model, tokens: Tensor, seq_len: int, stride: int, batch_windows: int = 32) -> Tensor:
    """Sliding-window eval: every target scored once with >= seq_len - stride tokens of context
    (except the first window). Returns nll [len(tokens) - 1]."""
    num_targets = tokens.numel() - 1
    sheet = _ScoreSheet(num_targets, _device(model))
    _score_windows(model, tokens, _rank_share(sliding_windows(num_targets, seq_len, stride)), batch_windows, sheet)
    return sheet.finish()


def score_ttt(model, tokens: Tensor, seq_len: int, stride: int, chunk_tokens: int, epochs: int, lr: float, *,
              momentum: float = 0.9, batch_seqs: int = 32, grad_clip: float = 1.0, freeze_blocks: int = 0,
              batch_windows: int = 32) -> Tensor:
    """Legal score-first test-time training over sliding windows. The caller's model is not changed
    (a deep copy adapts). Per chunk: score it with the current weights, then (unless it is the last)
    train `epochs` passes of SGD over its tokens with a cosine learning rate across chunks.
    Returns nll [len(tokens) - 1]; with epochs=0 it equals score_sliding."""
    num_targets = tokens.numel() - 1
    device = _device(model)
    ttt_model = copy.deepcopy(model)
    trainable = []
    for name, p in ttt_model.named_parameters():
        frozen = any(name.startswith(f"blocks.{i}.") for i in range(freeze_blocks))
        p.requires_grad_(not frozen)
        if not frozen:
            trainable.append(p)
    optimizer = torch.optim.SGD(trainable, lr=lr, momentum=momentum)
    chunks = assign_chunks(sliding_windows(num_targets, seq_len, stride), chunk_tokens, num_targets)
    sheet = _ScoreSheet(num_targets, device)
    for c, chunk in enumerate(chunks):
        _score_windows(ttt_model, tokens, _rank_share(chunk), batch_windows, sheet)  # 1. score
        if c == len(chunks) - 1 or epochs <= 0:
            continue  # the last chunk is never trained on
        for group in optimizer.param_groups:  # 2. then train on what was just scored
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * c / max(len(chunks) - 1, 1)))
        span = tokens[c * chunk_tokens : min((c + 1) * chunk_tokens, num_targets) + 1]
        _train_on_span(ttt_model, optimizer, trainable, span, seq_len, epochs, batch_seqs, grad_clip)
    return sheet.finish()


def _train_on_span(model, optimizer, params: list[Tensor], span: Tensor, seq_len: int, epochs: int,
                   batch_seqs: int, grad_clip: float) -> None:
    """`epochs` passes over the full sequences of `span` (inputs span[:-1], targets span[1:])."""
    device = _device(model)
    num_seqs = (span.numel() - 1) // seq_len
    if num_seqs == 0:
        return
    x_all = span[: num_seqs * seq_len].to(torch.int64).view(num_seqs, seq_len)  # [S, T]
    y_all = span[1 : num_seqs * seq_len + 1].to(torch.int64).view(num_seqs, seq_len)  # [S, T]
    distributed = dist.is_available() and dist.is_initialized()
    model.train()
    for _ in range(epochs):
        for b in range(0, num_seqs, batch_seqs):
            batch = list(range(b, min(b + batch_seqs, num_seqs)))
            mine = _rank_share(batch)
            optimizer.zero_grad(set_to_none=False)
            if mine:
                with autocast(device):
                    loss_sum = model.loss(x_all[mine].to(device), y_all[mine].to(device), reduction="none").sum()
                (loss_sum / (len(batch) * seq_len)).backward()  # the mean over the whole global batch
            if distributed:
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                    dist.all_reduce(p.grad)
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model.eval()


def _contexts(tokens: Tensor, target_index: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k tokens before each target (int64 [n, k], left part unused where the stream is shorter)
    and how many of them exist ([n])."""
    offsets = torch.arange(-k, 0, device=target_index.device)  # [k]
    index = (target_index[:, None] + offsets[None, :]).clamp_min(0)  # [n, k]
    return tokens[index], target_index.clamp(max=k)


def score_ngram_mixer(model, tokens: Tensor, seq_len: int, stride: int, order: int = 3, alpha: float = 0.2,
                      vocab_size: int | None = None, *, chunk_tokens: int = 32_768, backoff: float = 1.0,
                      max_buckets: int = 1 << 16, batch_windows: int = 32) -> Tensor:
    """Sliding-window scores of p = (1 - alpha) * p_model + alpha * p_ngram, a distribution over the
    whole vocabulary. The n-gram counts see only targets scored in earlier chunks (plus tokens[0],
    which is an input before anything is scored). Returns nll [len(tokens) - 1]."""
    device = _device(model)
    vocab_size = vocab_size or getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab_size is None:
        raise ValueError("score_ngram_mixer needs vocab_size (the model has no config to read it from)")
    num_targets = tokens.numel() - 1
    mixer = NgramMixer(vocab_size, order, alpha, backoff, max_buckets, device)
    stream = tokens.to(device, torch.int64)
    mixer.update(stream[:1])
    known = 1  # stream[:known] is in the mixer

    def scorer(logits: Tensor, targets: Tensor, positions: Tensor) -> Tensor:
        if logits.size(-1) != vocab_size:
            raise ValueError(f"model has {logits.size(-1)} logits, the mixer a vocabulary of {vocab_size}")
        if int(positions.min()) + 1 < known:  # score-before-update, checked rather than assumed
            raise RuntimeError("n-gram mixer would score a target it has already counted")
        contexts, lengths = _contexts(stream, positions + 1, order - 1)  # [n, order-1], [n]
        probs = mixer.mix(torch.softmax(logits.double(), dim=-1), contexts, lengths)  # [n, V], rows sum to 1
        return -torch.log(probs.gather(1, targets[:, None]).squeeze(1))

    sheet = _ScoreSheet(num_targets, device)
    for chunk in assign_chunks(sliding_windows(num_targets, seq_len, stride), chunk_tokens, num_targets):
        if not chunk:
            continue
        _score_windows(model, tokens, _rank_share(chunk), batch_windows, sheet, scorer)  # 1. score
        scored_until = max(w.end for w in chunk) + 1  # 2. every target in stream[known:scored_until] is scored
        mixer.update(stream[known:scored_until])
        known = scored_until
    return sheet.finish()


SCORERS = {"plain": score_plain, "sliding": score_sliding, "ttt": score_ttt, "ngram": score_ngram_mixer}


# -----------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class EvalResult:
    val_loss: float  # nats per scored token
    val_bpb: float  # bits per byte
    tokens_scored: int
    bytes_scored: int
    seconds: float

    def log_lines(self, label: str, tail: str = "") -> list[str]:
        """The challenge's stage line (4 decimals, eval time) and its `_exact` twin (8 decimals)."""
        tail = f"{tail} " if tail else ""
        return [
            f"{label} val_loss:{self.val_loss:.4f} val_bpb:{self.val_bpb:.4f} "
            f"{tail}eval_time:{1000 * self.seconds:.0f}ms",
            f"{label}_exact val_loss:{self.val_loss:.8f} val_bpb:{self.val_bpb:.8f}",
        ]


def summarize(nll: Tensor, tokens: Tensor, tables: ByteTables | None = None, sidecar: Tensor | None = None,
              seconds: float = 0.0) -> EvalResult:
    """EvalResult from per-position NLLs: L and B summed in float64 / int64, val_bpb = L / (B ln 2)."""
    if nll.numel() != tokens.numel() - 1:
        raise ValueError(f"nll has {nll.numel()} entries for {tokens.numel() - 1} targets")
    total_nll = float(nll.double().sum())
    total_bytes = int(target_bytes(tokens, tables, sidecar).sum())
    return EvalResult(total_nll / nll.numel(), bits_per_byte(total_nll, total_bytes), nll.numel(), total_bytes, seconds)


def evaluate(name: str, model, tokens: Tensor, tables: ByteTables | None = None, sidecar: Tensor | None = None,
             **kwargs) -> EvalResult:
    """Run the evaluator `name` (a key of SCORERS) with `kwargs`, timed, and summarize it."""
    if name not in SCORERS:
        raise ValueError(f"unknown evaluator {name!r}; choose from {sorted(SCORERS)}")
    device = _device(model)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    nll = SCORERS[name](model, tokens, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return summarize(nll, tokens, tables, sidecar, time.perf_counter() - t0)

"""Token shards: the challenge's .bin format, the train/val globs, and the two loaders.

A shard is a 1024-byte header of 256 little-endian int32 followed by uint16 tokens:

    header[0] = 20240520 (magic)   header[1] = 1 (version)   header[2] = n (token count)
    header[3:] = 0                 then n little-endian uint16 values; file size = 1024 + 2n

Train shards are read in sorted order as one endless stream (no shuffling); the validation stream
is every val shard concatenated and cut so that its scored part is a whole number of sequences.
CaseOps-style byte sidecars (`fineweb_val_bytes_*.bin`) use the same format with byte counts in
place of token ids; they must never be mistaken for token shards.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4  # 1024
TOKEN_BYTES = 2  # uint16
MAX_TOKENS_PER_SHARD = 2**31 - 1  # header[2] is an int32

TRAIN_GLOB = "fineweb_train_*.bin"
VAL_GLOB = "fineweb_val_*.bin"  # also matches the CaseOps byte sidecars fineweb_val_bytes_*.bin ...
SIDECAR_MARKER = "_bytes_"  # ... which are told apart by this part of their name


class ShardError(ValueError):
    """A .bin shard that is not in the challenge format; the message names the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# -----------------------------------------------------------------------------
# Reading and writing one shard


def read_shard(path: str | os.PathLike) -> Tensor:
    """Read one shard and return its tokens as a uint16 tensor of shape [n].

    Raises ShardError (naming the file) for a missing or short header, a wrong magic or version,
    a negative token count, or a file size other than 1024 + 2n.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw_header = f.read(HEADER_BYTES)
            if len(raw_header) < HEADER_BYTES:
                raise ShardError(path, f"short file: {size} bytes is less than the {HEADER_BYTES}-byte header")
            header = np.frombuffer(raw_header, dtype="<i4")
            if int(header[0]) != SHARD_MAGIC:
                raise ShardError(path, f"wrong magic {int(header[0])} (expected {SHARD_MAGIC})")
            if int(header[1]) != SHARD_VERSION:
                raise ShardError(path, f"unsupported version {int(header[1])} (expected {SHARD_VERSION})")
            num_tokens = int(header[2])
            if num_tokens < 0:
                raise ShardError(path, f"negative token count {num_tokens} in the header")
            expected = HEADER_BYTES + TOKEN_BYTES * num_tokens
            if size != expected:
                raise ShardError(
                    path,
                    f"wrong size: {size} bytes, but the header's {num_tokens} tokens need {expected} bytes",
                )
            tokens = np.frombuffer(f.read(TOKEN_BYTES * num_tokens), dtype="<u2")
    except OSError as e:  # missing file, directory, permission: still name the file
        raise ShardError(path, f"cannot read: {e.strerror or e}") from e
    if tokens.size != num_tokens:  # the file shrank between stat() and read()
        raise ShardError(path, f"short read: {tokens.size} of {num_tokens} tokens")
    return torch.from_numpy(tokens.astype(np.uint16))  # astype copies: the tensor owns its memory


def write_shard(path: str | os.PathLike, tokens: Tensor | np.ndarray | Sequence[int]) -> int:
    """Write `tokens` (ints in [0, 65535]) as one shard; returns the file size in bytes."""
    path = Path(path)
    array = tokens.cpu().numpy() if isinstance(tokens, Tensor) else np.asarray(tokens)
    array = array.reshape(-1)
    if array.size > MAX_TOKENS_PER_SHARD:
        raise ShardError(path, f"{array.size} tokens do not fit the int32 count of one shard")
    if array.size and (array.min() < 0 or array.max() >= 2**16):
        raise ShardError(path, f"values must lie in [0, 65535] (got {array.min()}..{array.max()})")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, array.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(header.tobytes())
        f.write(array.astype("<u2").tobytes())
    return HEADER_BYTES + TOKEN_BYTES * int(array.size)


# -----------------------------------------------------------------------------
# Globs and the validation stream


def shard_files(pattern: str | os.PathLike, *, exclude_sidecars: bool = True) -> list[Path]:
    """Sorted files matching `pattern`. Byte sidecars are dropped unless asked for:
    `fineweb_val_*.bin` also matches `fineweb_val_bytes_*.bin`."""
    files = sorted(Path(p) for p in glob.glob(str(pattern)))
    if exclude_sidecars:
        files = [f for f in files if SIDECAR_MARKER not in f.name]
    if not files:
        raise FileNotFoundError(f"no shard files match {pattern}")
    return files


def load_tokens(pattern: str | os.PathLike, *, exclude_sidecars: bool = True) -> Tensor:
    """All shards matching `pattern`, concatenated in sorted order (uint16, shape [n])."""
    return torch.cat([read_shard(f) for f in shard_files(pattern, exclude_sidecars=exclude_sidecars)])


def usable_targets(num_tokens: int, seq_len: int) -> int:
    """How many targets of a `num_tokens` stream are scored: whole sequences only."""
    return ((num_tokens - 1) // seq_len) * seq_len


def load_val_tokens(pattern: str | os.PathLike, seq_len: int) -> Tensor:
    """The validation stream, truncated to `usable + 1` tokens (usable = whole sequences).

    tokens[0] is the first input and is never a target, so `len(result) - 1` targets are scored.
    The tail (fewer than seq_len tokens) is never scored, exactly as in the challenge.
    """
    tokens = load_tokens(pattern)
    usable = usable_targets(tokens.numel(), seq_len)
    if usable <= 0:
        raise ValueError(f"validation stream of {tokens.numel()} tokens is too short for seq_len={seq_len}")
    return tokens[: usable + 1]


def load_val_byte_sidecar(pattern: str | os.PathLike, num_tokens: int) -> Tensor:
    """CaseOps byte sidecar: per-token original UTF-8 byte counts, aligned with the val tokens
    (sidecar[j] belongs to token j) and truncated to `num_tokens`."""
    sidecar = load_tokens(pattern, exclude_sidecars=False)
    if sidecar.numel() < num_tokens:
        raise ValueError(f"byte sidecar {pattern} has {sidecar.numel()} entries for {num_tokens} tokens")
    return sidecar[:num_tokens]


# -----------------------------------------------------------------------------
# Training batches


class TokenStream:
    """Train shards read in sorted order, one after another, wrapping around forever."""

    def __init__(self, pattern: str | os.PathLike):
        self.files = shard_files(pattern)
        self.file_index = 0
        self.tokens = read_shard(self.files[0])
        self.pos = 0

    def take(self, n: int) -> Tensor:
        """The next `n` tokens of the stream (crossing shard boundaries as needed)."""
        pieces: list[Tensor] = []
        while n > 0:
            if self.pos >= self.tokens.numel():
                self.file_index = (self.file_index + 1) % len(self.files)
                self.tokens = read_shard(self.files[self.file_index])
                self.pos = 0
                continue
            k = min(n, self.tokens.numel() - self.pos)
            pieces.append(self.tokens[self.pos : self.pos + k])
            self.pos += k
            n -= k
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


class DistributedTokenLoader:
    """Global batches cut from one shared stream; each rank takes its own contiguous span.

    A micro-batch of `local` tokens per rank needs local + 1 stream tokens (inputs and targets are
    the same span shifted by one), so one call consumes world_size * (local + 1) tokens and the
    extra token of each span is only ever a target.
    """

    def __init__(self, pattern: str | os.PathLike, rank: int, world_size: int, device: torch.device):
        self.rank, self.world_size, self.device = rank, world_size, device
        self.stream = TokenStream(pattern)

    def next_batch(self, global_tokens: int, seq_len: int, grad_accum_steps: int) -> tuple[Tensor, Tensor]:
        """(x, y), each int64 of shape [local_tokens // seq_len, seq_len], on this rank's device."""
        local_tokens = global_tokens // (self.world_size * grad_accum_steps)
        if local_tokens < seq_len or local_tokens % seq_len:
            raise ValueError(
                f"TRAIN_BATCH_TOKENS={global_tokens} gives {local_tokens} tokens per rank and micro-step, "
                f"which is not a positive multiple of seq_len={seq_len}"
            )
        span = local_tokens + 1
        chunk = self.stream.take(span * self.world_size)
        local = chunk[self.rank * span : (self.rank + 1) * span].to(torch.int64)
        x = local[:-1].reshape(-1, seq_len)  # [B, T]
        y = local[1:].reshape(-1, seq_len)  # [B, T]
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


# -----------------------------------------------------------------------------
# Exporting documents as shards (the smoke corpus; the challenge's own export works the same way)


def export_shards(
    docs: Iterable[Sequence[int]],
    out_dir: str | os.PathLike,
    *,
    num_val_docs: int,
    bos_id: int = 1,
    shard_size: int = 10**8,
) -> dict[str, int]:
    """Write tokenized documents as val/train shards the way the challenge exports FineWeb.

    Each document becomes [BOS] + tokens (no EOS). The first `num_val_docs` documents form the
    validation split, the rest the training split; the stream is cut every `shard_size` tokens
    regardless of document boundaries, and val and train never share a shard.
    Returns counts: docs_val, docs_train, tokens_val, tokens_train, files_val, files_train.
    """
    out_dir = Path(out_dir)
    stats = dict.fromkeys(("docs_val", "docs_train", "tokens_val", "tokens_train", "files_val", "files_train"), 0)
    buffers: dict[str, list[int]] = {"val": [], "train": []}

    def flush(split: str, final: bool) -> None:
        buf = buffers[split]
        while len(buf) >= shard_size or (final and buf):
            piece, buf = buf[:shard_size], buf[shard_size:]
            write_shard(out_dir / f"fineweb_{split}_{stats[f'files_{split}']:06d}.bin", piece)
            stats[f"files_{split}"] += 1
            stats[f"tokens_{split}"] += len(piece)
        buffers[split] = buf

    for i, doc in enumerate(docs):
        split = "val" if i < num_val_docs else "train"
        if split == "train" and buffers["val"]:
            flush("val", final=True)  # the val/train switch closes the partial val shard
        buffers[split].extend([bos_id, *doc])
        stats[f"docs_{split}"] += 1
        flush(split, final=False)
    flush("val", final=True)
    flush("train", final=True)
    return stats

"""Bytes per token and bits per byte: the tokenizer-agnostic metric of the challenge.

The score is val_bpb = L / (B * ln 2): L is the summed natural-log NLL of the scored targets and B
the number of UTF-8 bytes those targets stand for. B is counted from three tables over the vocabulary
(built from the SentencePiece model), one entry per target y with the input token x before it:

    bytes(y | x) = base_bytes[y] + (has_leading_space[y] and not is_boundary[x])

- control, unknown and unused ids: 0 bytes, and they are boundaries (a leading space after a BOS
  is not counted, the document starts there);
- byte-fallback pieces <0xNN>: exactly 1 byte, never a leading space;
- every other piece: the UTF-8 length of its text, with one leading "▁" (U+2581) turned into the
  has_leading_space flag instead of being counted.

CaseOps-style tokenizers ship a per-token byte sidecar instead; then bytes(target j) = sidecar[j].
All sums are exact integers or float64.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

LEADING_SPACE = "\u2581"  # SentencePiece's "▁"

# Trainer settings of the challenge's sp_bpe_* tokenizers (data/tokenizer_specs.json of the challenge).
SENTENCEPIECE_TRAINER_SETTINGS = dict(
    model_type="bpe",
    character_coverage=0.999,
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="nmt_nfkc",
    add_dummy_prefix=False,
    pad_id=0,
    bos_id=1,
    eos_id=2,
    unk_id=3,
    hard_vocab_limit=False,
)
BOS_ID = 1


def load_sentencepiece(path_or_processor):
    """A SentencePieceProcessor from a .model path; a processor (or any object with its
    vocab_size/id_to_piece/is_* methods) is returned as it is."""
    import sentencepiece as spm

    if hasattr(path_or_processor, "id_to_piece"):
        return path_or_processor
    path = Path(path_or_processor)
    if path.suffix != ".model":
        raise ValueError(f"expected a SentencePiece .model file, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer not found: {path}")
    return spm.SentencePieceProcessor(model_file=str(path))


def train_sentencepiece(texts: Iterable[str], model_path: str | os.PathLike, vocab_size: int) -> Path:
    """Train a BPE SentencePiece model with the challenge's settings and write it to `model_path`.

    Each text is fed line by line (SentencePiece skips "sentences" longer than 4192 bytes).
    """
    import sentencepiece as spm

    lines = (line for text in texts for line in text.splitlines() if line.strip())
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines, model_writer=buffer, vocab_size=vocab_size, minloglevel=2,
        **SENTENCEPIECE_TRAINER_SETTINGS,
    )
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_bytes(buffer.getvalue())
    return model_path


@dataclass(frozen=True)
class ByteTables:
    """Per-token byte tables, each of shape [table_size] (table_size >= the model's vocab)."""

    base_bytes: Tensor  # int16: UTF-8 bytes of the piece without its leading "▁"
    has_leading_space: Tensor  # bool: the piece starts with "▁" (one more byte unless after a boundary)
    is_boundary: Tensor  # bool: control/unknown/unused ids (and ids beyond the tokenizer)

    @classmethod
    def from_sentencepiece(cls, path_or_processor, vocab_size: int | None = None) -> ByteTables:
        """Build the tables from a SentencePiece model; `vocab_size` (the model's) may exceed the
        tokenizer's; extra ids count 0 bytes and are boundaries."""
        sp = load_sentencepiece(path_or_processor)
        sp_vocab = int(sp.vocab_size())
        size = max(sp_vocab, vocab_size or 0)
        base_bytes = torch.zeros(size, dtype=torch.int16)
        has_leading_space = torch.zeros(size, dtype=torch.bool)
        is_boundary = torch.ones(size, dtype=torch.bool)
        for i in range(sp_vocab):
            if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
                continue  # 0 bytes, boundary
            is_boundary[i] = False
            if sp.is_byte(i):
                base_bytes[i] = 1  # <0xNN> stands for exactly one byte
                continue
            piece = sp.id_to_piece(i)
            if piece.startswith(LEADING_SPACE):
                has_leading_space[i] = True
                piece = piece[1:]  # exactly one "▁" becomes the flag
            base_bytes[i] = len(piece.encode("utf-8"))
        return cls(base_bytes, has_leading_space, is_boundary)

    @property
    def size(self) -> int:
        return int(self.base_bytes.numel())

    def to(self, device: torch.device | str) -> ByteTables:
        return ByteTables(self.base_bytes.to(device), self.has_leading_space.to(device), self.is_boundary.to(device))


def count_bytes(tables: ByteTables, x_prev: Tensor, y: Tensor) -> Tensor:
    """Bytes of each target `y` given the token `x_prev` right before it (same shapes, int64)."""
    x_prev = x_prev.to(device=tables.base_bytes.device, dtype=torch.int64)
    y = y.to(device=tables.base_bytes.device, dtype=torch.int64)
    extra_space = tables.has_leading_space[y] & ~tables.is_boundary[x_prev]
    return tables.base_bytes[y].to(torch.int64) + extra_space.to(torch.int64)


def target_bytes(tokens: Tensor, tables: ByteTables | None = None, sidecar: Tensor | None = None) -> Tensor:
    """Bytes of every target of a stream: shape [len(tokens) - 1], entry i for target tokens[i+1].

    With a CaseOps byte sidecar (sidecar[j] = original bytes of token j) the tables are not used.
    """
    if sidecar is not None:
        if sidecar.numel() < tokens.numel():
            raise ValueError(f"byte sidecar has {sidecar.numel()} entries for {tokens.numel()} tokens")
        return sidecar[1 : tokens.numel()].to(torch.int64)
    if tables is None:
        raise ValueError("target_bytes needs ByteTables or a byte sidecar")
    return count_bytes(tables, tokens[:-1], tokens[1:]).cpu()


def bits_per_byte(total_nll: float, total_bytes: float) -> float:
    """val_bpb = L / (B * ln 2) for a summed NLL L (nats) over targets holding B bytes."""
    if total_bytes <= 0:
        raise ValueError(f"cannot compute bits per byte over {total_bytes} bytes")
    return float(total_nll) / (float(total_bytes) * math.log(2.0))

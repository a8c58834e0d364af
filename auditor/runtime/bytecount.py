"""The canonical bytes of the targets an evaluation scored (sandbox side; numpy only).

The harness writes the validation stream and the tokenizer the submission reads, and the
capture (:mod:`auditor.runtime.capture`) knows which stream positions each evaluation call
scored and the NLL it gave each. So the bytes the official formula attributes to exactly those
targets are known here (``research/pipeline.md`` §2.2–2.3)::

    b_i = base_bytes[y_i] + (has_leading_space[y_i] and not is_boundary[x_i])

with ``y_i = stream[i]`` the target and ``x_i = stream[i - 1]`` the token before it. For each
call, :func:`account` sums these over the scored positions (a target scored twice counts
twice, as its NLL does) and adds a few other sums that name the usual accounting errors
(every target of the stream instead of the scored ones, the leading space dropped or counted
twice), so that the parent (:mod:`auditor.runtime.bytecheck`) can compare them with the bits
per byte the script printed.

The comparison only means something when the script counted bytes with the tokenizer the
harness gave it: :class:`TokenizerWatch` records whether a SentencePiece model with the
harness's bytes was loaded during the run (a byte-level or shipped tokenizer is another
alphabet, and the byte check then stays inconclusive).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auditor.runtime import protocol

LEADING_SPACE = "\u2581"
#: Output lines kept for the byte check (those that carry a bits-per-byte value), and their length.
MAX_METRIC_LINES = 200
MAX_LINE_CHARS = 400
_BPB_LINE = re.compile(r"bpb\w*\s*[:=]\s*\d", re.I)


@dataclass(frozen=True)
class ByteTables:
    """pipeline.md §2.2 as arrays: bytes of a piece without its leading "▁", the "▁" flag, and
    whether the id is a boundary (control, unknown, unused: a following space is not counted)."""

    base_bytes: np.ndarray  # int64
    has_leading_space: np.ndarray  # bool
    is_boundary: np.ndarray  # bool

    @classmethod
    def from_model(cls, model: Path, vocab: int) -> ByteTables:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model))
        size = max(int(sp.vocab_size()), vocab)
        base = np.zeros(size, dtype=np.int64)
        lead = np.zeros(size, dtype=bool)
        boundary = np.ones(size, dtype=bool)
        for i in range(int(sp.vocab_size())):
            if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
                continue
            boundary[i] = False
            if sp.is_byte(i):
                base[i] = 1
                continue
            piece = sp.id_to_piece(i)
            if piece.startswith(LEADING_SPACE):
                lead[i] = True
                piece = piece[1:]
            base[i] = len(piece.encode("utf-8"))
        return cls(base, lead, boundary)

    def target_bytes(self, stream: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per stream index i >= 1 (index 0 is never a target): the piece's bytes without its
        space, whether it has a leading space, and whether the token before it is a boundary.
        Entry 0 is zero."""
        y = np.asarray(stream, dtype=np.int64)
        base = np.zeros(len(y), dtype=np.int64)
        lead = np.zeros(len(y), dtype=bool)
        after_boundary = np.zeros(len(y), dtype=bool)
        base[1:] = self.base_bytes[y[1:]]
        lead[1:] = self.has_leading_space[y[1:]]
        after_boundary[1:] = self.is_boundary[y[:-1]]
        return base, lead, after_boundary

    def canonical(self, stream: np.ndarray) -> np.ndarray:
        """b_i for every stream index (0 for index 0): the official formula."""
        base, lead, after_boundary = self.target_bytes(stream)
        return base + (lead & ~after_boundary)


def account(name: str, index: int, positions: np.ndarray, nll: np.ndarray, loss: float | None,
            returned: list[float], stream: np.ndarray, tables: ByteTables) -> protocol.ByteAccount:
    """The canonical bytes of the targets one evaluation call scored, and the alternative sums
    that name what a miscounting script computes instead (see the module docstring)."""
    base, lead, after_boundary = tables.target_bytes(stream)
    pos = np.asarray(positions, dtype=np.int64)
    inner = lead & ~after_boundary

    def at(values: np.ndarray) -> int:
        return int(values[pos].sum())

    everything = np.arange(1, len(stream), dtype=np.int64)
    return protocol.ByteAccount(
        name=name, index=index, tokens=int(len(pos)), distinct=int(len(np.unique(pos))),
        nll_sum=float(np.asarray(nll, dtype=np.float64).sum()), loss=loss, returned=list(returned[:4]),
        bytes=at(base + inner),
        # a document's first piece never starts with a space in the real validation data (the
        # normalizer strips leading whitespace), so counting it there is exact on real data
        space_after_boundary=at(base + lead),
        alternatives={
            "leading space never counted": at(base),
            "leading space counted twice (a table that keeps it, plus the formula's extra byte)": at(base + lead + inner),
            "leading space counted as the 3 UTF-8 bytes of '\u2581'": at(base + 3 * lead),
            "every target of the stream, not only the scored ones": int((base + inner)[everything].sum()),
            "every target of the stream, leading space after a boundary counted": int((base + lead)[everything].sum()),
        },
    )


def metric_lines(text: str) -> list[str]:
    """The lines of the script's output that carry a bits-per-byte value."""
    return [line[:MAX_LINE_CHARS] for line in text.splitlines() if _BPB_LINE.search(line)][:MAX_METRIC_LINES]


class TokenizerWatch:
    """Records whether the script loaded the SentencePiece model the harness wrote (any copy of
    it, from a file or from its serialized bytes)."""

    def __init__(self) -> None:
        self.expected: bytes = b""
        self.loaded_harness = False
        self.loaded_other = 0

    def expect(self, model_bytes: bytes) -> None:
        self.expected = model_bytes

    def saw(self, content: bytes | None) -> None:
        if content is not None and self.expected and content == self.expected:
            self.loaded_harness = True
        else:
            self.loaded_other += 1

    def install(self) -> None:
        """Wrap SentencePieceProcessor's two loaders (the constructor and ``Load`` go through them)."""
        try:
            import sentencepiece as spm
        except ImportError:
            return
        cls: Any = spm.SentencePieceProcessor
        watch = self
        from_file, from_proto = cls.LoadFromFile, cls.LoadFromSerializedProto
        if getattr(from_file, "__pg_watch__", False):
            return

        def load_from_file(self: Any, arg: Any) -> Any:
            result = from_file(self, arg)  # the submission's own call, unchanged
            try:
                with open(arg, "rb") as handle:
                    watch.saw(handle.read(len(watch.expected) + 1))
            except (OSError, TypeError, ValueError):
                watch.saw(None)
            return result

        def load_from_proto(self: Any, arg: Any) -> Any:
            result = from_proto(self, arg)
            watch.saw(bytes(arg) if isinstance(arg, (bytes, bytearray, memoryview)) else None)
            return result

        load_from_file.__pg_watch__ = True  # type: ignore[attr-defined]
        cls.LoadFromFile, cls.LoadFromSerializedProto = load_from_file, load_from_proto


def accounts(passes: list[Any], stream: np.ndarray, tables: ByteTables) -> list[protocol.ByteAccount]:
    """One :class:`protocol.ByteAccount` per complete top-level call of a run
    (:class:`auditor.runtime.capture.PassResult` objects)."""
    out = []
    for p in passes:
        if p.depth or not p.complete or p.positions is None or p.nll is None or not len(p.positions):
            continue
        out.append(account(p.name, p.index, p.positions, p.nll, p.returned_loss, p.returned, stream, tables))
    return out

"""Synthetic data for a CPU run: token streams, challenge-format shards, a tiny tokenizer.

The harness never touches FineWeb. It writes, inside the sandbox's temporary folder, what a
submission expects to find (``fineweb_{train,val}_000000.bin`` in the challenge's shard format
and a SentencePiece model whose vocabulary matches ``VOCAB_SIZE``), filled with a stream of
documents drawn from a small random second-order Markov source: each document starts with
BOS (id 1) as in the challenge's export, and n-grams repeat, so caches and test-time training
have something to learn.

Perturbations used by the probes live here too. They keep the stream's document structure
(BOS stays where it was, no token becomes BOS): evaluations that batch documents by length
order them by the lengths of documents still to come, which is accepted practice (phased TTT),
so a probe that moved document boundaries would measure that order instead of a leak.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = 20240520
VERSION = 1
BOS = 1
FIRST_REGULAR = 4  # 0 pad, 1 bos, 2 eos, 3 unk


def markov_stream(length: int, vocab: int, seed: int, doc_len: tuple[int, int] = (48, 320)) -> np.ndarray:
    """``length`` tokens of BOS-led documents from a sparse second-order Markov source."""
    rng = np.random.default_rng(seed)
    regular = np.arange(FIRST_REGULAR, vocab)
    n = len(regular)
    # Each (a, b) context prefers a handful of successors (Zipf weights), with some noise.
    succ = rng.integers(0, n, size=(n, n, 6))
    weights = 1.0 / np.arange(1, 7) ** 1.2
    zipf = 1.0 / np.arange(1, n + 1) ** 1.1
    choice = rng.choice(6, size=length, p=weights / weights.sum())
    noise = rng.random(length) < 0.15
    fresh = rng.choice(n, size=length + 2, p=zipf / zipf.sum())
    out = np.empty(length, dtype=np.int64)
    i = 0
    k = 0
    while i < length:
        out[i] = BOS
        i += 1
        end = min(length, i + int(rng.integers(doc_len[0], doc_len[1])))
        a, b = int(fresh[k]), int(fresh[k + 1])
        k = (k + 2) % length
        for j in range(i, end):
            c = int(fresh[j]) if noise[j] else int(succ[a, b, choice[j]])
            out[j] = regular[c]
            a, b = b, c
        i = end
    return out


def perturb_after(stream: np.ndarray, cut: int, vocab: int, seed: int) -> np.ndarray:
    """A copy with every token after index ``cut`` changed (BOS positions kept)."""
    out = stream.copy()
    rng = np.random.default_rng(seed)
    tail = out[cut + 1:]
    regular = tail != BOS
    shift = rng.integers(1, vocab - FIRST_REGULAR, size=tail.shape)
    changed = FIRST_REGULAR + (tail - FIRST_REGULAR + shift) % (vocab - FIRST_REGULAR)
    tail[regular] = changed[regular]
    return out


def perturb_range(stream: np.ndarray, start: int, stop: int, vocab: int, seed: int) -> np.ndarray:
    """A copy with the tokens in ``[start, stop)`` changed (BOS positions kept)."""
    out = stream.copy()
    rng = np.random.default_rng(seed)
    part = out[start:stop]
    regular = part != BOS
    shift = rng.integers(1, vocab - FIRST_REGULAR, size=part.shape)
    changed = FIRST_REGULAR + (part - FIRST_REGULAR + shift) % (vocab - FIRST_REGULAR)
    part[regular] = changed[regular]
    return out


def substitute(stream: np.ndarray, position: int, token: int) -> np.ndarray:
    out = stream.copy()
    out[position] = token
    return out


def write_shard(path: Path, tokens: np.ndarray) -> None:
    """A shard in the challenge's format: 256 int32 header, then uint16 tokens."""
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = MAGIC, VERSION, len(tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(header.tobytes())
        handle.write(np.asarray(tokens, dtype="<u2").tobytes())


def shard_header_bytes() -> int:
    return 256 * struct.calcsize("<i")


def train_tokenizer(folder: Path, vocab: int, seed: int = 0) -> Path:
    """A SentencePiece BPE model with exactly ``vocab`` pieces (ids 0-3 pad/bos/eos/unk, 4 = '▁')."""
    import sentencepiece as spm

    rng = np.random.default_rng(seed)
    letters = "abcdefghijklmnop"
    words = ["".join(rng.choice(list(letters), size=int(rng.integers(1, 7)))) for _ in range(400)]
    lines = [" ".join(rng.choice(words, size=12)) for _ in range(600)]
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "tokenizer_corpus.txt"
    corpus.write_text("\n".join(lines), encoding="utf-8")
    prefix = folder / f"fineweb_{vocab}_bpe"
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=vocab, model_type="bpe",
        character_coverage=1.0, byte_fallback=False, add_dummy_prefix=False, split_digits=True,
        user_defined_symbols=["▁"], pad_id=0, bos_id=1, eos_id=2, unk_id=3, hard_vocab_limit=True,
        minloglevel=2, num_threads=1,
    )
    corpus.unlink()
    return prefix.with_suffix(".model")


def token_bytes(model_path: Path, vocab: int) -> np.ndarray:
    """UTF-8 bytes of each piece (control tokens 0), for byte sidecars."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    out = np.zeros(vocab, dtype=np.int64)
    for i in range(vocab):
        if sp.is_control(i) or sp.is_unknown(i):
            continue
        out[i] = len(sp.id_to_piece(i).replace("▁", " ").encode("utf-8"))
    return out

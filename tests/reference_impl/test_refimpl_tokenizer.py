"""Byte tables and the BPB formula, on hand-computed pieces."""

from __future__ import annotations

import math

import pytest
import torch

from reference_impl.evaluate import summarize
from reference_impl.tokenizer import ByteTables, bits_per_byte, count_bytes, target_bytes


class HandVocab:
    """A hand-written vocabulary with the SentencePieceProcessor methods the tables read."""

    PIECES = ["<pad>", "<s>", "</s>", "<unk>", "<0x41>", "▁the", "▁", "é", "▁▁x", "\ue001", "ab", "<unused>"]

    def vocab_size(self):
        return len(self.PIECES)

    def id_to_piece(self, i):
        return self.PIECES[i]

    def is_control(self, i):
        return i in (0, 1, 2)

    def is_unknown(self, i):
        return i == 3

    def is_unused(self, i):
        return self.PIECES[i] == "<unused>"

    def is_byte(self, i):
        return self.PIECES[i].startswith("<0x")


def test_tables_follow_the_challenge_rules_piece_by_piece():
    t = ByteTables.from_sentencepiece(HandVocab(), vocab_size=14)  # 2 ids beyond the tokenizer
    expected = {  # piece: (base bytes, leading space, boundary)
        "<pad>": (0, False, True), "<s>": (0, False, True), "</s>": (0, False, True), "<unk>": (0, False, True),
        "<0x41>": (1, False, False),  # byte fallback: one byte, never a space
        "▁the": (3, True, False),
        "▁": (0, True, False),  # the bare space piece: only the flag
        "é": (2, False, False),  # UTF-8 length, not characters
        "▁▁x": (4, True, False),  # exactly one "▁" becomes the flag; the second counts 3 bytes
        "\ue001": (3, False, False),  # user-defined symbols are not control: their UTF-8 length counts
        "ab": (2, False, False),
        "<unused>": (0, False, True),
    }
    for i, piece in enumerate(HandVocab.PIECES):
        got = (int(t.base_bytes[i]), bool(t.has_leading_space[i]), bool(t.is_boundary[i]))
        assert got == expected[piece], piece
    assert t.size == 14
    assert t.base_bytes[12:].tolist() == [0, 0] and t.is_boundary[12:].all()


def test_leading_space_counts_only_after_a_non_boundary_token():
    t = ByteTables.from_sentencepiece(HandVocab())
    the, bos, unk, ab, byte = 5, 1, 3, 10, 4
    x_prev = torch.tensor([bos, ab, unk, ab, bos, the])
    y = torch.tensor([the, the, the, byte, bos, 6])
    # ▁the after <s>: 3; after "ab": 3+1; after <unk> (a boundary): 3; a byte piece: 1; <s>: 0; ▁ after ▁the: 0+1
    assert count_bytes(t, x_prev, y).tolist() == [3, 4, 3, 1, 0, 1]


def test_real_tokenizer_tables_on_known_pieces(sp, tables):
    pid = sp.piece_to_id
    assert int(sp.vocab_size()) == 512 and tables.size == 512
    for name in ("<pad>", "<s>", "</s>", "<unk>"):
        assert tables.is_boundary[pid(name)] and tables.base_bytes[pid(name)] == 0
    assert (tables.base_bytes[4:260] == 1).all() and not tables.has_leading_space[4:260].any()  # <0x00>..<0xFF>
    assert (int(tables.base_bytes[pid("▁the")]), bool(tables.has_leading_space[pid("▁the")])) == (3, True)
    assert (int(tables.base_bytes[pid("▁")]), bool(tables.has_leading_space[pid("▁")])) == (0, True)


@pytest.mark.parametrize("text", [
    "The lamp was lit at dusk.",
    "a ψ b",  # ψ is not in the corpus: two byte-fallback pieces
    "Straße und Søren, café, ✓ 漢",
    "Order 6950: 13 sacks of flour at 18.00 each.",
])
def test_bytes_of_a_document_equal_its_utf8_length(sp, tables, text):
    # After a BOS, with single spaces and no leading space, normalization changes nothing, so the
    # LUT bytes of the targets must add up to the raw UTF-8 length of the text.
    tokens = torch.tensor([1, *sp.encode(text)])
    assert int(target_bytes(tokens, tables).sum()) == len(text.encode("utf-8"))


def test_bits_per_byte_formula():
    assert bits_per_byte(10.0, 5) == pytest.approx(10.0 / (5 * math.log(2)), rel=1e-15)
    with pytest.raises(ValueError, match="0 bytes"):
        bits_per_byte(1.0, 0)


def test_summarize_on_a_hand_computed_stream():
    t = ByteTables.from_sentencepiece(HandVocab())
    tokens = torch.tensor([1, 5, 5, 4])  # <s> ▁the ▁the <0x41>
    nll = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    result = summarize(nll, tokens, t)
    assert result.bytes_scored == 3 + 4 + 1
    assert result.tokens_scored == 3
    assert result.val_loss == 2.0
    assert result.val_bpb == pytest.approx(6.0 / (8 * math.log(2)), rel=1e-15)


def test_byte_sidecar_replaces_the_tables():
    tokens = torch.tensor([1, 5, 5, 4])
    sidecar = torch.tensor([0, 7, 1, 2])  # byte budget of each token; the first input is never a target
    assert target_bytes(tokens, sidecar=sidecar).tolist() == [7, 1, 2]
    result = summarize(torch.ones(3, dtype=torch.float64), tokens, sidecar=sidecar)
    assert result.bytes_scored == 10
    with pytest.raises(ValueError, match="needs ByteTables or a byte sidecar"):
        target_bytes(tokens)
    with pytest.raises(ValueError, match="3 entries for 4 tokens"):
        target_bytes(tokens, sidecar=sidecar[:3])

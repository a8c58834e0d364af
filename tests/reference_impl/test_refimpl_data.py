"""Shard format, globs, validation truncation, loaders and the exporter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_impl.data import (
    DistributedTokenLoader,
    ShardError,
    TokenStream,
    export_shards,
    load_val_byte_sidecar,
    load_val_tokens,
    read_shard,
    shard_files,
    usable_targets,
    write_shard,
)


def header(magic=20240520, version=1, count=0) -> bytes:
    h = np.zeros(256, dtype="<i4")
    h[:3] = (magic, version, count)
    return h.tobytes()


def test_round_trip_keeps_every_value_and_the_exact_layout(tmp_path):
    tokens = torch.tensor([0, 1, 2, 1023, 40000, 65535], dtype=torch.int64)
    path = tmp_path / "fineweb_val_000000.bin"
    assert write_shard(path, tokens) == 1024 + 2 * 6
    raw = path.read_bytes()
    assert len(raw) == 1024 + 12
    assert np.frombuffer(raw[:12], dtype="<i4").tolist() == [20240520, 1, 6]
    assert not any(raw[12:1024])  # header[3:] are zero
    assert np.frombuffer(raw[1024:], dtype="<u2").tolist() == tokens.tolist()
    back = read_shard(path)
    assert back.dtype == torch.uint16
    assert back.to(torch.int64).tolist() == tokens.tolist()


def test_empty_shard_round_trips(tmp_path):
    write_shard(tmp_path / "e.bin", [])
    assert read_shard(tmp_path / "e.bin").numel() == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (header(magic=20240521, count=1) + b"\0\0", "wrong magic 20240521"),
        (header(version=2, count=1) + b"\0\0", "unsupported version 2"),
        (header(count=3) + b"\0\0", "wrong size: 1026 bytes"),  # one token short
        (header(count=1) + b"\0\0\0\0", "wrong size: 1028 bytes"),  # one token too many
        (header(count=-1), "negative token count"),
        (header()[:1000], "short file: 1000 bytes"),
        (b"", "short file: 0 bytes"),
    ],
)
def test_bad_shards_raise_a_shard_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "fineweb_train_000007.bin"
    path.write_bytes(content)
    with pytest.raises(ShardError) as info:
        read_shard(path)
    assert problem in str(info.value)
    assert "fineweb_train_000007.bin" in str(info.value)
    assert info.value.path == path


def test_missing_shard_is_a_shard_error_too(tmp_path):
    with pytest.raises(ShardError, match="missing.bin: cannot read"):
        read_shard(tmp_path / "missing.bin")


@pytest.mark.parametrize("bad", [[65536], [-1]])
def test_writer_refuses_values_outside_uint16(tmp_path, bad):
    with pytest.raises(ShardError, match="65535"):
        write_shard(tmp_path / "x.bin", [1, *bad])
    assert not (tmp_path / "x.bin").exists()


def test_val_glob_skips_byte_sidecars_and_truncates_to_whole_sequences(tmp_path):
    write_shard(tmp_path / "fineweb_val_000000.bin", range(10))
    write_shard(tmp_path / "fineweb_val_000001.bin", range(10, 25))  # 25 tokens in all
    write_shard(tmp_path / "fineweb_val_bytes_000000.bin", [9] * 25)  # matches fineweb_val_*.bin as well
    pattern = tmp_path / "fineweb_val_*.bin"
    assert [f.name for f in shard_files(pattern)] == ["fineweb_val_000000.bin", "fineweb_val_000001.bin"]
    val = load_val_tokens(pattern, seq_len=8)
    assert usable_targets(25, 8) == 24
    assert val.tolist() == list(range(25))  # 24 targets + the first input
    assert load_val_tokens(pattern, seq_len=5).tolist() == list(range(21))  # (25-1)//5*5 = 20 targets
    sidecar = load_val_byte_sidecar(tmp_path / "fineweb_val_bytes_*.bin", val.numel())
    assert sidecar.numel() == val.numel()
    with pytest.raises(ValueError, match="too short"):
        load_val_tokens(pattern, seq_len=30)
    with pytest.raises(FileNotFoundError, match="no shard files match"):
        shard_files(tmp_path / "fineweb_train_*.bin")


def test_token_stream_wraps_around_the_shards_in_order(tmp_path):
    write_shard(tmp_path / "fineweb_train_000001.bin", [3, 4, 5])
    write_shard(tmp_path / "fineweb_train_000000.bin", [0, 1, 2])
    stream = TokenStream(tmp_path / "fineweb_train_*.bin")
    assert stream.take(2).tolist() == [0, 1]
    assert stream.take(5).tolist() == [2, 3, 4, 5, 0]
    assert stream.take(4).tolist() == [1, 2, 3, 4]


def test_distributed_loader_gives_each_rank_its_own_span_with_one_extra_target(tmp_path):
    write_shard(tmp_path / "fineweb_train_000000.bin", range(1000))
    pattern = tmp_path / "fineweb_train_*.bin"
    # 2 ranks, accumulation 2, 16 global tokens -> 4 tokens per rank and micro-step, seq_len 2
    batches = {}
    for rank in (0, 1):
        loader = DistributedTokenLoader(pattern, rank, 2, torch.device("cpu"))
        batches[rank] = [loader.next_batch(16, 2, 2) for _ in range(2)]
    # one call consumes 2 * (4 + 1) tokens: rank 0 gets 0..4, rank 1 gets 5..9; the next call 10..19
    x, y = batches[0][0]
    assert x.tolist() == [[0, 1], [2, 3]] and y.tolist() == [[1, 2], [3, 4]]
    x, y = batches[1][0]
    assert x.tolist() == [[5, 6], [7, 8]] and y.tolist() == [[6, 7], [8, 9]]
    assert batches[0][1][0].tolist() == [[10, 11], [12, 13]]
    assert batches[1][1][1].tolist() == [[16, 17], [18, 19]]
    with pytest.raises(ValueError, match="not a positive multiple of seq_len"):
        DistributedTokenLoader(pattern, 0, 1, torch.device("cpu")).next_batch(6, 4, 1)


def test_export_writes_bos_per_document_val_first_and_cuts_shards(tmp_path):
    docs = [[10, 11], [12], [13, 14, 15], [16]]
    stats = export_shards(docs, tmp_path, num_val_docs=2, bos_id=1, shard_size=4)
    assert stats == {"docs_val": 2, "docs_train": 2, "tokens_val": 5, "tokens_train": 6, "files_val": 2,
                     "files_train": 2}
    assert read_shard(tmp_path / "fineweb_val_000000.bin").tolist() == [1, 10, 11, 1]
    assert read_shard(tmp_path / "fineweb_val_000001.bin").tolist() == [12]  # val never shares with train
    assert read_shard(tmp_path / "fineweb_train_000000.bin").tolist() == [1, 13, 14, 15]
    assert read_shard(tmp_path / "fineweb_train_000001.bin").tolist() == [1, 16]

"""Where a submission finds its files (auditor.runtime.layout): the paths its literals name."""

from __future__ import annotations

from pathlib import Path

from auditor.runtime import layout

SCRIPT = '''
import glob, os
VAL = "./data/datasets/fineweb10B_sp2048/fineweb_val_*.bin"
TRAIN = "data/datasets/fineweb10B_sp2048/fineweb_train_[0-9]*.bin"
TOK = "./data/tokenizers/fineweb_2048_bpe.model"
POD = "/workspace/research_data"
OUT = "./logs"
OUTSIDE = "/root/data/fineweb_val_000000.bin"
ESCAPE = "../../etc/data/fineweb_val_000000.bin"
PATTERN = "fineweb_val_*.bin"
MESSAGE = "val_loss/val_bpb"
'''


def test_literals_are_read_by_what_they_name():
    paths = layout.default_paths([SCRIPT, "this is not python ("])
    assert paths.tokenizers == ["./data/tokenizers/fineweb_2048_bpe.model"]
    assert "./data/datasets/fineweb10B_sp2048/fineweb_val_*.bin" in paths.shards
    assert "data/datasets/fineweb10B_sp2048/fineweb_train_[0-9]*.bin" in paths.shards
    assert paths.folders == ["/workspace/research_data"]  # ./logs holds no data; a message is no folder
    assert paths.shard_names == ["fineweb_val_*.bin"]


def test_shard_roles_come_from_the_challenge_file_names():
    assert layout.shard_role("fineweb_val_000003.bin") == "val"
    assert layout.shard_role("fineweb_train_*.bin") == "train"
    assert layout.shard_role("fineweb_val_bytes_000000.bin") == "val"
    assert layout.shard_role("weights.bin") is None
    assert layout.shard_role("fineweb_val_000000.npy") is None


def test_materialize_fills_the_working_folder_and_nothing_outside(tmp_path: Path):
    workdir = tmp_path / "workspace"
    (workdir / layout.SUBMISSION).mkdir(parents=True)
    tokenizer = tmp_path / "tok.model"
    tokenizer.write_bytes(b"model")
    written: list[Path] = []
    script = SCRIPT.replace("/workspace/", f"{workdir}/")
    made = layout.materialize(layout.default_paths([script]), workdir, tokenizer,
                              lambda p: (written.append(p), p.write_bytes(b"train")))
    assert (workdir / "data/tokenizers/fineweb_2048_bpe.model").read_bytes() == b"model"
    val = workdir / "data/datasets/fineweb10B_sp2048/fineweb_val_000000.bin"
    assert val in made.val_shards
    assert workdir / "data/datasets/fineweb10B_sp2048/fineweb_train_0000000.bin" in written
    assert workdir / "research_data" / "fineweb_val_000000.bin" in made.val_shards  # the script's own pattern
    assert not (workdir / "logs").exists()
    assert not (tmp_path / "etc").exists()
    assert len(made.notes) == 4
    for shard in made.val_shards:  # the caller writes them (and rewrites them with each stream)
        shard.write_bytes(b"val")
    again = layout.materialize(layout.default_paths([script]), workdir, tokenizer, lambda p: None)
    assert again.notes == [] and again.val_shards == []  # what exists is left alone


def test_the_copy_of_the_submission_is_never_written(tmp_path: Path):
    workdir = tmp_path / "workspace"
    folder = workdir / layout.SUBMISSION
    folder.mkdir(parents=True)
    script = f'P = "{layout.SUBMISSION}/data/fineweb_val_000000.bin"\nT = "{layout.SUBMISSION}/tok.model"\n'
    made = layout.materialize(layout.default_paths([script]), workdir, tmp_path / "none", lambda p: None)
    assert made.notes == [] and made.val_shards == [] and not any(folder.iterdir())

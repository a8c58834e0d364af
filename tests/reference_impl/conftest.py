"""Shared fixtures: the smoke corpus as shards plus a tokenizer trained on it (once per session),
and tiny models with non-trivial random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reference_impl.model import GPT, GPTConfig
from reference_impl.rerun import build_smoke_data
from reference_impl.tokenizer import ByteTables, load_sentencepiece


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs of several seconds (still part of the default run)")
    # The test models are tiny: one thread is as fast as two, and on a loaded machine two OpenMP threads
    # spin-waiting on each other make every small op wait for a scheduler slice (100x slower).
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset dir, tokenizer .model) built from fixtures/text exactly as the smoke rerun does."""
    return build_smoke_data(tmp_path_factory.mktemp("smoke_data"))


@pytest.fixture(scope="session")
def sp(smoke_data):
    return load_sentencepiece(smoke_data[1])


@pytest.fixture(scope="session")
def tables(sp) -> ByteTables:
    return ByteTables.from_sentencepiece(sp, int(sp.vocab_size()))


def random_model(config: GPTConfig, seed: int = 0) -> GPT:
    """A model whose every weight is random (the zero-initialised projections would otherwise make
    every block an identity map, and most causality bugs invisible)."""
    torch.manual_seed(seed)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.08)
    return model.eval()


@pytest.fixture
def tiny_model() -> GPT:
    return random_model(GPTConfig.tiny())


@pytest.fixture
def micro_model() -> GPT:
    """Vocabulary 64: cheap enough to substitute every vocabulary entry at a position."""
    return random_model(GPTConfig.tiny(vocab_size=64, seq_len=32), seed=1)

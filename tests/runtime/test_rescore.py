"""Rescorers probed as black boxes (auditor.runtime.rescore), in process: no sandbox needed.

The rescorers here take the per-target NLLs, the targets and the tokens before them, as the
byte-level mixtures of the #1872 cluster do, and return bits per byte over the canonical bytes
of the targets they scored.
"""

from __future__ import annotations

import math
import re
import shutil
import time

import numpy as np
import pytest

from auditor.runtime import data, rescore, track
from auditor.runtime.bytecount import ByteTables

from .conftest import FIXTURES, needs_sandbox, run_folder

VOCAB = 64


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import sentencepiece as spm

    model = data.train_tokenizer(tmp_path_factory.mktemp("tok"), VOCAB)
    tables = ByteTables.from_model(model, VOCAB)
    stream = data.markov_stream(1025, VOCAB, 0)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    pieces = [b"" if tables.is_boundary[i] else sp.id_to_piece(i).lstrip("\u2581").encode() for i in range(VOCAB)]
    return stream, tables, pieces


def _bytes(tables, target, before):
    lead = bool(tables.has_leading_space[target]) and not bool(tables.is_boundary[before])
    return int(tables.base_bytes[target]) + int(lead)


def _inputs(stream):
    """The aligned arrays a sliding evaluation hands over: tagged as the capture tags them."""
    positions = np.arange(1, len(stream), dtype=np.int64)
    targets = track.to_tarr(stream[1:].copy(), positions)
    prevs = track.to_tarr(stream[:-1].copy(), positions - 1)
    rng = np.random.default_rng(3)
    nll = track.to_tarr(rng.uniform(1.5, 5.0, size=len(positions)), positions)
    return targets, prevs, nll


def _run(fn, world, **kwargs):
    stream, tables, _ = world
    targets, prevs, nll = _inputs(stream)
    found = rescore.aligned_inputs((targets, prevs, nll), kwargs, stream)
    assert found is not None
    aligned, positions = found
    returned = [float(fn(targets, prevs, nll, **kwargs))]
    call = rescore.Rescorer(fn, fn.__name__, (targets, prevs, nll), dict(kwargs), aligned, positions, returned)
    return rescore.probe(call, 0, stream, tables, VOCAB, time.monotonic() + 60)


def _token_mixture(tables, weight=0.7, scale=1.0, digits=None):
    """A normalized token-level mixture (model with an add-half bigram), as bits per byte."""
    def token_mixture(targets, prevs, nll):
        counts: dict[int, dict[int, int]] = {}
        nats, size = 0.0, 0
        for t, p, loss in zip(targets.tolist(), prevs.tolist(), nll.tolist()):
            row = counts.setdefault(p, {})
            bigram = (row.get(t, 0) + 0.5) / (sum(row.values()) + 0.5 * VOCAB)
            nats -= scale * math.log(weight * math.exp(-loss) + (1 - weight) * bigram)
            row[t] = row.get(t, 0) + 1
            size += _bytes(tables, t, p)
        bpb = nats / size / math.log(2)
        return bpb if digits is None else round(bpb, digits)
    return token_mixture


def _byte_spread(tables, pieces):
    """Each token's probability spread over its bytes and mixed with a byte back-off model."""
    def byte_spread(targets, prevs, nll):
        counts: dict[bytes, dict[int, int]] = {}
        history = bytearray()
        nats, size = 0.0, 0
        for t, p, loss in zip(targets.tolist(), prevs.tolist(), nll.tolist()):
            raw = (b" " if _bytes(tables, t, p) > len(pieces[t]) else b"") + pieces[t]
            if not raw:
                continue
            spread = math.exp(-loss / len(raw))
            for b in raw:
                escape, byte_p, top = 1.0, None, None
                for k in range(min(3, len(history)), -1, -1):
                    seen = counts.get(bytes(history[len(history) - k:]))
                    if not seen:
                        continue
                    total, distinct = sum(seen.values()), len(seen)
                    top = max(seen.values()) / (total + distinct) if top is None else top
                    if b in seen:
                        byte_p = escape * seen[b] / (total + distinct)
                        break
                    escape *= distinct / (total + distinct)
                byte_p = escape / 256 if byte_p is None else byte_p
                weight = 0.1 if top is not None and top >= 0.6 else 0.7
                nats -= math.log(weight * spread + (1 - weight) * byte_p)
                for k in range(min(3, len(history)) + 1):
                    slot = counts.setdefault(bytes(history[len(history) - k:]), {})
                    slot[b] = slot.get(b, 0) + 1
                history.append(b)
                size += 1
        return nats / size / math.log(2)
    return byte_spread


def test_aligned_inputs_know_targets_losses_and_context(world):
    stream = world[0]
    targets, prevs, nll = _inputs(stream)
    aligned, positions = rescore.aligned_inputs((targets, prevs, nll), {}, stream)
    assert [a.role for a in aligned] == ["target", "other", "loss"]
    assert np.array_equal(positions, np.arange(1, len(stream)))


def test_calls_without_targets_or_with_an_unknown_float_input_are_not_rescorers(world):
    stream = world[0]
    targets, prevs, nll = _inputs(stream)
    assert rescore.aligned_inputs((prevs, nll), {}, stream) is None  # no array holds the targets
    confidence = track.to_tarr(np.full(len(nll), 2.5), np.asarray(nll._pg_pos))  # not the losses, nor a transform
    assert rescore.aligned_inputs((targets, nll, confidence), {}, stream) is None
    logp = track.to_tarr(-np.asarray(nll), np.asarray(nll._pg_pos))  # the losses negated: known
    assert rescore.aligned_inputs((targets, nll, logp), {}, stream) is not None


def test_a_normalized_token_mixture_passes(world):
    result = _run(_token_mixture(world[1]), world)
    assert result.status == "pass", result.detail
    assert all(s <= 1.0 for s in result.evidence["sums"])


def test_a_byte_spread_mixture_fails(world):
    result = _run(_byte_spread(world[1], world[2]), world)
    assert result.status == "fail", result.detail
    assert result.evidence["sum"] > 1.0 + result.evidence["tolerance"]
    assert result.evidence["rescorer"] is True


def test_a_scaled_nll_fails(world):
    """Issue #14's class 1(c): a per-token NLL times c < 1 scores p ** c."""
    result = _run(_token_mixture(world[1], weight=1.0, scale=0.8), world)
    assert result.status == "fail", result.detail
    assert result.evidence["sum"] > 2.0  # 60 tokens * (1/60) ** 0.8


def test_a_rounded_figure_is_inconclusive(world):
    result = _run(_token_mixture(world[1], digits=4), world)
    assert result.status == "inconclusive"
    assert "rounded" in result.detail


@needs_sandbox
def test_the_sandboxed_fixture_fails_with_its_rescorer_and_arguments_renamed(tmp_path):
    """byte_spread_mixture with the rescorer and its parameters renamed: the rescorer is known
    by the claimed line printing what it returns, its arguments by their tags."""
    folder = tmp_path / "renamed"
    shutil.copytree(FIXTURES / "byte_spread_mixture", folder)
    script = folder / "train_gpt.py"
    text = script.read_text()
    for old, new in (("mixture_bpb", "blend_scores"), ("targets", "ids_a"), ("prevs", "ids_b"), ("nll", "cost_c")):
        text = re.sub(rf"\b{old}\b", new, text)
    script.write_text(text)
    result = run_folder(folder)
    assert result.status == "fail", result.reasons
    row = next(r for r in result.failures if r.probe == "substitution")
    assert row.scorer == "blend_scores" and row.evidence["rescorer"]


@needs_sandbox
def test_a_lone_script_is_probed_on_the_bpb_lines_it_prints(tmp_path):
    """Without seed logs nothing is claimed: a rescorer named like an evaluation is probed on
    any bpb line that prints what it returned."""
    folder = tmp_path / "lone"
    shutil.copytree(FIXTURES / "byte_spread_mixture", folder)
    for extra in ("train_seed42.log", "submission.json"):
        (folder / extra).unlink()
    script = folder / "train_gpt.py"
    script.write_text(re.sub(r"\bmixture_bpb\b", "eval_byte_mixture", script.read_text()))
    result = run_folder(folder)
    assert result.status == "fail", result.reasons
    assert any(r.scorer == "eval_byte_mixture" and r.evidence.get("rescorer") for r in result.failures)


def test_tensor_arguments_are_given_back_as_tensors_of_their_dtype(world):
    """A rescorer fed torch tensors (the losses in float32, the ids in int64) gets tensors back."""
    import torch

    stream, tables, _ = world
    targets, prevs, nll = _inputs(stream)
    positions = torch.from_numpy(np.asarray(nll._pg_pos))
    as_tensors = (track.tag(torch.from_numpy(np.asarray(targets).copy()), positions),
                  track.tag(torch.from_numpy(np.asarray(prevs).copy()), positions - 1),
                  track.tag(torch.from_numpy(np.asarray(nll, dtype=np.float32)), positions))
    seen: list[tuple[torch.dtype, ...]] = []
    mixture = _token_mixture(tables)

    def on_tensors(t, p, loss):
        seen.append((t.dtype, p.dtype, loss.dtype))
        return mixture(t.numpy(), p.numpy(), loss.double().numpy())

    found = rescore.aligned_inputs(as_tensors, {}, stream)
    assert found is not None and [a.role for a in found[0]] == ["target", "other", "loss"]
    call = rescore.Rescorer(on_tensors, "on_tensors", as_tensors, {}, found[0], found[1],
                            [on_tensors(*as_tensors)])
    result = rescore.probe(call, 0, stream, tables, VOCAB, time.monotonic() + 60)
    assert result.status == "pass", result.detail
    assert set(seen) == {(torch.int64, torch.int64, torch.float32)}


def test_a_rescorer_that_raises_or_drifts_is_inconclusive(world):
    tables = world[1]
    mixture = _token_mixture(tables)
    calls = {"n": 0}

    def needs_full_length(t, p, loss):
        if len(t) < len(world[0]) - 1:
            raise ValueError("expected the whole stream")
        return mixture(t, p, loss)

    def drifting(t, p, loss):  # keeps state between calls: the same input gives another figure
        calls["n"] += 1
        return mixture(t, p, loss) + 1e-9 * calls["n"]

    raised = _run(needs_full_length, world)
    assert raised.status == "inconclusive" and "ValueError" in raised.detail
    drift = _run(drifting, world)
    assert drift.status == "inconclusive" and "for the same input" in drift.detail

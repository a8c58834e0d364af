"""Evaluators: geometry, agreement where they must agree, and the causality probes the runtime
harness runs (with two deliberately illegal evaluators as negative controls)."""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch

from reference_impl import evaluate as ev
from reference_impl.evaluate import (
    NgramMixer,
    assign_chunks,
    boundaries,
    plain_windows,
    score_ngram_mixer,
    score_plain,
    score_sliding,
    score_ttt,
    sliding_windows,
)

R_STAGE = re.compile(r"^(?P<label>[A-Za-z][\w\-. ]*?)\s+val_loss[:=]\s*(?P<loss>\d+(?:\.\d+)?)\s+"
                     r"val_bpb[:=]\s*(?P<bpb>\d+(?:\.\d+)?)(?P<tail>.*)$")  # research/pipeline.md §6.2

# Micro setting for the probes: vocabulary 64, windows of 32, stride 8, chunks of 24 positions.
V, L, S, C = 64, 32, 8, 24
EVALUATORS = {
    "plain": lambda m, t: score_plain(m, t, L, batch_seqs=2),
    "sliding": lambda m, t: score_sliding(m, t, L, S, batch_windows=3),
    "ttt": lambda m, t: score_ttt(m, t, L, S, chunk_tokens=C, epochs=2, lr=0.05, batch_seqs=2, batch_windows=3),
    "ngram": lambda m, t: score_ngram_mixer(m, t, L, S, order=3, alpha=0.3, vocab_size=V, chunk_tokens=C,
                                            max_buckets=256, batch_windows=3),
}


# Two scorings of the same targets with the same context that differ only in batching (which windows
# share a forward pass) are the same float32 arithmetic except where a kernel's blocking depends on
# the batch shape, so they agree to a few float32 roundings of an NLL below 16 (one ulp there is at
# most 1.9e-6; measured: identical with AVX-512, AVX2 and default kernels, 6.5e-7 for the mixer at
# alpha 0, which adds a float64 exp/log round trip). A wrong window, context or chunk moves NLLs by
# whole nats (the `not allclose` checks below see 2.0).
SAME_SCORES_ATOL = 1e-5


def stream(n: int, vocab: int = V, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n,), generator=g)


# -----------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize("num_targets", [1, 5, 31, 32, 33, 100, 257])
@pytest.mark.parametrize(("seq_len", "stride"), [(1, 1), (8, 1), (8, 3), (32, 8), (32, 32), (64, 48)])
def test_windows_score_every_position_exactly_once_with_full_context(num_targets, seq_len, stride):
    windows = sliding_windows(num_targets, seq_len, stride)
    scored = [p for w in windows for p in range(w.first_scored, w.end)]
    assert scored == list(range(num_targets))  # once each, in order
    assert all(w.length <= seq_len and w.end <= num_targets for w in windows)
    assert all(w.score_from == seq_len - stride for w in windows[1:])  # context >= seq_len - stride
    assert windows[0].score_from == 0
    plain = [p for w in plain_windows(num_targets, seq_len) for p in range(w.first_scored, w.end)]
    assert plain == list(range(num_targets))
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(num_targets, seq_len, seq_len + 1)


def test_chunks_take_windows_by_their_first_scored_position():
    windows = sliding_windows(100, 32, 8)
    chunks = assign_chunks(windows, 24, 100)
    assert len(chunks) == 5
    for c, chunk in enumerate(chunks):
        assert all(c * 24 <= w.first_scored < (c + 1) * 24 for w in chunk)
    b = boundaries("ttt", 100, 32, 8, 24)
    assert b.chunk_starts == [0, 24, 48, 72, 96]
    assert b.cuts() == sorted({0, 32, 40, 48, 56, 64, 72, 80, 88, 96, 24})
    assert [w.start for w in boundaries("plain", 100, 32).windows] == [0, 32, 64, 96]
    assert boundaries("sliding", 100, 32, 8).chunk_starts == []
    with pytest.raises(ValueError, match="unknown evaluator"):
        boundaries("slot", 100, 32, 8, 24)


# -----------------------------------------------------------------------------
# Agreement


def test_sliding_with_stride_equal_to_seq_len_is_plain_eval(tiny_model):
    tokens = stream(5 * 64 + 1 + 17, vocab=512)  # a partial last sequence too
    plain = score_plain(tiny_model, tokens, 64, batch_seqs=2)
    sliding = score_sliding(tiny_model, tokens, 64, 64, batch_windows=3)
    assert plain.dtype == torch.float64 and plain.shape == (tokens.numel() - 1,)
    torch.testing.assert_close(sliding, plain, rtol=0, atol=SAME_SCORES_ATOL)
    assert not torch.allclose(score_sliding(tiny_model, tokens, 64, 16), plain)  # more context changes scores


def test_ttt_with_zero_epochs_is_sliding_and_leaves_the_model_alone(tiny_model):
    tokens = stream(700, vocab=512)
    before = copy.deepcopy(tiny_model.state_dict())
    sliding = score_sliding(tiny_model, tokens, 64, 16)
    torch.testing.assert_close(score_ttt(tiny_model, tokens, 64, 16, chunk_tokens=128, epochs=0, lr=0.1),
                               sliding, rtol=0, atol=SAME_SCORES_ATOL)
    adapted = score_ttt(tiny_model, tokens, 64, 16, chunk_tokens=128, epochs=2, lr=0.1)
    # chunk 0: nothing learnt yet
    torch.testing.assert_close(adapted[:128], sliding[:128], rtol=0, atol=SAME_SCORES_ATOL)
    assert not torch.allclose(adapted[128:], sliding[128:])  # later chunks use adapted weights
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())  # caller unaffected


def test_mixer_with_alpha_zero_is_sliding(tiny_model):
    tokens = stream(300, vocab=512)
    mixed = score_ngram_mixer(tiny_model, tokens, 64, 16, order=3, alpha=0.0, chunk_tokens=100)
    torch.testing.assert_close(mixed, score_sliding(tiny_model, tokens, 64, 16), rtol=0, atol=SAME_SCORES_ATOL)


def test_evaluate_summarizes_with_the_byte_tables(tiny_model, sp, tables):
    tokens = torch.tensor([1, *sp.encode("The keeper lit the lamp at dusk and wound the clockwork twice.")])
    result = ev.evaluate("sliding", tiny_model, tokens, tables, seq_len=8, stride=4)
    nll = score_sliding(tiny_model, tokens, 8, 4)
    assert result.tokens_scored == tokens.numel() - 1
    assert result.bytes_scored == len(b"The keeper lit the lamp at dusk and wound the clockwork twice.")
    assert result.val_loss == pytest.approx(float(nll.sum()) / nll.numel(), rel=1e-12)
    assert result.val_bpb == pytest.approx(float(nll.sum()) / (result.bytes_scored * math.log(2)), rel=1e-12)
    line, exact = result.log_lines("final_sliding_window", "stride:4")
    m = R_STAGE.match(line)
    assert m and m["label"] == "final_sliding_window" and m["tail"].startswith(" stride:4 eval_time:")
    assert R_STAGE.match(exact)["label"] == "final_sliding_window_exact"
    assert exact.endswith(f"val_bpb:{result.val_bpb:.8f}")
    with pytest.raises(ValueError, match="unknown evaluator"):
        ev.evaluate("slot", tiny_model, tokens, tables)


def test_a_target_scored_twice_is_an_error(tiny_model, monkeypatch):
    real = ev.sliding_windows
    monkeypatch.setattr(ev, "sliding_windows", lambda *a: real(*a) + real(*a)[-1:])
    with pytest.raises(RuntimeError, match="exactly once"):
        score_sliding(tiny_model, stream(100, vocab=512), 32, 8)


# -----------------------------------------------------------------------------
# The causality probes (the reference must pass every one), with negative controls


def future_perturbation_violations(scorer, model, tokens: torch.Tensor, cuts: list[int]) -> list[int]:
    """Cuts k where changing tokens[k+1:] changed a score of a target at or before k."""
    base = scorer(model, tokens)
    bad = []
    for k in cuts:
        changed = tokens.clone()
        changed[k + 1 :] = stream(tokens.numel() - k - 1, seed=k + 1)
        if not torch.equal(scorer(model, changed)[:k], base[:k]):
            bad.append(k)
    return bad


def substitution_mass(scorer, model, tokens: torch.Tensor, position: int) -> float:
    """Sum over v of exp(-NLL) at `position` when its target tokens[position + 1] is set to v."""
    total = 0.0
    for v in range(V):
        probe = tokens.clone()
        probe[position + 1] = v
        total += math.exp(-float(scorer(model, probe)[position]))
    return total


def probe_cuts(n: int) -> list[int]:
    edges = set(boundaries("ttt", n, L, S, C).cuts())
    return sorted({k for e in edges for k in (e - 1, e, e + 1) if 1 <= k < n - 1} | {37, 50})


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_reference_evaluators_pass_the_future_perturbation_probe(micro_model, name):
    tokens = stream(97)
    assert future_perturbation_violations(EVALUATORS[name], micro_model, tokens, probe_cuts(96)) == []


@pytest.mark.parametrize("name", list(EVALUATORS))
def test_reference_evaluators_give_a_normalized_distribution(micro_model, name):
    tokens = stream(73)
    # 64 terms exp(-NLL), each NLL a float32 rounding (relative 6e-8) away from exact: measured
    # |mass - 1| <= 1.6e-7 on AVX-512, AVX2 and default kernels; a score that peeks at its target is
    # off by far more than 1e-5.
    for position in (0, 23, 24, 47, 48, 71):  # first/last scored position of chunks
        assert substitution_mass(EVALUATORS[name], micro_model, tokens, position) == pytest.approx(1.0, abs=1e-5)


def train_then_score(model, tokens):
    """ILLEGAL on purpose: adapts on each chunk before scoring it."""
    model = copy.deepcopy(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    n = tokens.numel() - 1
    nll = torch.zeros(n, dtype=torch.float64)
    for start in range(0, n, C):
        span = tokens[start : min(start + C, n) + 1]
        x, y = span[:-1][None], span[1:][None]
        opt.zero_grad()
        model.loss(x, y).backward()
        opt.step()
        with torch.no_grad():
            nll[start : start + x.size(1)] = model.loss(x, y, reduction="none")[0].double()
    return nll


def target_in_key_cache(model, tokens):
    """ILLEGAL on purpose: mixes in how often (previous token, target) occurred, counting the
    current occurrence, i.e. it looks the target up before scoring it."""
    n = tokens.numel() - 1
    probs = torch.softmax(model.logits(tokens[:-1][None])[0].detach().double(), -1)
    counts: dict[tuple[int, int], int] = {}
    nll = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        key = (int(tokens[i]), int(tokens[i + 1]))
        counts[key] = counts.get(key, 0) + 1
        p = 0.7 * float(probs[i, tokens[i + 1]]) + 0.3 * min(1.0, counts[key] / 2)
        nll[i] = -math.log(p)
    return nll


def test_the_probes_catch_illegal_evaluators(micro_model):
    tokens = stream(73)
    assert future_perturbation_violations(train_then_score, micro_model, tokens, [10, 30, 50]) != []
    assert substitution_mass(target_in_key_cache, micro_model, tokens, 40) > 1.05


# -----------------------------------------------------------------------------
# The n-gram mixer as a component


def test_mixer_counts_match_a_hand_count_whatever_the_update_split():
    whole = NgramMixer(5, order=3)
    whole.update(torch.tensor([0, 1, 2, 1, 2]))
    split = NgramMixer(5, order=3)
    split.update(torch.tensor([0, 1, 2]))
    split.update(torch.tensor([1]))
    split.update(torch.tensor([2]))
    for a, b in zip(whole.tables, split.tables, strict=True):
        assert torch.equal(a, b)
    assert whole.unigram.tolist() == [1, 2, 2, 0, 0]
    bigram = whole.tables[0]  # exact: 5 contexts fit
    assert bigram[1].tolist() == [0, 0, 2, 0, 0] and bigram[2].tolist() == [0, 1, 0, 0, 0]
    # p0 = (c + 1) / (n + V) = [2, 3, 3, 1, 1] / 10; after context (2, 1) the trigram row is (2, 1) -> 2 once
    p0 = torch.tensor([2, 3, 3, 1, 1], dtype=torch.float64) / 10
    p1 = (bigram[1].double() + p0) / (2 + 1)
    trigram_row = torch.tensor([0, 0, 1, 0, 0], dtype=torch.float64)
    expected = (trigram_row + p1) / (1 + 1)
    torch.testing.assert_close(whole.distribution(torch.tensor([2, 1])), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(whole.distribution(torch.tensor([], dtype=torch.int64)), p0, rtol=0, atol=1e-15)


def test_mixer_distribution_is_normalized_even_with_hash_collisions():
    mixer = NgramMixer(512, order=4, alpha=0.5, max_buckets=64)  # far more contexts than buckets
    mixer.update(stream(5000, vocab=512))
    for context in ([], [7], [7, 300], [1, 2, 3], stream(50, vocab=512).tolist()):
        p = mixer.distribution(torch.tensor(context, dtype=torch.int64))
        assert p.shape == (512,) and bool((p > 0).all())
        assert float(p.sum()) == pytest.approx(1.0, abs=1e-12)
    model_probs = torch.softmax(torch.randn(3, 512, dtype=torch.float64), -1)
    mixed = mixer.mix(model_probs, torch.tensor([[1, 2, 3]] * 3), torch.tensor([3, 1, 0]))
    torch.testing.assert_close(mixed.sum(1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)


def test_mixer_rejects_bad_settings():
    with pytest.raises(ValueError, match="alpha"):
        NgramMixer(10, alpha=1.5)
    with pytest.raises(ValueError, match="order"):
        NgramMixer(10, order=0)

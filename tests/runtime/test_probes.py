"""The probes on hand-written pure-NumPy scorers (no sandbox, no torch): fast and exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditor.runtime import data
from auditor.runtime.probes import ProbePlan, ProbeRunner, Scored, compare

VOCAB = 16
STREAM = data.markov_stream(400, VOCAB, seed=3)


def bigram_scorer(leak: str = "", chunk: int = 100):
    """A causal add-one bigram model updated chunk by chunk; ``leak`` breaks one condition."""

    def score(stream: np.ndarray) -> Scored:
        counts = np.ones((VOCAB, VOCAB))
        positions, nll = [], []
        n = len(stream)
        if leak == "two_pass":
            for a, b in zip(stream[:-1], stream[1:]):
                counts[a, b] += 1
        for start in range(1, n, chunk):
            end = min(start + chunk, n)
            if leak == "update_first":
                for t in range(start, end):
                    counts[stream[t - 1], stream[t]] += 1
            for t in range(start, end):
                row = counts[stream[t - 1]]
                p = row / row.sum()
                if leak == "target_in_key":
                    p = p.copy()
                    p[stream[t]] = min(1.0, p[stream[t]] * 3)
                positions.append(t)
                nll.append(-math.log(p[stream[t]]))
            if leak != "update_first":
                for t in range(start, end + (1 if leak == "plus_one" else 0)):
                    if t < n:
                        counts[stream[t - 1], stream[t]] += 1
        return Scored(np.array(positions), np.array(nll))

    return score


def run(scorer, chunk=100, **kw):
    runner = ProbeRunner("scorer", scorer, STREAM, VOCAB, chunk_tokens=chunk, plan=ProbePlan(**kw))
    return {r.probe: r for r in runner.run()}


def test_a_causal_normalized_scorer_passes_every_probe():
    results = run(bigram_scorer())
    assert {k: v.status for k, v in results.items()} == {
        "determinism": "pass", "future": "pass", "score_before_update": "pass", "substitution": "pass"}
    assert all(s <= 1.0 + 1e-9 for s in results["substitution"].evidence["sums"])


def test_two_pass_scoring_fails_future_perturbation():
    results = run(bigram_scorer("two_pass"))
    assert results["future"].status == "fail"
    ev = results["future"].evidence
    assert ev["at_position"] <= ev["cut"] and ev["max_abs_delta"] > 1e-3


def test_updating_before_scoring_fails_score_before_update():
    results = run(bigram_scorer("update_first"))
    assert results["score_before_update"].status == "fail"


def test_a_target_dependent_score_fails_substitution_with_the_sum():
    results = run(bigram_scorer("target_in_key"))
    assert results["substitution"].status == "fail"
    assert results["substitution"].evidence["sum"] > 1.2


def test_counting_the_next_target_early_fails_substitution():
    # the "+1" that reaches into the next chunk: counted before it is scored
    results = run(bigram_scorer("plus_one"))
    assert results["substitution"].status == "fail"


def test_nondeterminism_is_measured_and_blocks_the_other_probes():
    rng = np.random.default_rng()

    def noisy(stream):
        s = bigram_scorer()(stream)
        return Scored(s.positions, s.nll + rng.normal(0, 0.1, len(s.nll)))

    results = run(noisy)
    assert results["determinism"].status == "fail"
    assert results["future"].status == "inconclusive"


def test_compare_reports_where_and_how_much():
    a = Scored(np.array([1, 2, 3]), np.array([1.0, 2.0, 3.0]))
    b = Scored(np.array([1, 2, 3]), np.array([1.0, 2.5, 9.0]))
    cmp = compare(a, b, upto=2)
    assert (cmp.max_delta, cmp.at, cmp.changed, cmp.compared) == (0.5, 2, 1, 2)
    missing = compare(a, Scored(np.array([1, 3]), np.array([1.0, 3.0])), upto=2)
    assert missing.mismatch


def test_perturbations_keep_document_boundaries():
    cut = 150
    other = data.perturb_after(STREAM, cut, VOCAB, seed=1)
    assert np.array_equal(other[: cut + 1], STREAM[: cut + 1])
    tail, new = STREAM[cut + 1:], other[cut + 1:]
    assert np.array_equal(tail == data.BOS, new == data.BOS)
    assert np.all(new[tail != data.BOS] != tail[tail != data.BOS])
    assert np.all(new[tail != data.BOS] >= data.FIRST_REGULAR)


@pytest.mark.parametrize("length", [1, 50, 1000])
def test_markov_stream_is_documents_of_regular_tokens(length):
    s = data.markov_stream(length, VOCAB, seed=0)
    assert len(s) == length and s[0] == data.BOS
    assert set(np.unique(s)) <= {data.BOS, *range(data.FIRST_REGULAR, VOCAB)}


def test_a_late_plan_substitutes_where_a_late_mechanism_acts():
    """A cache that acts only in the last quarter of the stream: the default targets (chunk
    starts, a fifth and two fifths in) never see it; the late plan's do."""
    honest = bigram_scorer()

    def late_leak(stream: np.ndarray) -> Scored:
        scored = honest(stream)
        nll = scored.nll.copy()
        late = scored.positions >= 300
        nll[late] = np.maximum(nll[late] - 1.5, 0.0)  # every candidate made likelier: sums over 1
        return Scored(scored.positions, nll)

    assert run(late_leak, substitution_positions=2)["substitution"].status == "pass"
    late = run(late_leak, substitution_positions=2, late=True)["substitution"]
    assert late.status == "fail" and late.evidence["position"] >= 300

"""Target substitution (PG203) on mixtures that are not distributions, with no hashed table in
sight: an expert that is the model's entropy, a probability chosen by comparing the target with
the prediction, a token's probability spread over its bytes and mixed with a byte model. Each
fails at any load; a mixture of two genuine distributions passes. Hand-written NumPy scorers
(no sandbox): fast and exact."""

from __future__ import annotations

import math

import numpy as np

from auditor.runtime import data
from auditor.runtime.harness import interpret
from auditor.runtime.probes import ProbePlan, ProbeRunner, Scored
from auditor.runtime.protocol import DriverResult, PassRecord, ProbeRow, RunRecord, ScorerRecord
from auditor.runtime.sandbox import ChildResult

VOCAB = 16
STREAM = data.markov_stream(300, VOCAB, seed=5)


def _bigram(stream: np.ndarray, t: int, counts: np.ndarray) -> np.ndarray:
    row = counts[stream[t - 1]]
    return row / row.sum()


def scorer(kind: str):
    """A causal add-one bigram model whose score at each target is mixed the way ``kind`` says."""
    unigram = np.linspace(1.0, 2.0, VOCAB)
    unigram /= unigram.sum()
    # byte strings of the tokens: single bytes, and two-byte strings that extend them (a
    # tokenizer's vocabulary holds the prefixes of its longer pieces)
    pieces = [bytes([65 + v % 8]) if v < VOCAB // 2 else bytes([65 + v % 8, 97 + v % 8]) for v in range(VOCAB)]

    def byte_prob(piece: bytes, i: int) -> float:
        """A byte model that knows its pieces: 0.12 for each first byte, 0.9 for the byte that
        follows it in a two-byte piece (a normalized distribution over the next byte)."""
        if i == 0:
            return 0.12 if 65 <= piece[0] < 73 else 0.04 / 248
        return 0.9 if piece[i] == piece[i - 1] + 32 else 0.1 / 255

    def score(stream: np.ndarray) -> Scored:
        counts = np.ones((VOCAB, VOCAB))
        positions, nll = [], []
        for t in range(1, len(stream)):
            p = _bigram(stream, t, counts)
            y = int(stream[t])
            if kind == "two_distributions":
                q = 0.7 * p[y] + 0.3 * unigram[y]
            elif kind == "entropy_expert":
                entropy = -(p * np.log(p)).sum()
                q = math.exp(np.logaddexp(math.log(0.7) + math.log(p[y]), math.log(0.3) - entropy))
            elif kind == "prediction_equals_target":
                q = 0.9 if int(p.argmax()) == y else 1.0 / VOCAB
            elif kind == "byte_spread":
                share = math.log(p[y]) / len(pieces[y])
                q = math.exp(sum(np.logaddexp(math.log(0.5) + share, math.log(0.5 * byte_prob(pieces[y], i)))
                                 for i in range(len(pieces[y]))))
            else:
                raise ValueError(kind)
            positions.append(t)
            nll.append(-math.log(q))
            counts[stream[t - 1], y] += 1
        return Scored(np.array(positions), np.array(nll))

    return score


def substitution(kind: str):
    runner = ProbeRunner(kind, scorer(kind), STREAM, VOCAB, plan=ProbePlan(substitution_positions=2))
    return next(r for r in runner.run() if r.probe == "substitution")


def test_a_mixture_of_two_distributions_passes_substitution():
    result = substitution("two_distributions")
    assert result.status == "pass", result.detail
    assert all(s <= 1.0 + 1e-9 for s in result.evidence["sums"])


def test_the_entropy_as_an_expert_fails_substitution():
    result = substitution("entropy_expert")
    assert result.status == "fail", result.detail
    assert result.evidence["sum"] > 1.01  # 0.7 + 0.3·V·e^(-H), and V·e^(-H) > 1 for any but the uniform p


def test_a_probability_chosen_by_comparing_the_target_fails_substitution():
    result = substitution("prediction_equals_target")
    assert result.status == "fail", result.detail
    assert result.evidence["sum"] > 1.5  # 0.9 + (V - 1)/V


def test_a_byte_spread_mixture_fails_substitution():
    result = substitution("byte_spread")
    assert result.status == "fail", result.detail
    assert result.evidence["sum"] > 1.2  # the byte model's mass on "A" is counted again in "Aa"


def _run(status: str) -> DriverResult:
    detail = "at target 60, the probabilities the scorer gives the 15 candidate tokens sum to 2.1 (> 1)"
    probes = [ProbeRow("determinism", "pass", "ok", {}, "eval_val"), ProbeRow("future", "pass", "ok", {}, "eval_val"),
              ProbeRow("substitution", status, detail if status == "fail" else "sums 0.999", {}, "eval_val")]
    return DriverResult(
        phase="done", pipeline_ran=True,
        runs=[RunRecord("baseline", 1.0, None, [PassRecord("eval_val", 0, 0, 0.1, [4.1], True, scored=10)])],
        scorers=[ScorerRecord("eval_val", final=True, probes=probes)],
    )


def test_unscaled_hashed_tables_never_stop_a_substitution_failure():
    """The hashed-table reason is about a *pass* on a short stream (its tables are emptier than
    on the full validation set); a sum above 1 at the small load is a failure at any load."""
    hashed = "BUCKETS = 4096\nkey = hash(ctx) % BUCKETS\nnp.add.at(table, key, 1)\n"
    failed = interpret(ChildResult(_run("fail"), 0, 1.0), source_text=hashed)
    assert failed.status == "fail" and failed.hashed_tables
    assert not any("hashed count tables" in r for r in failed.reasons)
    passed = interpret(ChildResult(_run("pass"), 0, 1.0), source_text=hashed)
    assert passed.status == "inconclusive" and any("hashed count tables" in r for r in passed.reasons)

"""The byte-accounting probe without a sandbox: the canonical bytes of scored targets (sandbox
side) and the comparison with the bits per byte a script printed (parent side)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditor.runtime import bytecheck, bytecount, data
from auditor.runtime.protocol import ByteAccount, DriverResult

VOCAB = 64


@pytest.fixture(scope="module")
def harness_tokenizer(tmp_path_factory):
    model = data.train_tokenizer(tmp_path_factory.mktemp("tok"), VOCAB, seed=3)
    return model, bytecount.ByteTables.from_model(model, VOCAB)


@pytest.fixture(scope="module")
def stream():
    return data.markov_stream(1025, VOCAB, seed=11)


def result_with(account: ByteAccount, *lines: str, tokenizer: str = "harness") -> DriverResult:
    return DriverResult(byte_accounts=[account], metric_lines=list(lines), tokenizer_loaded=tokenizer)


def full_account(stream, tables, nll, returned=()):
    positions = np.arange(1, len(stream))
    return bytecount.account("eval_val", 0, positions, nll, float(nll.mean()), list(returned), stream, tables)


def test_the_canonical_bytes_are_the_reference_implementations(harness_tokenizer, stream):
    torch = pytest.importorskip("torch")
    tokenizer = pytest.importorskip("reference_impl.tokenizer")
    evaluate = pytest.importorskip("reference_impl.evaluate")
    model, tables = harness_tokenizer
    ref = tokenizer.ByteTables.from_sentencepiece(str(model), VOCAB)
    tokens = torch.as_tensor(stream)
    assert np.array_equal(tables.canonical(stream)[1:], tokenizer.target_bytes(tokens, ref).numpy())
    # the reference evaluation's own bpb line passes the probe
    nll = np.random.default_rng(0).uniform(0.5, 6.0, len(stream) - 1)
    summary = evaluate.summarize(torch.as_tensor(nll), tokens, ref)
    account = full_account(stream, tables, nll)
    assert account.bytes == summary.bytes_scored
    for line in summary.log_lines("final_sliding_window"):
        (row,) = bytecheck.judge(result_with(account, line))
        assert row.status == "pass", row.detail


def test_a_count_one_byte_off_fails_and_the_known_errors_are_named(harness_tokenizer, stream):
    _, tables = harness_tokenizer
    nll = np.full(len(stream) - 1, 3.0)
    account = full_account(stream, tables, nll)
    loss = account.nll_sum / account.tokens

    def line(nbytes: int, decimals: int = 8) -> str:
        return f"final val_loss:{loss:.{decimals}f} val_bpb:{account.nll_sum / (nbytes * math.log(2)):.{decimals}f}"

    assert bytecheck.judge(result_with(account, line(account.bytes)))[0].status == "pass"
    assert bytecheck.judge(result_with(account, line(account.space_after_boundary)))[0].status == "pass"
    (row,) = bytecheck.judge(result_with(account, line(account.bytes - 1)))
    assert row.status == "fail" and row.evidence["canonical_bytes"] == account.bytes
    assert abs(row.evidence["implied_bytes"] - (account.bytes - 1)) < 0.01
    never = account.alternatives["leading space never counted"]
    assert never < account.bytes
    (row,) = bytecheck.judge(result_with(account, line(never, 4)))
    assert row.status == "fail" and row.evidence["explained_by"] == "leading space never counted"


def test_printed_rounding_is_tolerated_and_unrelated_lines_are_ignored(harness_tokenizer, stream):
    _, tables = harness_tokenizer
    nll = np.random.default_rng(1).uniform(1.0, 5.0, len(stream) - 1)
    account = full_account(stream, tables, nll)
    bpb = account.nll_sum / (account.bytes * math.log(2))
    loss = account.nll_sum / account.tokens
    rounded = f"step:0/2 val_loss:{loss:.4f} val_bpb:{bpb:.4f} train_time:0ms"
    assert bytecheck.judge(result_with(account, rounded))[0].status == "pass"
    other = f"final val_loss:{loss + 0.01:.4f} val_bpb:{bpb * 0.9:.4f}"  # a loss no call returned
    assert bytecheck.judge(result_with(account, other))[0].status == "inconclusive"
    two = f"final val_loss:{loss:.4f} sliding_bpb:{bpb:.4f} val_bpb:{bpb * 0.9:.4f}"  # which bpb is it?
    assert bytecheck.judge(result_with(account, two))[0].status == "inconclusive"


def test_returned_values_can_confirm_but_never_fail(harness_tokenizer, stream):
    _, tables = harness_tokenizer
    nll = np.full(len(stream) - 1, 2.0)
    account = full_account(stream, tables, nll)
    account_bpb = account.nll_sum / (account.bytes * math.log(2))
    right = full_account(stream, tables, nll, returned=[2.0, account_bpb])
    assert bytecheck.judge(result_with(right))[0].status == "pass"
    odd = full_account(stream, tables, nll, returned=[2.0, 1234.5])  # an unlabeled number: no claim
    assert bytecheck.judge(result_with(odd))[0].status == "inconclusive"


def test_another_tokenizer_leaves_the_check_inconclusive(harness_tokenizer, stream):
    _, tables = harness_tokenizer
    account = full_account(stream, tables, np.full(len(stream) - 1, 2.0))
    line = f"final val_loss:2.00000000 val_bpb:{1.0:.8f}"
    for loaded in ("other", ""):
        (row,) = bytecheck.judge(result_with(account, line, tokenizer=loaded))
        assert row.status == "inconclusive" and "tokenizer" in row.detail


def test_metric_lines_keep_only_lines_with_a_bpb():
    text = "step:1/2 train_loss:4.1\nfinal val_loss:4.0 val_bpb:2.3\nsliding_bpb=1.2 done\nbpb is good\n"
    assert bytecount.metric_lines(text) == ["final val_loss:4.0 val_bpb:2.3", "sliding_bpb=1.2 done"]


def test_a_folder_with_its_own_tokenizer_files_is_inconclusive(harness_tokenizer, stream):
    _, tables = harness_tokenizer
    account = full_account(stream, tables, np.full(len(stream) - 1, 2.0))
    wrong = f"final val_loss:2.00000000 val_bpb:{account.nll_sum / (2 * account.bytes * math.log(2)):.8f}"
    assert bytecheck.judge(result_with(account, wrong), ["train_gpt.py", "README.md"])[0].status == "fail"
    (row,) = bytecheck.judge(result_with(account, wrong), ["train_gpt.py", "candidate.meta.npz"])
    assert row.status == "inconclusive" and row.evidence["with_harness_tokenizer"] == "fail"
    assert "candidate.meta.npz" in row.detail


def test_an_evaluation_not_captured_is_inconclusive():
    from auditor.runtime.protocol import PassRecord, RunRecord

    missed = PassRecord("eval_val_ngram", 0, 0, 0.1, [4.0], False, reason="no set of captured losses matches")
    result = DriverResult(runs=[RunRecord("baseline", passes=[missed])], tokenizer_loaded="harness")
    (row,) = bytecheck.judge(result)
    assert row.status == "inconclusive" and "not captured" in row.detail and row.scorer == "eval_val_ngram"

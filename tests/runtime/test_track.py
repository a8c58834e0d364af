"""Stream-position tracking in-process (no stubs installed: the tracking mode alone)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from auditor.runtime import track
from auditor.runtime.track import TRACKER, TrackMode

torch.manual_seed(0)
VOCAB = 11
STREAM = torch.randint(0, VOCAB, (65,))


@pytest.fixture
def open_pass():
    TRACKER.open_passes.append(999)
    yield 999
    TRACKER.open_passes.remove(999)
    TRACKER.forget(999)


def test_positions_follow_slicing_setitem_and_cross_entropy(open_pass):
    table = torch.randn(VOCAB, VOCAB)
    with TrackMode():
        tokens = track.tag_stream(STREAM.clone())
        x = torch.zeros(2, 16, dtype=torch.int64)
        y = torch.zeros(2, 16, dtype=torch.int64)
        for row, ws in enumerate((0, 40)):
            chunk = tokens[ws : ws + 17]
            x[row] = chunk[:-1]
            y[row] = chunk[1:]
        logits = table[x]
        nll = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1), reduction="none").view(2, 16)
        assert nll._pg_pos[1, 0].item() == 41 and nll._pg_pos[0, 15].item() == 16
        loss_sum = torch.zeros((), dtype=torch.float64)
        loss_sum += nll[0, 8:].to(torch.float64).sum()
        loss_sum += nll[1, 8:].to(torch.float64).sum()
        val_loss = (loss_sum / 16).item()
    records = [TRACKER.records[r] for r in sorted(loss_sum._pg_prov)]
    positions = np.concatenate([r.positions for r in records])
    values = np.concatenate([r.values for r in records])
    assert sorted(positions.tolist()) == list(range(9, 17)) + list(range(49, 57))
    assert values.sum() / 16 == pytest.approx(val_loss)
    assert any(abs(v - val_loss) < 1e-12 and p == loss_sum._pg_prov for v, p, _ in TRACKER.items)


def test_mean_cross_entropy_records_every_term(open_pass):
    with TrackMode():
        tokens = track.tag_stream(STREAM.clone())
        y = tokens[1:33].view(2, 16)
        logits = torch.randn(2, 16, VOCAB)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
    (rid,) = loss._pg_prov
    rec = TRACKER.records[rid]
    assert rec.positions.tolist() == list(range(1, 33))
    assert rec.values.mean() == pytest.approx(loss.item(), rel=1e-6)


def test_gather_of_log_probs_and_numpy_round_trip(open_pass):
    with TrackMode():
        tokens = track.tag_stream(STREAM.clone())
        y = tokens[5:15]
        lp = torch.log_softmax(torch.randn(10, VOCAB), -1)
        nll = -lp.gather(1, y.unsqueeze(1)).squeeze(1)
        arr = nll.double().numpy()
        assert isinstance(arr, track.TArr) and arr._pg_pos.tolist() == list(range(5, 15))
        mixed = -np.log(np.clip(0.5 * np.exp(-arr) + 0.5 / VOCAB, 1e-12, 1.0))
        assert mixed._pg_pos.tolist() == list(range(5, 15))
        total = float(mixed[2:].sum())
        back = track.from_numpy(torch.from_numpy)(mixed)
        assert back._pg_pos.tolist() == list(range(5, 15))
    rec = [r for r in TRACKER.records.values() if r.kind.startswith("np")][-1]
    assert rec.positions.tolist() == list(range(7, 15))
    assert rec.values.sum() == pytest.approx(total)


def test_untagged_work_is_left_alone():
    with TrackMode():
        a = torch.arange(10.0)
        b = (a * 2).sum()
    assert track.pos_of(b) is None and not track.prov_of(b)


def test_a_numpy_mixer_s_window_sums_are_the_scored_losses(open_pass):
    """The model's losses and a mixer's own per-window sums both reach the accumulator; the
    capture keeps the latest score of each target, the mixed one."""
    from auditor.runtime.capture import select_scored
    from auditor.runtime.track_numpy import to_tarr

    total, count = 0.0, 0
    for start in (0, 4):
        pos = np.arange(start, start + 4)
        neural = to_tarr(np.array([1.0, 2.0, 3.0, 0.5]) + start, pos)
        float(neural.sum())  # the model's losses reach a float too (a diagnostic)
        mixed = -np.log(np.clip(np.exp(-neural) * 0.9 + 0.01, 1e-10, 1.0))
        total += float(mixed.sum())
        count += 4
    strategy, chosen, loss, why = select_scored(open_pass, [total / count])
    assert loss == pytest.approx(total / count), why
    assert strategy == "provenance-union-latest"
    assert sorted(p for r in chosen for p in r.positions.tolist()) == list(range(8))


def test_exact_zeros_count_only_when_the_returned_mean_counts_them(open_pass):
    """A mixture clipped to probability 1 scores a target at exactly 0: a scored term when the
    returned mean counts it; a masked-out term when the mean leaves it out."""
    from auditor.runtime.capture import WITH_ZEROS, select_scored
    from auditor.runtime.track_numpy import to_tarr

    nll = to_tarr(np.array([1.0, 0.0, 3.0, 2.0]), np.arange(4))
    total = float(nll.sum())
    strategy, _, loss, why = select_scored(open_pass, [total / 4])
    assert strategy.endswith(WITH_ZEROS) and loss == pytest.approx(total / 4), why
    strategy, _, loss, why = select_scored(open_pass, [total / 3])
    assert not strategy.endswith(WITH_ZEROS) and loss == pytest.approx(total / 3), why


def test_a_window_score_read_out_and_added_to_a_tensor_accumulator_keeps_its_records(open_pass):
    """``loss_sum += float(seg_nll.sum())`` into a float64 tensor: the number added is the one just
    read out, so the accumulator carries that window's records, and a second accumulator fed on
    the next line carries only its own."""
    from auditor.runtime.track_numpy import to_tarr

    with TrackMode():
        mixed_sum = torch.zeros((), dtype=torch.float64)
        model_sum = torch.zeros((), dtype=torch.float64)
        for start in (0, 4):
            pos = np.arange(start, start + 4)
            model_nll = to_tarr(np.array([1.0, 2.0, 3.0, 0.5]) + start, pos)
            mixed_nll = 0.5 * model_nll
            mixed_sum += float(mixed_nll.sum())
            model_sum += float(model_nll.sum())
        value = (mixed_sum / 8).item()
    mixed_records = [TRACKER.records[r] for r in sorted(track.prov_of(mixed_sum))]
    assert len(mixed_records) == 2 and not track.prov_of(mixed_sum) & track.prov_of(model_sum)
    assert sum(float(r.values.sum()) for r in mixed_records) / 8 == pytest.approx(value)


def test_a_number_never_read_out_of_a_score_carries_nothing(open_pass):
    with TrackMode():
        acc = torch.zeros((), dtype=torch.float64)
        acc += 2.5
    assert not track.prov_of(acc)


def test_a_sum_over_experts_keeps_the_target_a_sum_over_targets_records(open_pass):
    """A mixture summed over its experts is still the score of one target (an expert read from a
    hashed table has no position of its own); a window's sum over targets is a reduction."""
    with TrackMode():
        tokens = track.tag_stream(STREAM.clone())
        y = tokens[1:9].view(2, 4)
        model_p = torch.softmax(torch.randn(2, 4, VOCAB), -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
        table_p = torch.rand(2, 4)  # no stream position
        mixed = (torch.full((2, 4, 2), 0.5) * torch.stack([model_p, table_p], dim=-1)).sum(dim=-1)
        assert mixed._pg_pos.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
        before = len(TRACKER.records)
        window = (-torch.log(mixed)).sum(dim=-1)
    assert len(TRACKER.records) == before + 1 and track.pos_of(window) is None


def test_the_last_line_that_scored_a_target_decides_and_counts_every_score_it_made():
    """Rescoring on a later line replaces a target's scores; a line that scored a target twice
    (a last window whose scoring starts at 0) counts it twice."""
    from auditor.runtime.capture import _latest_site

    def rec(rid, positions, line):
        return track.Record(rid, np.array(positions), np.ones(len(positions)), "np-sum", False, site=("eval.py", line))

    first = [rec(1, [1, 2], 10), rec(2, [3, 4], 10), rec(3, [3, 4], 10)]  # the tail scored twice
    rescored = [rec(4, [1, 2], 20)]  # a second pass over the first window
    kept = _latest_site(first + rescored)
    assert [(r.rid, r.positions.tolist()) for r in kept] == [(2, [3, 4]), (3, [3, 4]), (4, [1, 2])]

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

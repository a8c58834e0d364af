"""The CPU dtype policy (auditor.runtime.dtypes): bf16 activations meet float32 modules."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from auditor.runtime import dtypes, track  # noqa: E402


def test_a_matrix_product_of_bf16_and_float32_stops_without_the_policy():
    x = torch.randn(2, 3, 4, dtype=torch.bfloat16)
    with pytest.raises(RuntimeError):
        F.linear(x, torch.randn(5, 4))


@pytest.mark.parametrize("op", [
    lambda x, w: F.linear(x, w),
    lambda x, w: x @ w.T,
    lambda x, w: torch.einsum("btd,ed->bte", x, w),
    lambda x, w: torch.bmm(x, w.T.expand(2, 4, 5)),
])
def test_mixed_operands_compute_in_the_widest_dtype(op):
    x = torch.randn(2, 3, 4, dtype=torch.bfloat16)
    w = torch.randn(5, 4)
    with track.TrackMode(cpu=True):
        out = op(x, w)
    assert out.dtype == torch.float32
    assert torch.allclose(out, op(x.float(), w), atol=0, rtol=0)


def test_operands_that_agree_are_untouched():
    x = torch.randn(3, 4, dtype=torch.bfloat16)
    w = torch.randn(5, 4, dtype=torch.bfloat16)
    args, kwargs = dtypes.consistent("linear", (x, w), {}, lambda t, d: t.to(d))
    assert args[0] is x and args[1] is w
    args, _ = dtypes.consistent("add", (x, w.float()), {}, lambda t, d: t.to(d))  # not a policy operation
    assert args[1].dtype == torch.float32


def test_a_source_written_into_a_tensor_takes_its_dtype():
    with track.TrackMode(cpu=True):
        acc = torch.zeros(4, dtype=torch.float64)
        acc.index_add_(0, torch.tensor([1, 1]), torch.tensor([0.5, 0.25], dtype=torch.bfloat16))
        ema = torch.zeros(3)
        ema.lerp_(torch.ones(3, dtype=torch.bfloat16), 0.5)
    assert acc.dtype == torch.float64 and acc.tolist() == [0.0, 0.75, 0.0, 0.0]
    assert ema.dtype == torch.float32 and ema.tolist() == [0.5, 0.5, 0.5]


def test_a_cast_keeps_the_stream_tags_and_the_gradient():
    x = torch.randn(6, 4, dtype=torch.bfloat16)
    track.tag(x, torch.arange(24).view(6, 4), frozenset({7}))
    seen = []
    cast = lambda t, d: seen.append(track._cast(t, d)) or seen[-1]  # noqa: E731
    w = torch.randn(5, 4, requires_grad=True)
    dtypes.consistent("linear", (x, w), {}, cast)
    assert seen and track.pos_of(seen[0]) is not None and track.prov_of(seen[0]) == frozenset({7})
    with track.TrackMode(cpu=True):
        F.linear(x, w).sum().backward()
    assert w.grad is not None and w.grad.dtype == torch.float32

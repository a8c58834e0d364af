"""The baseline GPT: parameter count, names, logits/loss, causality, dtypes."""

from __future__ import annotations

import pytest
import torch

from reference_impl.model import GPT, GPTConfig, cast_for_bf16


def test_baseline_has_the_records_parameter_count_and_shapes():
    model = GPT(GPTConfig.baseline())
    assert model.num_params() == 17_059_912
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["tok_emb.weight"] == (1024, 512)
    assert shapes["skip_weights"] == (4, 512)
    assert shapes["blocks.0.attn.c_q.weight"] == (512, 512)
    assert shapes["blocks.0.attn.c_k.weight"] == (256, 512)  # 4 KV heads x 64
    assert shapes["blocks.8.mlp.fc.weight"] == (1024, 512)
    assert shapes["blocks.8.resid_mix"] == (2, 512)
    assert shapes["blocks.3.attn.q_gain"] == (8,)
    assert len(shapes) == 2 + 9 * 10  # no lm_head: the embedding is tied
    # the challenge's state-dict layout: no persistent buffers, tied head absent
    assert list(model.state_dict()) == list(shapes)


def test_fresh_model_starts_with_zero_output_projections():
    model = GPT(GPTConfig.tiny())
    assert not any(b.attn.proj.weight.any() or b.mlp.proj.weight.any() for b in model.blocks)
    assert float(model.tok_emb.weight.detach().std()) == pytest.approx(0.005, rel=0.1)


def test_logits_are_soft_capped_and_loss_is_their_cross_entropy(tiny_model):
    with torch.no_grad():
        tiny_model.tok_emb.weight.mul_(1000.0)  # huge raw logits
    x = torch.randint(0, 512, (2, 16))
    y = torch.randint(0, 512, (2, 16))
    logits = tiny_model.logits(x).detach()
    assert logits.shape == (2, 16, 512) and logits.dtype == torch.float32
    assert float(logits.abs().max()) <= 30.0
    assert float(logits.abs().max()) > 29.0  # the cap is reached, not merely respected
    nll = tiny_model.loss(x, y, reduction="none").detach()
    assert nll.shape == (2, 16)
    manual = -torch.log_softmax(logits, -1).gather(-1, y[..., None]).squeeze(-1)
    torch.testing.assert_close(nll, manual, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_model.loss(x, y).detach(), nll.mean())
    torch.testing.assert_close(tiny_model(x, y).detach(), nll.mean())


def test_logits_at_a_position_ignore_every_later_token(tiny_model):
    x = torch.randint(0, 512, (1, 48))
    changed = x.clone()
    changed[0, 20:] = torch.randint(0, 512, (28,))
    a, b = tiny_model.logits(x), tiny_model.logits(changed)
    assert torch.equal(a[0, :20], b[0, :20])
    assert not torch.allclose(a[0, 20:], b[0, 20:])  # and the later positions do see the change


def test_logits_do_not_depend_on_the_rest_of_the_batch(tiny_model):
    x = torch.randint(0, 512, (4, 32))
    alone = tiny_model.logits(x[1:2])
    together = tiny_model.logits(x)
    # The same float32 arithmetic per row unless a kernel's blocking depends on the batch size: a few
    # roundings of logits below 30 (ulp 1.9e-6); identical in practice. Another row leaking in moves them by O(1).
    torch.testing.assert_close(alone[0], together[1], rtol=0, atol=1e-5)


def test_cast_for_bf16_keeps_the_challenges_dtypes():
    model = cast_for_bf16(GPT(GPTConfig.tiny()))
    dtypes = {name: p.dtype for name, p in model.named_parameters()}
    assert dtypes["tok_emb.weight"] == torch.bfloat16
    assert dtypes["blocks.0.attn.c_q.weight"] == torch.float32
    assert dtypes["blocks.0.resid_mix"] == torch.float32
    assert dtypes["skip_weights"] == torch.float32
    assert model.rotary.inv_freq.dtype == torch.bfloat16  # as after the challenge's .bfloat16()


def test_untied_head_and_bad_shapes():
    model = GPT(GPTConfig.tiny(tie_embeddings=False))
    assert model.lm_head is not None
    assert model.logits(torch.zeros(1, 4, dtype=torch.int64)).abs().max() == 0  # zero-initialised head
    with pytest.raises(ValueError, match="num_kv_heads"):
        GPT(GPTConfig.tiny(num_heads=4, num_kv_heads=3))
    with pytest.raises(ValueError, match="logit_softcap"):
        GPT(GPTConfig.tiny(logit_softcap=0.0))


def test_training_signal_reaches_every_parameter(tiny_model):
    x = torch.randint(0, 512, (2, 16))
    tiny_model.train()
    tiny_model(x, x.roll(-1, 1)).backward()
    missing = [n for n, p in tiny_model.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0]
    assert missing == []

"""Training: the loss falls, the log lines are the challenge's, the wallclock cap stops the run,
warmup resets the state, and the optimizer split and schedules are the baseline's."""

from __future__ import annotations

import re

import pytest
import torch

from reference_impl.hparams import Hyperparameters
from reference_impl.model import GPT, GPTConfig, compute_dtype
from reference_impl.optim import build_optimizers, newton_schulz_orthogonalize
from reference_impl.rerun import parse_log
from reference_impl.train import lr_multiplier, run

# research/pipeline.md §6 (prefix-free forms: our logs carry no timestamps)
R_TRAIN = re.compile(r"^step:(?P<step>\d+)/(?P<iters>\d+) train_loss:(?P<loss>[\d.]+) train_time:(?P<ms>\d+)ms "
                     r"step_avg:(?P<avg>[\d.]+)ms$")
R_STEP_VAL = re.compile(r"^step:(?P<step>\d+)/(?P<iters>\d+) val_loss:(?P<loss>[\d.]+) val_bpb:(?P<bpb>[\d.]+) "
                        r"train_time:(?P<ms>\d+)ms step_avg:(?P<avg>[\d.]+)ms$")
R_STOP = re.compile(r"^stopping_early: wallclock_cap train_time:(?P<ms>\d+)ms step:(?P<step>\d+)/(?P<iters>\d+)$")
R_CONFIG = re.compile(r"^train_batch_tokens:(?P<tok>\d+) train_seq_len:(?P<seq>\d+) iterations:(?P<it>\d+) "
                      r"warmup_steps:(?P<wu>\d+) max_wallclock_seconds:(?P<cap>[\d.]+)$")
R_CODE = re.compile(r"^Code size:\s*(?P<bytes>\d+) bytes$")

TINY = dict(num_layers=2, model_dim=64, num_heads=4, num_kv_heads=2, train_seq_len=64, eval_stride=32,
            val_loss_every=0, train_log_every=5, final_evals="")


def tiny_hp(smoke_data, tmp_path, **overrides) -> Hyperparameters:
    dataset, tokenizer = smoke_data
    return Hyperparameters.smoke(data_path=str(dataset), tokenizer_path=str(tokenizer), out_dir=str(tmp_path),
                                 **{**TINY, **overrides})


@pytest.mark.slow
def test_tiny_training_run_learns_and_logs_in_the_challenges_format(smoke_data, tmp_path):
    hp = tiny_hp(smoke_data, tmp_path, iterations=40, val_loss_every=20, warmdown_iters=10)
    summary = run(hp, console=False)
    losses = [loss for _, loss in summary.train_losses]
    assert losses[0] > 6.0  # about ln(512) at the start
    assert sum(losses[-3:]) / 3 < losses[0] - 2.0
    (_, first_val, first_bpb), (_, _, last_bpb) = summary.val_points[0], summary.val_points[-1]
    assert first_val == pytest.approx(6.24, abs=0.1) and last_bpb < first_bpb - 1.0

    lines = summary.log_path.read_text().splitlines()
    train = [m for line in lines if (m := R_TRAIN.match(line))]
    assert [int(m["step"]) for m in train] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 35, 40]
    assert all(m["iters"] == "40" for m in train)
    vals = [m for line in lines if (m := R_STEP_VAL.match(line))]
    assert [int(m["step"]) for m in vals] == [0, 20, 40]
    assert any(R_CONFIG.match(line) for line in lines)
    assert f"model_params:{summary.model_params}" in lines
    assert any(R_CODE.match(line) for line in lines)
    assert not any(line.startswith("stopping_early") for line in lines)
    # the summary and the log agree (rerun.py builds submission.json from the log)
    facts = parse_log(summary.log_path)
    label, result = summary.final
    assert label == "final_int8_zlib_roundtrip" and facts.final["label"] == label
    assert facts.final["val_bpb"] == pytest.approx(result.val_bpb, abs=5e-9)
    assert facts.total_bytes == summary.artifact.total_bytes == summary.artifact_path.stat().st_size + facts.code_bytes
    assert facts.steps == 40 and facts.train_time_ms == round(summary.train_time_ms)


@pytest.mark.slow
def test_wallclock_cap_stops_the_run_and_says_so(smoke_data, tmp_path):
    hp = tiny_hp(smoke_data, tmp_path, iterations=100_000, max_wallclock_seconds=1.0, train_log_every=0)
    summary = run(hp, console=False)
    assert summary.stopped_early and 0 < summary.steps < 100_000
    assert summary.train_time_ms >= 1000.0
    lines = summary.log_path.read_text().splitlines()
    stop = [m for line in lines if (m := R_STOP.match(line))]
    assert len(stop) == 1 and int(stop[0]["step"]) == summary.steps and stop[0]["iters"] == "100000"
    last_val = [m for line in lines if (m := R_STEP_VAL.match(line))][-1]
    assert int(last_val["step"]) == summary.steps  # the stop step is validated, then the run ends


@pytest.mark.slow
def test_warmup_steps_are_undone_before_timed_training(smoke_data, tmp_path):
    plain = run(tiny_hp(smoke_data, tmp_path / "a", iterations=0), console=False)
    warmed = run(tiny_hp(smoke_data, tmp_path / "b", iterations=0, warmup_steps=3), console=False)
    assert warmed.val_points[0] == plain.val_points[0]  # same initial weights after the reset
    assert "warmup_step:3/3" in warmed.log_path.read_text().splitlines()


def test_lr_schedule_is_a_linear_warmdown_in_steps_or_wallclock():
    hp = Hyperparameters(iterations=100, warmdown_iters=20, max_wallclock_seconds=0.0)
    assert [lr_multiplier(hp, s, 0.0) for s in (0, 79, 80, 90, 99)] == [1.0, 1.0, 1.0, 0.5, 0.05]
    capped = Hyperparameters(warmdown_iters=10, max_wallclock_seconds=1.0)  # 1000 ms cap
    assert lr_multiplier(capped, 10, 500.0) == 1.0  # 50 ms/step: warmdown is the last 500 ms
    assert lr_multiplier(capped, 16, 800.0) == pytest.approx(200.0 / 500.0)
    assert lr_multiplier(capped, 20, 1200.0) == 0.0


def test_hyperparameters_read_the_challenges_environment_variables():
    env = {"ITERATIONS": "7", "TIE_EMBEDDINGS": "0", "MATRIX_LR": "0.02", "RUN_ID": "abc", "FINAL_EVALS": "ttt,ngram",
           "DATA_PATH": "/data/x"}
    hp = Hyperparameters.from_env(env)
    assert (hp.iterations, hp.tie_embeddings, hp.matrix_lr, hp.run_id) == (7, False, 0.02, "abc")
    assert hp.evaluators == ("ttt", "ngram")
    assert hp.train_files.endswith("fineweb_train_*.bin") and hp.val_files.startswith("/data/x")
    assert Hyperparameters.from_env({}).run_id  # a fresh uuid, as in the challenge
    assert hp.model_config() == GPTConfig(tie_embeddings=False)
    with pytest.raises(ValueError, match="unknown evaluator"):
        Hyperparameters.from_env({"FINAL_EVALS": "slot"}).validate()
    with pytest.raises(ValueError, match="ITERATIONS='ten' is not a valid int"):
        Hyperparameters.from_env({"ITERATIONS": "ten"})
    with pytest.raises(ValueError, match="QUANT_FORMAT"):
        Hyperparameters(quant_format="int4").validate()


@pytest.mark.parametrize("dtype", [None, torch.bfloat16])  # the CPU default (float32) and CUDA's bf16
def test_newton_schulz_makes_the_update_nearly_orthogonal(dtype):
    torch.manual_seed(0)
    for shape in ((64, 128), (128, 64)):  # wide and tall (the tall one is transposed inside)
        g = torch.randn(shape) * 3.0  # singular values spread over 6x
        out = newton_schulz_orthogonalize(g, dtype=dtype)
        assert out.shape == shape and out.dtype == (dtype or torch.float32)
        singular = torch.linalg.svdvals(out.float())
        # five quintic steps squeeze every singular value into about [0.68, 1.14], not exactly 1
        assert float(singular.min()) > 0.6 and float(singular.max()) < 1.2


def test_compute_dtype_is_bf16_on_cuda_only():
    assert compute_dtype(torch.device("cuda", 0)) == torch.bfloat16  # the challenge's precision on GPUs
    assert compute_dtype(torch.device("cpu")) == torch.float32


def test_optimizer_split_is_the_baselines():
    model = GPT(GPTConfig.tiny())
    optimizers, muon = build_optimizers(model, Hyperparameters())
    tok, muon_again, scalar = optimizers
    assert muon_again is muon
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in tok.param_groups[0]["params"]] == ["tok_emb.weight"]
    assert tok.param_groups[0]["lr"] == 0.05  # TIED_EMBED_LR
    matrices = {names[id(p)] for p in muon.param_groups[0]["params"]}
    # every 2-D block matrix except resid_mix, which is 2-D but a control tensor
    assert matrices == {n for n, p in model.named_parameters()
                        if n.startswith("blocks.") and p.ndim == 2 and "resid_mix" not in n}
    scalars = {names[id(p)] for p in scalar.param_groups[0]["params"]}
    assert {"skip_weights", "blocks.1.attn.q_gain", "blocks.0.resid_mix", "blocks.0.attn_scale"} <= scalars
    assert len(matrices) + len(scalars) + 1 == len(names)
    untied = GPT(GPTConfig.tiny(tie_embeddings=False))
    assert len(build_optimizers(untied, Hyperparameters(tie_embeddings=False))[0]) == 4

"""The log parser on the shapes real logs come in (all hand-written here)."""

from __future__ import annotations

import math

from auditor.records import samples as S
from auditor.records.logparse import key_values, parse_text

CODE_DUMP = '''"""train_gpt.py: a dumped copy of the script."""
import os
import torch
from pathlib import Path

def log0(msg):
    print(msg)

def main():
    log0(f"Total submission size int8+zlib: {total} bytes")
    log0(f"final_int8_zlib_roundtrip val_loss:{loss:.4f} val_bpb:{bpb:.4f} eval_time:{ms:.0f}ms")
# example output:
final_int8_zlib_roundtrip_exact val_loss:9.99999999 val_bpb:0.11111111
if __name__ == "__main__":
    main()
'''
SEPARATOR = "=" * 100 + "\n"


def test_baseline_log_figures():
    run = parse_text("a.log", S.baseline_log(42, model_bytes=15_818_312, train_ms=600_021, eval_ms=1396)).main_run
    assert run is not None
    assert run.seed.value == 42 and run.world().value == 8
    assert run.train_time().value == 600.021
    total = run.artifact_total()
    assert total.bytes == 15_818_312 + S.SCRIPT_BYTES and "int8+zlib" in total.text
    assert run.artifact_model().bytes == 15_818_312
    assert run.code_logged().value == S.SCRIPT_BYTES
    assert run.val_tokens.value == S.SP1024_TOKENS and run.train_shards.value == 80
    final = [s for s in run.scores if s.final]
    assert [s.raw_label for s in final] == ["final_int8_zlib_roundtrip", "final_int8_zlib_roundtrip_exact"]
    assert final[0].eval_s == 1.396 and final[1].decimals == 8


def test_raw_total_is_not_the_artifact():
    run = parse_text("a.log", S.baseline_log(1)).main_run
    raw = [t for t, _ in run.totals if t.fmt is None]
    assert raw and raw[0].bytes > 60_000_000
    assert run.artifact_total().fmt == "int8+zlib"


def test_code_dump_before_a_separator_is_dropped():
    text = CODE_DUMP + SEPARATOR + "Running Python 3.12.3\n" + S.baseline_log(7)
    parse = parse_text("logs/abc.txt", text)
    run = parse.main_run
    assert run is not None and run.seed.value == 7
    assert all(s.bpb != 0.11111111 for r in parse.runs for s in r.scores)
    assert parse.code_lines_dropped >= 1


def test_ansi_crlf_prefixes_and_rank_lines():
    lines = S.baseline_log(3).splitlines()
    noisy = []
    for i, line in enumerate(lines):
        if line.startswith("final_"):
            line = f"\x1b[32m{line}\x1b[0m"
        if line.startswith("stopping_early"):
            line = "1776142348.135 " + line
        if line.startswith("Total submission size int8"):
            line = "[2026-03-23 04:40:49] INFO: " + line
        noisy.append(line)
        if i == 5:
            noisy.append("[rank3]: final_int8_zlib_roundtrip val_loss:0.1000 val_bpb:0.0500 eval_time:1ms")
            noisy.append("W0426 19:59:28.614000 762659 torch/distributed/run.py:803] stopping_early: bogus")
    run = parse_text("a.log", "\r\n".join(noisy) + "\r\n").main_run
    assert run.train_time().value == 600.021
    assert run.artifact_total() is not None
    assert {s.bpb for s in run.scores if s.final} == {1.2247, 1.22471118}


def test_progress_bar_carriage_returns_keep_the_last_piece():
    text = S.baseline_log(1).replace(
        "final_int8_zlib_roundtrip val_loss", "eval 10%\reval 50%\rfinal_int8_zlib_roundtrip val_loss", 1
    )
    run = parse_text("a.log", text).main_run
    assert any(s.raw_label == "final_int8_zlib_roundtrip" for s in run.scores)


def test_several_runs_in_one_file():
    text = "Hyperparameters:\n  seed: 1\n" + S.baseline_log(1, bpb=1.30) + "Hyperparameters:\n  seed: 2\n" + S.baseline_log(2, bpb=1.20)
    parse = parse_text("sweep.log", text)
    assert len(parse.evidence_runs) == 2
    assert parse.main_run.seed.value == 2
    assert math.isclose(parse.main_run.scores[-1].bpb, 1.2, abs_tol=1e-8)


def test_truncated_last_line_does_not_invent_numbers():
    text = S.baseline_log(1)
    cut = text[: text.rindex("final_int8_zlib_roundtrip_exact") + len("final_int8_zlib_roundtrip_exact val_lo")]
    run = parse_text("a.log", cut).main_run
    assert [s.exact for s in run.scores if s.final] == [False]


def test_total_without_bytes_suffix_is_ignored():
    run = parse_text("a.log", "Total submission size int8+zlib: 1602").main_run
    assert run is None or run.artifact_total() is None


def test_modern_log_minutes_stop_and_hparams():
    run = parse_text("a.log", S.modern_log(42, train_ms=599_592, reserve_s=0.5)).main_run
    assert run.train_time().value == 599.592
    assert run.reserve.value == 599_500
    assert run.wallclock_cap_s() == 600.0
    assert run.world().value == 8 and run.hardware() == "NVIDIA H100 80GB HBM3"
    assert run.sidecar is not None and run.vocab.value == 8192
    assert run.total_eval.value == 455.1
    assert run.outside_timer[0].value == ("ttt_lora:compile warmup done", 137.6)
    assert [g.after_stop for g in run.gptq] == [True, True] and run.gptq[1].seconds == 3.1


def test_key_value_lines():
    assert key_values("final_sliding_window_exact sliding_bpb:1.14775606 val_bpb:0.39220592")[1:3] == ("val_bpb", "0.39220592")
    label, key, bpb, loss, _ = key_values("ppm_mix bytes=10982035 mix_bpb=1.000307 ppm_only=2.380212 nn_only=1.077557")
    assert (label, key, bpb, loss) == ("ppm_mix", "mix_bpb", "1.000307", None)
    assert key_values("sliding_progress: batch 2/9 tokens:40 running_loss:2.7 running_bpb:1.08 elapsed:7.6s") is None


def test_mixture_subset_counts_attach_to_the_score():
    run = parse_text("a.log", S.modern_log(1, after_eval="ppm_mix bytes=10982035 mix_bpb=1.000307\nppm_mix_time:47.1s subset=3000000 tokens\n")).main_run
    mix = run.scores[-1]
    assert mix.label == "ppm_mix:mix_bpb" and not mix.final
    assert mix.scored_bytes == 10_982_035 and mix.scored_tokens == 3_000_000


def test_binary_noise_and_long_lines_do_not_crash():
    text = "\x00\x01\x02garbage\n" + "x" * 100_000 + "\n" + S.baseline_log(5) + "\udcff\n"
    run = parse_text("a.log", text).main_run
    assert run is not None and run.seed.value == 5


def test_step_val_lines_are_not_scores():
    run = parse_text("a.log", S.baseline_log(1)).main_run
    assert all(not s.raw_label.startswith("step") for s in run.scores)
    assert run.step_vals and run.step_vals[0].value[0] == 0


def test_long_logs_are_applied_in_bounded_batches():
    from auditor.records import logparse

    steps = "".join(f"step:{i}/20000 train_loss:2.0 train_time:{i * 43}ms step_avg:43.00ms\n" for i in range(1, 30_001))
    head, tail = S.baseline_log(3).split("step:1/20000", 1)
    parse = logparse.parse_text("long.log", head + steps + "step:1/20000" + tail)
    run = parse.main_run
    assert run.steps_seen >= 30_000 and run.train_time().value == 600.021 and run.seed.value == 3


def test_gpu_model_is_the_most_common_one_and_the_first_listed_on_a_tie():
    from auditor.records.logparse import Run

    assert Run(0, 1, gpus=["RTX 5060 Ti", "RTX 5080"]).gpu_model() == "RTX 5060 Ti"
    assert Run(0, 1, gpus=["RTX 5080", "RTX 5060 Ti"]).gpu_model() == "RTX 5080"
    assert Run(0, 1, gpus=["A", "B", "B"]).gpu_model() == "B"


def _prefixed(text: str, prefix: str) -> str:
    """Every line of a log as torchrun writes a worker's output when it tees it."""
    return "".join(f"{prefix}{line}\n" for line in text.splitlines())


def test_torchrun_prefixed_lines_parse_like_plain_ones():
    plain = parse_text("a.log", S.modern_log(42, train_ms=599_592, reserve_s=0.5)).main_run
    for prefix in ("[default0]:", "[rank0]:", "[trainer0]:", "1776142348.135 [default0]:"):
        run = parse_text("a.log", _prefixed(S.modern_log(42, train_ms=599_592, reserve_s=0.5), prefix)).main_run
        assert run is not None, prefix
        assert run.train_time().value == 599.592
        assert run.artifact_total().bytes == plain.artifact_total().bytes
        assert run.artifact_model().bytes == plain.artifact_model().bytes
        assert run.seed.value == 42 and run.world().value == 8
        # a GPTQ pass after the wallclock stop is seen as such
        assert [g.after_stop for g in run.gptq] == [True, True]
        assert [(s.label, s.bpb) for s in run.scores if s.final] == [(s.label, s.bpb) for s in plain.scores if s.final]
        # periodic validation lines stay periodic (no "[default0]:4945/20000" stage label)
        assert run.step_vals and all("/" not in s.label for s in run.scores)


def test_only_one_worker_stream_is_read():
    # an unguarded script: every rank prints the same lines; each figure counts once
    text = S.baseline_log(3)
    lines = text.splitlines()
    interleaved = "".join(f"[default{r}]:{line}\n" for line in lines for r in (1, 0, 2))
    run = parse_text("a.log", interleaved).main_run
    plain = parse_text("a.log", text).main_run
    assert len(run.scores) == len(plain.scores) and run.steps_seen == plain.steps_seen
    # a log of one non-zero rank only is read too
    run3 = parse_text("a.log", _prefixed(text, "[rank3]:")).main_run
    assert run3 is not None and run3.train_time().value == 600.021 and len(run3.scores) == len(plain.scores)


def test_bracketed_labels_are_not_worker_prefixes():
    from auditor.records.patterns import clean_ranked

    assert clean_ranked("[val]: x") == (None, "[val]: x")
    assert clean_ranked("[SMOKE_TEST] val_bpb from this run") == (None, "[SMOKE_TEST] val_bpb from this run")
    assert clean_ranked("[default12]:[2026-03-23 04:40:49] INFO: seed:1") == (12, "seed:1")

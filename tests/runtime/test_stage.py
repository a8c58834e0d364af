"""The runtime follows the scored run: its settings keep their structure, and a pass is about the claimed stage."""

from __future__ import annotations

from auditor.discover import discover
from auditor.runtime import harness, loader
from auditor.runtime.harness import interpret
from auditor.runtime.knobs import Settings, knob_values
from auditor.runtime.protocol import DriverResult, PassRecord, ProbeRow, RunRecord, ScorerRecord
from auditor.runtime.sandbox import ChildResult
from auditor.runtime.stage import ClaimedStage, ScoredRuntime, stage_lines, stage_reasons

PATHS = {"data_path": "d", "tokenizer": "t.model", "data_dir": "d"}
STAGE = ClaimedStage("legal_ttt_exact", "train_seed42.log:40", "train_gpt.py:211")


def knobs(**defaults: str) -> dict[str, loader.Knob]:
    return {name: loader.Knob(name, default, 1) for name, default in defaults.items()}


def test_structure_keeps_the_scored_value_and_sizes_shrink():
    found = knobs(TTT_EPOCHS="1", NGRAM_EVAL_ORDER="0", SLOT_STEPS="24", TRAIN_SEQ_LEN="2048", MODEL_DIM="512",
                  MYSTERY_COUNT="5")
    scored = {"TTT_EPOCHS": "3", "NGRAM_EVAL_ORDER": "7", "SLOT_STEPS": "24", "TRAIN_SEQ_LEN": "2048",
              "MODEL_DIM": "512", "MYSTERY_COUNT": "9"}
    values = knob_values(found, Settings(), PATHS, scored=scored)
    assert values["TTT_EPOCHS"] == "3" and values["NGRAM_EVAL_ORDER"] == "7" and values["SLOT_STEPS"] == "24"
    assert values["MYSTERY_COUNT"] == "9"  # a role unknown here: as the scored run had it
    assert values["TRAIN_SEQ_LEN"] == str(Settings().seq_len) and values["MODEL_DIM"] == str(Settings().model_dim)


def test_without_a_scored_value_epochs_and_steps_keep_their_defaults():
    values = knob_values(knobs(TTT_EPOCHS="3", GLOBAL_TTT_EPOCHS="2", SLOT_STEPS="24"), Settings(), PATHS)
    assert not {"TTT_EPOCHS", "GLOBAL_TTT_EPOCHS", "SLOT_STEPS"} & set(values)


def test_a_world_size_default_follows_the_scored_run():
    found = {"NGRAM_CACHE": loader.Knob("NGRAM_CACHE", None, 1, multi_gpu_default="1")}
    assert knob_values(found, Settings(), PATHS, world_size=8)["NGRAM_CACHE"] == "1"
    assert "NGRAM_CACHE" not in knob_values(found, Settings(), PATHS, world_size=1)
    assert knob_values(found, Settings(), PATHS)["NGRAM_CACHE"] == "1"  # unknown: the challenge's 8 GPUs


def result(lines: list[str], returned: list[float]) -> DriverResult:
    probes = [ProbeRow(p, "pass", "ok", {}, "eval_val_ttt") for p in ("determinism", "future", "substitution")]
    return DriverResult(
        phase="done", pipeline_ran=True, stage_lines=lines,
        runs=[RunRecord("baseline", 1.0, None, [PassRecord("eval_val_ttt", 0, 0, 0.1, returned, True, scored=10)])],
        scorers=[ScorerRecord("eval_val_ttt", final=True, probes=probes)],
    )


def test_a_pass_needs_the_claimed_stage_printed_with_a_captured_value():
    printed = ["legal_ttt_exact val_loss:4.15888308 val_bpb:2.99999999"]
    ok = interpret(ChildResult(result(printed, [4.158883083, 3.0]), 0, 1.0), stages=(STAGE,))
    assert ok.status == "pass", ok.reasons
    never = interpret(ChildResult(result(["final_sliding val_loss:4.1589 val_bpb:3.0"], [4.158883083, 3.0]), 0, 1.0),
                      stages=(STAGE,))
    assert never.status == "inconclusive"
    assert never.reasons[0].startswith("the scored stage legal_ttt_exact (train_seed42.log:40")
    assert "was not exercised: the sandboxed run never printed its line" in never.reasons[0]
    other = interpret(ChildResult(result(printed, [5.0, 3.5]), 0, 1.0), stages=(STAGE,))
    assert other.status == "inconclusive" and "none a captured evaluation returned" in other.reasons[0]
    assert interpret(ChildResult(result([], [5.0]), 0, 1.0)).status == "pass"  # no claimed stage: as before


def test_the_stage_scorer_is_matched_by_value_at_the_printed_precision():
    passes = [PassRecord("eval_a", 0, 0, 0.1, [1.23456], True), PassRecord("eval_b", 0, 0, 0.1, [2.5], True)]
    assert stage_reasons(STAGE, ["legal_ttt_exact val_loss:2.5000 val_bpb:1.8034"], passes) == ([], "eval_b")
    assert stage_reasons(STAGE, ["legal_ttt_exact val_loss:9.0 val_bpb:1.2346"], passes) == ([], "eval_a")
    incomplete = [PassRecord("eval_b", 0, 0, 0.1, [2.5], False)]
    assert stage_reasons(STAGE, ["legal_ttt_exact val_loss:2.5000 val_bpb:1.8034"], incomplete)[1] is None


def test_a_claimed_training_time_validation_is_matched_on_its_step_lines():
    step = ClaimedStage("step", "train.log:84", "train_gpt.py:1552")
    output = "step:1/4 train_loss:6.9 train_time:10ms\nstep:4/4 val_loss:2.5000 val_bpb:1.8034 train_time:40ms\n"
    lines = stage_lines(output, ["step"])
    assert lines == ["step:4/4 val_loss:2.5000 val_bpb:1.8034 train_time:40ms"]  # not the progress line
    passes = [PassRecord("eval_a", 0, 0, 0.1, [1.23456], True), PassRecord("eval_b", 0, 0, 0.1, [2.5], True)]
    assert stage_reasons(step, lines, passes) == ([], "eval_b")
    assert stage_reasons(step, [], passes)[1] is None


def test_a_scored_value_the_script_cannot_parse_like_its_default_is_left_out():
    values = knob_values(knobs(TIE_EMBEDDINGS="1", COMPRESSOR="zlib"), Settings(), PATHS,
                         scored={"TIE_EMBEDDINGS": "True", "COMPRESSOR": "lzma"})
    assert "TIE_EMBEDDINGS" not in values and values["COMPRESSOR"] == "lzma"


def test_code_read_as_a_value_is_not_a_setting(tmp_path):
    from auditor.discover import discover
    from auditor.evidence import Evidence
    from auditor.runtime.stage import scored_runtime

    (tmp_path / "train_gpt.py").write_text(
        "import os\n"
        "class Hyperparameters:\n"
        "    ve_layers = os.environ.get('VE_LAYERS', '9,10')\n"
        "    ttt_epochs = int(os.environ.get('TTT_EPOCHS', '1'))\n"
        "def main():\n"
        "    args = Hyperparameters()\n"
        "    print(f'ttt:start epochs={args.ttt_epochs}')\n"
        "    print(f'final_ttt_exact val_loss:{2.0:.8f} val_bpb:{1.2:.8f}')\n"
        "if __name__ == '__main__':\n"
        "    main()\n")
    # the script dumped into its log: its lines are code, not the run's values
    (tmp_path / "train_seed42.log").write_text(
        "    ve_layers = os.environ.get('VE_LAYERS', '9,10')\n"
        "ttt:start epochs=3\nfinal_ttt_exact val_loss:2.00000000 val_bpb:1.20000000\n")
    evidence = Evidence(discover([tmp_path])[0])
    scored = scored_runtime(evidence.scored, evidence.program)
    assert scored.env["TTT_EPOCHS"] == "3" and scored.sources["TTT_EPOCHS"] == "train_seed42.log:2"
    assert scored.sources.get("VE_LAYERS", "default").startswith("default")  # the dumped line set nothing
    assert [st.label for st in scored.stages] == ["final_ttt_exact"]


def test_a_claim_whose_stage_no_log_names_is_never_a_pass(tmp_path):
    from auditor.discover import discover
    from auditor.evidence import Evidence
    from auditor.runtime.stage import scored_runtime

    (tmp_path / "train_gpt.py").write_text("print('final val_bpb:1.2')\n")
    (tmp_path / "submission.json").write_text('{"val_bpb": 1.2, "track": "track_10min_16mb"}')
    evidence = Evidence(discover([tmp_path])[0])
    scored = scored_runtime(evidence.scored, evidence.program, evidence.records)
    assert not scored.stages and "submission.json claims val_bpb 1.2" in scored.unknown_stage
    out = interpret(ChildResult(result([], [5.0]), 0, 1.0), unknown_stage=scored.unknown_stage)
    assert out.status == "inconclusive" and out.reasons[0].startswith("the scored stage is unknown (submission.json")
    (tmp_path / "submission.json").unlink()  # nothing claimed: the run's own evaluations decide
    evidence = Evidence(discover([tmp_path])[0])
    assert scored_runtime(evidence.scored, evidence.program, evidence.records).unknown_stage == ""


def test_a_width_equal_to_the_model_width_in_the_scored_run_shrinks_with_it():
    found = knobs(MODEL_DIM="512", EMBEDDING_DIM="512", VE_DIM="128", BIGRAM_DIM="512", HEAD_LR="512")
    values = knob_values(found, Settings(), PATHS, scored={"BIGRAM_DIM": "256"})
    width = str(Settings().model_dim)
    assert values["MODEL_DIM"] == width and values["EMBEDDING_DIM"] == width  # tied by the defaults
    assert "VE_DIM" not in values  # a different width keeps its value
    assert values["BIGRAM_DIM"] == "256"  # the scored run had them differ: as it ran
    assert "HEAD_LR" not in values  # not a width


def test_widths_tie_through_the_scored_values():
    found = knobs(MODEL_DIM="512", EMBEDDING_DIM="512")
    values = knob_values(found, Settings(), PATHS, scored={"MODEL_DIM": "768", "EMBEDDING_DIM": "768"})
    assert values["EMBEDDING_DIM"] == values["MODEL_DIM"] == str(Settings().model_dim)
    values = knob_values(found, Settings(), PATHS, scored={"MODEL_DIM": "768"})
    assert "EMBEDDING_DIM" not in values  # its default 512 against the run's 768: not tied, left alone


def test_a_setting_the_script_rejects_is_given_back_its_real_value():
    from auditor.runtime.knobs import restored_sizes

    found = knobs(MODEL_DIM="512", NUM_HEADS="8", NGRAM_EVAL_ORDER="7", NGRAM_EVAL_BUCKETS="4194304", TTT_CHUNK="2048",
                  EMBEDDING_DIM="512")
    applied = {"MODEL_DIM": "32", "NUM_HEADS": "2", "NGRAM_EVAL_BUCKETS": "64", "TTT_CHUNK": "256",
               "EMBEDDING_DIM": "32", "VOCAB_SIZE": "64"}
    named = restored_sizes("ValueError", "TTT_CHUNK must be a multiple of 1024, got 256", applied, found,
                           {"TTT_CHUNK": "2048"})
    assert named == {"TTT_CHUNK": "2048"}
    heads = restored_sizes("ValueError", "MODEL_DIM / NUM_HEADS must be 64", applied, found)
    assert heads == {"MODEL_DIM": None, "NUM_HEADS": None, "EMBEDDING_DIM": None}  # the tied width goes back too
    shapes = restored_sizes("RuntimeError", "The size of tensor a (512) must match the size of tensor b (32)",
                            applied, found)
    assert shapes == {"MODEL_DIM": None, "NUM_HEADS": None, "EMBEDDING_DIM": None}  # unset: the script's defaults
    # a hashed table kept as large as the real one would hide collisions: never restored, only
    # raised to the least size the script's own message accepts
    assert restored_sizes("ValueError", "NGRAM_EVAL_BUCKETS must be >= 1024, got 64", applied, found) == {
        "NGRAM_EVAL_BUCKETS": "1024"}
    assert restored_sizes("ValueError", "NGRAM_EVAL_BUCKETS must be a power of two >= 3000, got 64", applied,
                          found) == {"NGRAM_EVAL_BUCKETS": "4096"}
    assert restored_sizes("ValueError", "NGRAM_EVAL_BUCKETS must be a power of two, got 64", applied, found) == {}
    assert restored_sizes("ValueError", "VOCAB_SIZE must match the tokenizer", applied, found) == {}
    assert restored_sizes("UnboundLocalError", "cannot access local variable 'model'", applied, found) == {}


def test_a_setting_left_at_its_default_that_the_script_refuses_gets_the_scored_value():
    """A script that runs only on the scored run's 8 processes (``requires WORLD_SIZE=8, got 1``)
    runs as one of them; a name the scored run gave no value, or a bare mention, changes nothing."""
    from auditor.runtime.knobs import restored_sizes

    found = knobs(WORLD_SIZE="1", MODEL_DIM="512")
    applied = {"MODEL_DIM": "32"}
    message = "Donnie 8x requires WORLD_SIZE=8, got 1. Launch with: torchrun --nproc_per_node=8"
    assert restored_sizes("ValueError", message, applied, found, {"WORLD_SIZE": "8"}) == {"WORLD_SIZE": "8"}
    assert restored_sizes("ValueError", message, applied, found, {}) == {}
    assert restored_sizes("ValueError", message, applied, found, {"WORLD_SIZE": "1"}) == {}  # already so


def test_a_scored_value_the_script_cannot_parse_is_dropped():
    from auditor.runtime.knobs import restored_sizes

    found = knobs(TTT_EVAL_BATCHES="", MODEL_DIM="512")
    applied = {"TTT_EVAL_BATCHES": "1776142360.542", "MODEL_DIM": "32"}
    message = "invalid literal for int() with base 10: '1776142360.542'"
    assert restored_sizes("ValueError", message, applied, found, {"TTT_EVAL_BATCHES": "1776142360.542"}) == {
        "TTT_EVAL_BATCHES": None}
    assert restored_sizes("ValueError", "invalid literal for int() with base 10: '32x'", applied, found) == {}


def test_a_stopped_run_says_what_stopped_it():
    from auditor.runtime.harness import stop_cause
    from auditor.runtime.protocol import ErrorInfo

    def cause(message: str, kind: str = "error", type_: str = "RuntimeError") -> str:
        return stop_cause(ErrorInfo(type=type_, message=message, kind=kind), {"NGRAM_EVAL_BUCKETS": "64"})

    assert cause("expected m1 and m2 to have the same dtype, but got: c10::BFloat16 != float") == "dtype mismatch"
    assert cause("The size of tensor a (512) must match the size of tensor b (32)").startswith("shape mismatch")
    assert cause("NGRAM_EVAL_BUCKETS must be a power of two >=1024, got 64", type_="ValueError") == \
        "the script rejected a shrunk setting: NGRAM_EVAL_BUCKETS=64"
    assert cause("operator cutlass_evt::gemm_mul does not exist").startswith("a GPU-only kernel was needed")
    assert cause("No module named 'x'", kind="import") == "import failed"
    assert cause("cannot access local variable 'eval_model'", type_="UnboundLocalError") == "error"


def test_a_label_composed_from_a_line_s_words_finds_that_line():
    from auditor.runtime.stage import printed_scores, stage_lines

    output = "\n".join(["quantized val_loss:4.15643787 val_bpb:3.52490680",
                        "ppm_mix bytes=1742 mix_bpb=3.481651 ppm_only=4.707621 nn_only=3.507676",
                        "mix_bpb is computed below"])
    (score,) = printed_scores(["ppm_mix bytes=1 mix_bpb=0.90236 ppm_only=2.1"], "ppm_mix mix_bpb")  # a seed log's
    lines = stage_lines(output, [score.raw_label])
    assert lines == [output.splitlines()[1]]
    stage = ClaimedStage(score.raw_label, "train_seed1337.log:248", "train_gpt.py:1526")
    passes = [PassRecord("ppm_eval", 0, 0, 0.1, [3.4816512], True, scored=10)]
    assert stage_reasons(stage, lines, passes) == ([], "ppm_eval")


def test_a_mechanism_the_claimed_line_shows_must_act_in_the_sandboxed_run():
    """The seed log's claimed line prints the model's bpb and the mixture's apart; a sandboxed
    run that prints them equal never ran the mixture, and its pass would not be about it."""
    stage = ClaimedStage("final_sliding_window_exact", "train_seed1337.log:90", "train_gpt.py:1462",
                         "final_sliding_window_exact sliding_bpb:1.14775606 val_bpb:0.39220592")
    passes = [PassRecord("eval_val_sliding", 0, 0, 0.1, [4.151, 3.52673995, 3.52673995], True, scored=10)]
    dormant = ["final_sliding_window_exact sliding_bpb:3.52673995 val_bpb:3.52673995"]
    reasons, scorer = stage_reasons(stage, dormant, passes)
    assert scorer is None and "did not act" in reasons[0] and "sliding_bpb" in reasons[0]
    passes = [PassRecord("eval_val_sliding", 0, 0, 0.1, [4.151, 3.52673995, 3.10000001], True, scored=10)]
    active = ["final_sliding_window_exact sliding_bpb:3.52673995 val_bpb:3.10000001"]
    assert stage_reasons(stage, active, passes) == ([], "eval_val_sliding")
    plain = ClaimedStage("final_sliding_window_exact", "train_seed1337.log:90", "train_gpt.py:1462",
                         "final_sliding_window_exact sliding_bpb:1.14775606 val_bpb:1.14775606")
    model_only = [PassRecord("eval_val_sliding", 0, 0, 0.1, [3.52673995], True, scored=10)]
    assert stage_reasons(plain, dormant, model_only) == ([], "eval_val_sliding")


def _account(name: str, bpb: float, tokens: int = 1000, nbytes: int = 1700):
    import math

    from auditor.runtime.protocol import ByteAccount

    nll_sum = bpb * nbytes * math.log(2.0)
    return ByteAccount(name, 0, tokens, tokens, nll_sum, nll_sum / tokens, [], nbytes, nbytes)


def test_the_captured_losses_must_be_the_ones_behind_the_claimed_figure():
    """A function that returns the model's bpb and a mixture's, and prints the mixture's as the
    claim: a capture of the model's losses would probe the model, not the claim."""
    stage = ClaimedStage("final_exact", "train.log:9", "train_gpt.py:90", "final_exact sliding_bpb:1.1478 val_bpb:0.3922")
    passes = [PassRecord("eval_mix", 0, 0, 0.1, [2.43, 3.5116, 3.1002], True, scored=1000)]
    lines = ["final_exact sliding_bpb:3.5116 val_bpb:3.1002"]
    reasons, scorer = stage_reasons(stage, lines, passes, [_account("eval_mix", 3.5116)])
    assert scorer is None and "3.5116 bits per byte" in reasons[0] and "prints 3.1002" in reasons[0]
    assert stage_reasons(stage, lines, passes, [_account("eval_mix", 3.1002)]) == ([], "eval_mix")
    # bytes unknown (another tokenizer, nothing captured): the value match alone decides, as before
    assert stage_reasons(stage, lines, passes, None) == ([], "eval_mix")
    assert stage_reasons(stage, lines, passes, [_account("other_eval", 3.5116)]) == ([], "eval_mix")


def test_a_dormant_stage_is_run_once_more_on_a_grown_stream(tmp_path, monkeypatch):
    """The claimed line shows two figures apart; the shrunk run prints them equal. The harness
    runs once more on the grown stream, substituting at its end, and concludes from that run."""
    (tmp_path / "train_gpt.py").write_text("def eval_val():\n    return 1.0\n")
    stage = ClaimedStage("final_exact", "train.log:9", "train_gpt.py:90", "final_exact sliding_bpb:1.1478 val_bpb:0.3922")
    runs = iter([["final_exact sliding_bpb:3.5116 val_bpb:3.5116"], ["final_exact sliding_bpb:3.5116 val_bpb:3.1002"]])
    jobs = []

    def fake_child(files, job, limits, progress=None):
        jobs.append((job["settings"], limits.wall_s))
        return ChildResult(result(next(runs), [2.43, 3.5116, 3.1002]), 0, 1.0)

    monkeypatch.setattr(harness, "run_child", fake_child)
    out = harness.causality_of(discover([tmp_path])[0], {"val_tokens": 1024}, scored=ScoredRuntime(stages=(stage,)))
    assert out.status == "pass", out.reasons
    assert [s.get("late_substitution", False) for s, _ in jobs] == [False, True]
    assert jobs[1][0]["val_tokens"] == harness.GROWN_VAL_TOKENS and jobs[1][1] >= jobs[0][1]
    assert "grown to 65536 tokens" in out.adjustments[0] and "did not act" in out.adjustments[0]
    # a stage that stays idle on the grown stream stays inconclusive for that reason
    runs = iter([["final_exact sliding_bpb:3.5116 val_bpb:3.5116"]] * 2)
    out = harness.causality_of(discover([tmp_path])[0], {"val_tokens": 1024}, scored=ScoredRuntime(stages=(stage,)))
    assert out.status == "inconclusive" and "did not act" in out.reasons[0]

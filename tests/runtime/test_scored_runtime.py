"""The sandbox runs the scored configuration and passes only when the claimed stage was exercised.

Two fixture submissions with seed logs (fixtures/scored_runtime): a TTT evaluation whose logs
say it ran three epochs while its default is one, and a claimed stage only eight GPUs reach.
A copy of the first whose TTT is off by default, with no run command, is switched on by the
claimed line itself: it was printed inside ``if args.ttt_enabled:``. Another copy calls its
scorer by a name no evaluation has: it is captured because the claimed line prints what it
returns. Two more compute the TTT score inline in ``main`` (score first, and train first):
the block that computes the claimed numbers is captured and probed.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.discover import discover
from auditor.evidence import AuditContext, Evidence
from auditor.runtime.harness import Causality
from auditor.runtime.sandbox import sandbox_problem

from ..conftest import REPO_ROOT
from .conftest import LIMITS, SETTINGS

FIXTURES = REPO_ROOT / "fixtures" / "scored_runtime"


#: An evaluation called after the claimed one (the last call is not always the reported one):
#: an untrained model's loss, for reference (the adapted model has seen the whole stream).
DIAGNOSTIC = """\
        total = val_tokens.numel() - 1
        starts = window_starts(total, args.train_seq_len, args.eval_stride)
        fresh = GPT(args.vocab_size, args.model_dim, args.num_heads, args.num_layers, args.train_seq_len)
        with torch.inference_mode():
            ls, tc, bc = score_windows(fresh, val_tokens, starts, args.train_seq_len, args.eval_stride, total, byte_lut)
        print(f"untrained_reference val_loss:{float(ls) / tc:.4f}")
"""


#: The TTT evaluation written inline in ``main``, as many submissions do: no function returns
#: the claimed numbers. ``{first}`` and ``{second}`` order scoring and training on a chunk.
INLINE = """\
    if args.ttt_enabled:
        seq = args.train_seq_len
        total = val_tokens.numel() - 1
        stride = args.eval_stride
        chunks = assign_chunks(window_starts(total, seq, stride), seq, stride, total, args.ttt_chunk_tokens)
        opt = torch.optim.SGD(model.parameters(), lr=args.ttt_lr, momentum=0.9)
        loss_sum = torch.zeros((), dtype=torch.float64)
        token_count = 0.0
        byte_count = 0.0
        for ci, windows in enumerate(chunks):
            start, end = ci * args.ttt_chunk_tokens, min((ci + 1) * args.ttt_chunk_tokens, total)
            {first}
            {second}
        loss = (loss_sum / token_count).item()
        bpb = loss / math.log(2.0) * token_count / byte_count
        print(f"legal_ttt_exact val_loss:{{loss:.8f}} val_bpb:{{bpb:.8f}}")
"""
SCORE = """model.eval()
            with torch.inference_mode():
                ls, tc, bc = score_windows(model, val_tokens, windows, seq, stride, total, byte_lut)
            loss_sum += ls
            token_count += tc
            byte_count += bc"""
TRAIN = """if ci < len(chunks) - 1:
                train_on_span(args, model, opt, val_tokens[start : end + 1], seq)"""
CALL = """\
    if args.ttt_enabled:
        loss, bpb = eval_val_sliding_ttt(args, model, val_tokens, byte_lut, args.eval_stride)
        print(f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
"""


def inlined(folder: Path, score_first: bool) -> None:
    """The fixture's TTT evaluation moved inline into ``main`` (scoring each chunk before or
    after training on it)."""
    script = folder / "train_gpt.py"
    text = script.read_text()
    assert CALL in text
    order = (SCORE, TRAIN) if score_first else (TRAIN.replace("if ci < len(chunks) - 1:", "if True:"), SCORE)
    script.write_text(text.replace(CALL, INLINE.format(first=order[0], second=order[1])))


def audit(folder: Path) -> Causality:
    bundle = discover([folder])[0]
    result = Evidence(bundle, AuditContext(runtime=True, runtime_settings=SETTINGS, runtime_limits=LIMITS)).runtime
    assert result is not None
    return result


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, Causality]:
    if problem := sandbox_problem():
        pytest.skip(problem)
    folders = {name: FIXTURES / name for name in ("ttt_epochs_from_log", "stage_out_of_reach")}
    off = tmp_path_factory.mktemp("scored") / "ttt_off_by_default"
    shutil.copytree(FIXTURES / "ttt_epochs_from_log", off)
    script = off / "train_gpt.py"
    text = script.read_text()
    assert 'os.environ.get("TTT_ENABLED", "1")' in text
    script.write_text(text.replace('os.environ.get("TTT_ENABLED", "1")', 'os.environ.get("TTT_ENABLED", "0")'))
    folders["ttt_off_by_default"] = off
    renamed = tmp_path_factory.mktemp("scored") / "scorer_renamed"
    shutil.copytree(FIXTURES / "ttt_epochs_from_log", renamed)
    script = renamed / "train_gpt.py"
    assert script.read_text().count("eval_val_sliding_ttt") == 2
    script.write_text(script.read_text().replace("eval_val_sliding_ttt", "adapt_then_measure"))
    folders["scorer_renamed"] = renamed
    later = tmp_path_factory.mktemp("scored") / "diagnostic_after_the_claim"
    shutil.copytree(FIXTURES / "ttt_epochs_from_log", later)
    script = later / "train_gpt.py"
    claimed = '        print(f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")\n'
    assert claimed in script.read_text()
    script.write_text(script.read_text().replace(claimed, claimed + DIAGNOSTIC))
    folders["diagnostic_after_the_claim"] = later
    for name, score_first in (("inline_score_first", True), ("inline_train_first", False)):
        folder = tmp_path_factory.mktemp("scored") / name
        shutil.copytree(FIXTURES / "ttt_epochs_from_log", folder)
        inlined(folder, score_first)
        folders[name] = folder
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(folders, pool.map(audit, folders.values())))


def test_the_harness_keeps_the_epochs_of_the_scored_run(results):
    result = results["ttt_epochs_from_log"]
    assert result.knobs["TTT_EPOCHS"] == "3"  # the log's, not the default's 1, and not shrunk
    assert result.knobs["TRAIN_SEQ_LEN"] == str(SETTINGS["seq_len"])  # sizes shrink
    assert result.raw is not None and any(line.startswith("legal_ttt_exact") for line in result.raw.stage_lines)
    assert result.status == "pass", result.reasons


def test_a_stage_the_harness_cannot_reach_is_never_a_pass(results):
    result = results["stage_out_of_reach"]
    assert result.status == "inconclusive"
    assert result.reasons[0].startswith("the scored stage final_sliding_half_stride_exact (train_seed42.log:6, "
                                        "printed by train_gpt.py:")
    assert "was not exercised" in result.reasons[0]
    assert {p["name"] for p in result.passes} >= {"eval_val", "eval_val_sliding"}  # the other stages ran


def test_the_claimed_line_switches_on_the_branch_it_was_printed_in(results):
    result = results["ttt_off_by_default"]
    assert result.knobs["TTT_ENABLED"] == "1"  # the default is 0 and no command sets it
    assert result.raw is not None and any(line.startswith("legal_ttt_exact") for line in result.raw.stage_lines)
    assert result.status == "pass", result.reasons


def test_the_function_whose_result_the_claimed_line_prints_is_captured_whatever_its_name(results):
    result = results["scorer_renamed"]
    assert result.raw is not None and "adapt_then_measure" in result.raw.wrapped
    assert result.status == "pass", result.reasons
    assert any(p["name"] == "adapt_then_measure" for p in result.passes)


def test_the_claimed_stages_evaluation_is_probed_first_even_when_another_runs_after_it(results):
    result = results["diagnostic_after_the_claim"]
    assert result.raw is not None
    first = result.raw.scorers[0]
    assert (first.name, first.final) == ("eval_val_sliding_ttt", True)
    assert result.status == "pass", result.reasons


def test_an_evaluation_written_inline_is_captured_as_the_block_that_computes_the_claim(results):
    result = results["inline_score_first"]
    lifted = [p["name"] for p in result.passes if p["name"].startswith("main, lines ")]
    assert lifted, [p["name"] for p in result.passes]
    assert result.status == "pass", result.reasons
    assert any("computed inline" in a for a in result.adjustments)


def test_an_inline_evaluation_that_trains_before_it_scores_fails(results):
    result = results["inline_train_first"]
    assert result.status == "fail", result.reasons
    assert {r.scorer for r in result.failures} == {next(p["name"] for p in result.passes
                                                            if p["name"].startswith("main, lines "))}

"""A claimed stage printed inside a guard proves the guard held in the scored run: the settings
the harness runs with make it hold too (auditor.scored.held)."""

from __future__ import annotations

from pathlib import Path

from auditor.discover import discover
from auditor.evidence import Evidence
from auditor.runtime.stage import ScoredRuntime, scored_runtime

SCRIPT = '''\
import os

class Hyperparameters:
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))
    mode = os.environ.get("EVAL_MODE", "plain")
    chunk = int(os.environ.get("TTT_CHUNK", 32768))
    both = os.environ.get("USE_A", "0") == "1" and os.environ.get("USE_B", "0") == "1"

def eval_val(args):
    return 2.0, 1.2

def eval_ttt(args):
    print(f"ttt:start chunk={args.chunk}")
    return 1.9, 1.1

def main():
    args = Hyperparameters()
    loss, bpb = eval_val(args)
    print(f"final_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
    {BODY}

if __name__ == "__main__":
    main()
'''

LOG = "final_exact val_loss:2.00000000 val_bpb:1.20000000\n{LINE}\n"


def _scored(tmp_path: Path, body: str, line: str, extra_log: str = "") -> ScoredRuntime:
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(SCRIPT.replace("{BODY}", body))
    (folder / "train_seed1.log").write_text(extra_log + LOG.replace("{LINE}", line))
    evidence = Evidence(discover([folder])[0])
    return scored_runtime(evidence.scored, evidence.program, evidence.records)


TTT_BLOCK = '''if args.ttt_enabled:
        loss, bpb = eval_ttt(args)
        print(f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")'''
TTT_LINE = "legal_ttt_exact val_loss:1.90000000 val_bpb:1.10000000"


def test_a_stage_printed_inside_an_off_by_default_branch_switches_it_on(tmp_path):
    scored = _scored(tmp_path, TTT_BLOCK, TTT_LINE)
    assert [s.label for s in scored.stages] == ["legal_ttt_exact"]
    assert scored.env["TTT_ENABLED"] == "1"
    assert scored.sources["TTT_ENABLED"].startswith("train_seed1.log:")
    assert "args.ttt_enabled" in scored.sources["TTT_ENABLED"]


def test_a_comparison_with_a_string_takes_that_string(tmp_path):
    body = TTT_BLOCK.replace("args.ttt_enabled", 'args.mode == "ttt"')
    assert _scored(tmp_path, body, TTT_LINE).env["EVAL_MODE"] == "ttt"


def test_a_line_printed_inside_a_function_proves_its_only_call(tmp_path):
    body = '''if args.ttt_enabled:
        report(args)

def report(args):
    loss, bpb = eval_ttt(args)
    print(f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")'''
    assert _scored(tmp_path, body, TTT_LINE).env["TTT_ENABLED"] == "1"


def test_a_function_with_two_callers_proves_neither(tmp_path):
    body = '''if args.ttt_enabled:
        report(args)
    if args.mode == "other":
        report(args)

def report(args):
    loss, bpb = eval_ttt(args)
    print(f"legal_ttt_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")'''
    scored = _scored(tmp_path, body, TTT_LINE)
    assert scored.env.get("TTT_ENABLED") == "0"  # the default: nothing is inferred
    assert scored.env.get("EVAL_MODE") == "plain"


def test_a_value_the_log_printed_is_never_overridden(tmp_path):
    body = '''print(f"ttt_enabled:{args.ttt_enabled}")
    ''' + TTT_BLOCK
    scored = _scored(tmp_path, body, TTT_LINE, extra_log="ttt_enabled:False\n")
    assert scored.env["TTT_ENABLED"] == "0"
    assert "printed where" not in scored.sources["TTT_ENABLED"]


def test_a_guard_that_reads_two_variables_is_left_to_the_defaults(tmp_path):
    body = TTT_BLOCK.replace("args.ttt_enabled", "args.both")
    scored = _scored(tmp_path, body, TTT_LINE)
    assert scored.env.get("USE_A") == "0" and scored.env.get("USE_B") == "0"


def test_a_guard_that_holds_by_default_changes_nothing(tmp_path):
    body = TTT_BLOCK.replace("args.ttt_enabled", "not args.ttt_enabled")
    scored = _scored(tmp_path, body, TTT_LINE)
    assert scored.env.get("TTT_ENABLED") == "0"
    assert not any("printed where" in s for s in scored.sources.values())


def test_the_runs_own_dump_wins_over_the_readme_command(tmp_path):
    # a README's command may be a parent record's; the hyperparameter dump is what this run read
    folder = tmp_path / "sub"
    folder.mkdir()
    script = SCRIPT.replace("class Hyperparameters:\n", 'class Hyperparameters:\n    is_main = int(os.environ.get("RANK", "0")) == 0\n'
                                                          "    # chunk=1 in a smoke test\n").replace("{BODY}", "pass")
    (folder / "train_gpt.py").write_text(script)
    (folder / "README.md").write_text("```\nTTT_CHUNK=2048 RANK=0 torchrun --nproc_per_node=8 train_gpt.py\n```\n")
    dump = "Hyperparameters:\n  chunk: 4096\n  is_main: True\n  mode: plain\n"
    # the log dumps the script first: its comment is code, not a value the run printed
    (folder / "train_seed1.log").write_text(script + "=" * 20 + "\n" + dump + LOG.replace("{LINE}", ""))
    evidence = Evidence(discover([folder])[0])
    scored = scored_runtime(evidence.scored, evidence.program, evidence.records)
    assert scored.env["TTT_CHUNK"] == "4096" and scored.sources["TTT_CHUNK"] == "train_seed1.log"
    # ``is_main: True`` says RANK was 0, not "1": a derived value is not the variable's text
    assert scored.env["RANK"] == "0" and scored.sources["RANK"] == "README.md"


def test_a_local_alias_of_a_setting_prints_that_setting(tmp_path):
    body = '''use = args.ttt_enabled
    print(f"adaptation use={use}")'''
    scored = _scored(tmp_path, body, "adaptation use=True")
    assert scored.env["TTT_ENABLED"] == "1" and scored.sources["TTT_ENABLED"].startswith("train_seed1.log:")

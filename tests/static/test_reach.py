"""Reachability: code switched off by its defaults is inactive and says why."""

from __future__ import annotations

import libcst as cst

from auditor.static.reach import Program

from .helpers import function, indexed

SCRIPT = """
import os
class Hyperparameters:
    ngram_eval_order = int(os.environ.get("NGRAM_EVAL_ORDER", 0))
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 0))
def eval_ngram():
    lookup = 1
def helper_of_ngram():
    eval_ngram()
def unused():
    x = 1
def ttt(args):
    for epoch in range(args.ttt_epochs):
        step = 1
def main():
    args = Hyperparameters()
    if args.ngram_eval_order >= 2:
        helper_of_ngram()
    ttt(args)
if __name__ == "__main__":
    main()
"""


def _first_assign(index, name):
    return next(s for s in function(index, name).stmts if isinstance(s.node, cst.Assign))


def test_dead_by_default_names_the_variable():
    source, index = indexed(SCRIPT)
    program = Program([source])
    activity = program.activity(_first_assign(index, "eval_ngram"))
    assert not activity.active
    assert "NGRAM_EVAL_ORDER defaults to 0" in activity.reason
    assert "set NGRAM_EVAL_ORDER to enable this path" in activity.reason
    assert activity.evidence()["env"] == {"NGRAM_EVAL_ORDER": 0}


def test_zero_epochs_and_never_called():
    source, index = indexed(SCRIPT)
    program = Program([source])
    assert "runs zero times (TTT_EPOCHS defaults to 0)" in program.activity(_first_assign(index, "ttt")).reason
    assert program.activity(_first_assign(index, "unused")).reason == "unused is never called"
    assert program.activity(next(s for s in function(index, "main").stmts if isinstance(s.node, cst.Assign))).active


def test_a_shipped_run_command_switches_code_on():
    source, index = indexed(SCRIPT)
    program = Program([source], texts={"run.sh": "NGRAM_EVAL_ORDER=7 torchrun --nproc_per_node=8 train_gpt.py\n"})
    activity = program.activity(_first_assign(index, "eval_ngram"))
    assert activity.active
    assert activity.evidence() == {"enabled_by": ["NGRAM_EVAL_ORDER=7 in run.sh"]}


def test_a_source_without_an_entry_point_is_a_library():
    source, index = indexed("def a():\n    b()\ndef b():\n    x = 1\n")
    program = Program([source])
    assert program.activity(_first_assign(index, "b")).active


def test_an_unknown_guard_never_makes_code_inactive():
    source, index = indexed("def f(flag):\n    if flag:\n        x = 1\nf(True)\n")
    assert Program([source]).activity(_first_assign(index, "f")).active


ON_BY_DEFAULT = SCRIPT.replace('"NGRAM_EVAL_ORDER", 0', '"NGRAM_EVAL_ORDER", 7')


def test_a_path_every_shipped_command_of_the_script_switches_off_did_not_run():
    source, index = indexed(ON_BY_DEFAULT)
    readme = "```bash\npython3 data/cached_challenge_fineweb.py --variant sp1024\nNGRAM_EVAL_ORDER=0 SEED=1 torchrun --nproc_per_node=8 train_gpt.py\n```\n"
    program = Program([source], texts={"README.md": readme})
    activity = program.activity(_first_assign(index, "eval_ngram"))
    assert not activity.active
    assert "NGRAM_EVAL_ORDER=0 in README.md" in activity.reason


def test_a_plain_command_of_the_script_keeps_the_defaults():
    source, index = indexed(ON_BY_DEFAULT)
    readme = "torchrun --nproc_per_node=8 train_gpt.py\n# ablation\nNGRAM_EVAL_ORDER=0 torchrun --nproc_per_node=8 train_gpt.py\n"
    program = Program([source], texts={"README.md": readme})
    assert program.activity(_first_assign(index, "eval_ngram")).active

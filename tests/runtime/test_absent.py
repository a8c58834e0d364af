"""Stand-ins for packages a script imports but the sandbox lacks (auditor.runtime.absent)."""

from __future__ import annotations

import ast
import builtins

import pytest

pytest.importorskip("torch")

from auditor.runtime import absent, loader
from auditor.runtime.driver import unguarded_imports
from auditor.runtime.stubs import SubmissionImporter

MISSING = "pgolf_surely_missing_pkg"


def run(source: str, unguarded: frozenset[str]) -> dict:
    namespace = {"__builtins__": {**vars(builtins), "__import__": SubmissionImporter(unguarded=unguarded)}}
    exec(compile(source, "<script>", "exec"), namespace)
    return namespace


def test_a_package_that_is_only_imported_does_not_stop_the_run():
    ns = run(f"import {MISSING}\nfrom {MISSING}.sub import load_thing\nx = 1 + 1\n", frozenset({MISSING}))
    assert ns["x"] == 2 and repr(ns["load_thing"]) == f"<missing {MISSING}.sub.load_thing>"


@pytest.mark.parametrize("use", ["load_thing('train')", "bool(load_thing)", "list(load_thing)", "load_thing + 1",
                                 "class D(load_thing): pass"])
def test_any_use_of_a_missing_package_stops_with_an_import_error_naming_it(use):
    with pytest.raises(absent.MissingModule, match=f"{MISSING}.load_thing"):
        run(f"from {MISSING} import load_thing\n{use}\n", frozenset({MISSING}))
    assert issubclass(absent.MissingModule, ImportError)


def test_a_logger_accepts_every_call():
    ns = run("import wandb\nrun = wandb.init(project='x')\nwandb.log({'bpb': 1.0})\nrun.finish()\n"
             "with wandb.init() as r:\n    r.config.lr = 3\nflag = bool(wandb.run)\n", frozenset({"wandb"}))
    assert ns["flag"] is False


def test_an_import_with_a_fallback_gets_its_import_error():
    with pytest.raises(ModuleNotFoundError):
        run(f"import {MISSING}\n", frozenset())
    ns = run(f"try:\n    import {MISSING}\nexcept ImportError:\n    {MISSING} = None\n", frozenset())
    assert ns[MISSING] is None


def test_only_packages_imported_outside_try_blocks_are_stood_in():
    texts = ["import wandb\nimport datasets\ntry:\n    import triton\nexcept ImportError:\n    pass\n",
             "try:\n    import datasets\nexcept ImportError:\n    datasets = None\nfrom .helper import x\n",
             "def broken(:\n"]
    assert unguarded_imports(texts) == frozenset({"wandb"})
    inside, outside = loader.import_places(ast.parse(texts[0]))
    assert inside == {"triton"} and outside == {"wandb", "datasets"}

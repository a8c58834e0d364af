"""The fuzz benchmark keeps working: its mutations, on the bundled example, audited in-process.

Every kind but the huge logs (benchmarks/fuzz.py runs those; each costs seconds) breaks a copy of
the example with a fixed seed; the audit must answer without raising (``--debug`` lets an
internal error through), in valid JSON or SARIF, without PG907, and leave the copy as it was.
"""

from __future__ import annotations

import importlib.util
import random
import sys

from .conftest import EXAMPLE, REPO_ROOT, run_cli

SLOW = {"huge_sparse_log", "huge_repeated_log", "one_line_log"}


def _fuzz():
    name = "bench_fuzz"
    if name not in sys.modules:  # dataclasses need the module registered
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / "fuzz.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_every_mutation_is_answered_without_a_traceback(tmp_path):
    fuzz = _fuzz()

    def in_process(folder, fmt, timeout):
        result = run_cli("check", folder, "--debug", "--isolated", "--format", fmt)
        return fuzz.Answer(result.code, result.stdout, result.stderr)

    failed = []
    for index, kind in enumerate(k for k in fuzz.KINDS if k not in SLOW):
        case = fuzz.run_case(EXAMPLE, kind, random.Random(f"7/{kind}"), tmp_path, index, in_process, 60)
        assert case.what and case.answer is not None
        if case.problems:
            failed.append((kind, case.what, case.problems, case.detail))
    assert not failed
    assert not list(tmp_path.iterdir())  # the cases are removed


def test_a_changed_folder_is_counted(tmp_path):
    fuzz = _fuzz()

    def writer(folder, fmt, timeout):
        (folder / "train_gpt.py").write_text("changed\n")
        return fuzz.Answer(0, '{"submissions": []}', "")

    case = fuzz.run_case(EXAMPLE, "flip_readme", random.Random(1), tmp_path, 0, writer, 60)
    assert case.problems == ["written"]

    def crasher(folder, fmt, timeout):
        return fuzz.Answer(2, "", "Traceback (most recent call last):\n  ...\nKeyError: 'x'\n")

    case = fuzz.run_case(EXAMPLE, "flip_py", random.Random(1), tmp_path, 0, crasher, 60)
    assert case.problems == ["crash"] and "KeyError: 'x'" in case.detail[-1]

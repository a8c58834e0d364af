"""The benchmarks run from a clone: every outside path is an argument, and they measure cold work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import libcst

from .conftest import EXAMPLE, REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_benchmark_assumes_a_path_outside_the_repository():
    for script in BENCHMARKS.glob("*.py"):
        text = script.read_text()
        assert "parent.parent.parent" not in text and "shared/corpus" not in text, script.name


def test_the_labels_are_an_argument():
    for name in ("corpus", "runtime_corpus", "runtime_metamorphic"):
        done = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--repo", "."],
                              capture_output=True, text=True, cwd=REPO_ROOT)
        assert done.returncode == 2 and "--labels" in done.stderr, (name, done.stderr[-300:])


def test_static_speed_parses_on_every_repetition(monkeypatch):
    static_speed = _load("static_speed")
    calls = []
    real = libcst.parse_module
    monkeypatch.setattr(libcst, "parse_module", lambda text, *a, **k: calls.append(1) or real(text, *a, **k))
    text = (EXAMPLE / "train_gpt.py").read_text()
    for _ in range(3):
        parse_s, _rules_s, _findings, _cpu = static_speed.time_one("train_gpt.py", text, [])
        assert parse_s > 0
    assert len(calls) == 3  # no tree shared between repetitions


def test_the_runtime_tally_names_the_root_cause_of_each_inconclusive_run():
    runtime_corpus = _load("runtime_corpus")
    reasons = ["the scored stage legal_ttt_exact (train_seed1.log:9) was not exercised: the sandboxed run never "
               "printed its line",
               "the run stopped at line 12 (dtype mismatch): RuntimeError: expected m1 and m2 to have the same dtype"]
    assert runtime_corpus.root_cause(reasons) == "run stopped: dtype mismatch"
    assert runtime_corpus.root_cause(reasons[:1]) == "scored stage never printed"
    assert runtime_corpus.root_cause(["something new"]) == "other"
    assert runtime_corpus.reason_class("the run stopped at line 3 (the script rejected a shrunk setting: "
                                       "NGRAM_EVAL_BUCKETS=64): ValueError: …") == \
        "run stopped: the script rejected a shrunk setting"


def test_the_runtime_metamorphic_tally_counts_verdicts_kept_and_new_fails_on_legal_prs():
    bench = _load("runtime_metamorphic")
    results = [
        {"pr": 1, "verdict": "illegal", "original": {"status": "fail"}, "rewrites": {"env": {"status": "fail"}}},
        {"pr": 2, "verdict": "illegal", "original": {"status": "fail"},
         "rewrites": {"env": {"status": "inconclusive", "reasons": ["the run stopped at line 3"]}}},
        {"pr": 3, "verdict": "legal", "original": {"status": "pass"}, "rewrites": {"env": {"status": "fail"}}},
        {"pr": 4, "verdict": "legal", "original": {"status": "inconclusive"}, "rewrites": {"env": {"status": "pass"}}},
        {"pr": 5, "verdict": "legal", "original": {"status": "pass"},
         "rewrites": {"env": {"status": "broken", "reasons": ["x.py does not compile"]}}},
    ]
    table = bench.summarize(results, ("env",))
    row = next(line for line in table.splitlines() if line.startswith("env"))
    assert row.split() == ["env", "1", "of", "3", "1", "of", "2", "1", "1"]
    assert "#2 (illegal) fail -> inconclusive: the run stopped at line 3" in table
    assert "#3 (legal) pass -> fail" in table

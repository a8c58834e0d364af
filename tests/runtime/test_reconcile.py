"""Runtime evidence over static hypotheses: a pass downgrades, a matching failure confirms."""

from __future__ import annotations

import pytest

from auditor.findings import Confidence, Finding, Location, Severity
from auditor.runtime.base import reconcile
from auditor.evidence import AuditContext, Evidence
from auditor.runtime.harness import Causality, Row, runtime_python, usable_run_env

from ..conftest import EXAMPLE


SCRIPT = """\
def eval_val_sliding_ttt(model, val_tokens):
    total = 0.0
    for start in range(0, len(val_tokens), 64):
        total += model(val_tokens[start:start + 64])
        cache.update(val_tokens[start:start + 65])
    return total


def eval_val_ngram(model, val_tokens):
    return cache.score(val_tokens)
"""


def static(tag: str, line: int = 5, path: str = "train_gpt.py", severity: Severity = Severity.WARNING) -> Finding:
    return Finding(code="PG102", name="boundary-plus-one", severity=severity, confidence=Confidence.MEDIUM,
                   message="cache update slice ends one past the chunk", location=Location(path, line),
                   tags=(tag,))


def evidence_with(result: Causality, folder=None) -> Evidence:
    from auditor.discover import discover

    bundle = discover([folder or EXAMPLE])[0]
    return Evidence(bundle, AuditContext(runtime=True), runtime=result)


@pytest.fixture
def scripted(tmp_path):
    (tmp_path / "train_gpt.py").write_text(SCRIPT)
    return tmp_path


PASSING = [Row("eval_val_sliding_ttt", p, "pass", f"{p} ok") for p in ("future", "substitution", "score_before_update")]


def test_a_runtime_pass_downgrades_the_static_hypothesis(scripted):
    evidence = evidence_with(Causality("pass", rows=PASSING), scripted)
    out = reconcile([static("boundary_plus1", 5, evidence.bundle.main_source.path)], evidence, {"PG102", "PG908"})
    assert out[0].severity is Severity.NOTE and out[0].confidence is Confidence.LOW
    assert "no leak" in out[0].message and out[0].evidence["runtime"]["status"] == "pass"
    summary = evidence.facts()["runtime"]  # the probe table the review comment shows
    assert summary["status"] == "pass" and [p["probe"] for p in summary["probes"]] == [r.probe for r in PASSING]


def test_a_runtime_pass_never_lowers_a_static_error(scripted):
    # a cheater that detects the probe run behaves and passes: the static error stands
    evidence = evidence_with(Causality("pass", rows=PASSING), scripted)
    error = static("target_in_key", 5, evidence.bundle.main_source.path, Severity.ERROR)
    out = reconcile([error], evidence, {"PG102"})
    assert out[0].severity is Severity.ERROR and out[0].confidence is Confidence.MEDIUM
    assert out[0].message == error.message
    assert out[0].evidence["runtime"]["status"] == "pass_not_clearing"
    from auditor.report.review import refuted

    assert not refuted(out[0])  # not listed under "hypotheses the probes refuted"


def test_a_pass_does_not_clear_code_the_run_did_not_evaluate(scripted):
    # the finding sits in eval_val_ngram, which the shrunk run never called
    evidence = evidence_with(Causality("pass", rows=PASSING), scripted)
    out = reconcile([static("boundary_plus1", 11, evidence.bundle.main_source.path)], evidence, {"PG102"})
    assert out[0].severity is Severity.WARNING and out[0].confidence is Confidence.MEDIUM
    assert "no leak" not in out[0].message and out[0].evidence["runtime"]["status"] == "undecided"


def test_a_matching_runtime_failure_confirms_it():
    fail = Row("eval_val_sliding_ttt", "substitution", "fail", "sum 33.8")
    runtime = Finding(code="PG203", name="unnormalized-scores", severity=Severity.ERROR, confidence=Confidence.HIGH,
                      message="x", location=Location("train_gpt.py"), tags=("target_in_key",))
    out = reconcile([static("target_in_key"), runtime], evidence_with(Causality("fail", rows=[fail])), {"PG102"})
    assert out[0].confidence is Confidence.HIGH and "confirmed at runtime" in out[0].message


def test_a_failure_of_another_kind_leaves_the_hypothesis_undecided_with_the_probe_outcomes():
    rows = [Row("eval_val_sliding_ttt", "future", "pass", "ok"),
            Row("eval_val_sliding_ttt", "substitution", "fail", "sum 33.8")]
    runtime = Finding(code="PG203", name="unnormalized-scores", severity=Severity.ERROR, confidence=Confidence.HIGH,
                      message="x", location=Location("train_gpt.py"), tags=("target_in_key",))
    out = reconcile([static("boundary_plus1"), runtime], evidence_with(Causality("fail", rows=rows)), {"PG102"})
    assert out[0].severity is Severity.WARNING and out[0].confidence is Confidence.MEDIUM
    assert out[0].evidence["runtime"] == {"status": "undecided", "pass": ["future"], "fail": ["substitution"],
                                          "harness": "fail"}


def test_inconclusive_adds_pg908_and_leaves_static_findings_alone():
    out = reconcile([static("slot")], evidence_with(Causality("inconclusive", reasons=["import failed"])),
                    {"PG102", "PG908"})
    assert out[0].severity is Severity.WARNING
    assert any(f.code == "PG908" and "import failed" in f.message for f in out)


def test_readme_settings_about_files_and_launchers_are_dropped():
    env = usable_run_env({"TTT_ENABLED": "1", "EVAL_ONLY_PATH": "runs/x.pt", "ARTIFACT_DIR": "runs/v",
                          "DATA_PATH": "./data", "NCCL_NET": "Socket", "PREQUANT_ONLY": "1", "SEED": "42"})
    assert env == {"TTT_ENABLED": "1", "SEED": "42"}


def test_a_newer_python_is_chosen_only_when_the_script_needs_it(monkeypatch):
    monkeypatch.setenv("PGOLF_AUDIT_RUNTIME_PYTHON", "/opt/python3.12/bin/python")
    assert runtime_python("x = 1\n") is None
    assert runtime_python("def f(:\n") == "/opt/python3.12/bin/python"  # does not compile here
    monkeypatch.delenv("PGOLF_AUDIT_RUNTIME_PYTHON")
    assert runtime_python("def f(:\n") is None  # no other interpreter named: this one runs it

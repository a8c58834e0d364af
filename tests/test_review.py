"""Golden files for the review comments of the fixtures.

Regenerate after an intended change with ``PGOLF_UPDATE_GOLDEN=1 python -m pytest tests/test_review.py``
and read the diff before committing it.
"""

from __future__ import annotations

import os

import pytest

from auditor.engine import audit
from auditor.report.review import MARKER, ReviewContext, ReviewReporter

from .conftest import FIXTURES

GOLDEN = FIXTURES.parent / "tests" / "golden"
CASES = {
    "review_clean_example.md": "fixtures/examples/2026-03-17_TinyBaseline",
    "review_wrapped_download.md": "fixtures/wrappers/lzma_b85",
    "review_bomb.md": "fixtures/wrappers/bomb",
}


@pytest.mark.parametrize("name", CASES)
def test_review_comment_matches_golden(name, monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    report = audit([CASES[name]])
    for sub in report.submissions:  # as if read from a PR head, for permalinks
        sub.head_sha, sub.pr = "0123456789abcdef0123456789abcdef01234567", 4242
    report.tool_version = "VERSION"
    text = ReviewReporter(ReviewContext(reproduce="pgolf-audit pr 4242 --repo <clone>")).render(report)
    path = GOLDEN / name
    if os.environ.get("PGOLF_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_review_essentials(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    report = audit(["fixtures/wrappers/lzma_b85"])
    sub = report.submissions[0]
    sub.head_sha = "f" * 40
    text = ReviewReporter(ReviewContext(reproduce="pgolf-audit pr 1 --repo X")).render(report)
    assert text.startswith(MARKER)
    assert "❌ violation" in text
    assert f"https://github.com/openai/parameter-golf/blob/{'f' * 40}/fixtures/wrappers/lzma_b85/train_gpt.py#L2" in text
    assert "decoded payload line 11" in text
    assert "**Legal alternative:**" in text
    assert "pgolf-audit pr 1 --repo X" in text
    assert "MERGE" not in text and "CLOSE" not in text


def test_runtime_probes_and_stage_times_are_tabled(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    report = audit(["fixtures/examples/2026-03-17_TinyBaseline"])
    sub = report.submissions[0]
    sub.facts["runtime"] = {
        "status": "fail", "seconds": 12.5, "reasons": [],
        "probes": [{"scorer": "eval_val", "probe": "substitution", "status": "fail", "detail": "sum 33.76 (> 1)"},
                   {"scorer": "eval_val", "probe": "future", "status": "pass", "detail": "no earlier NLL moved"}],
    }
    text = ReviewReporter().render(report)
    assert "### Runtime probes: fail (12.5 s on CPU)" in text
    assert "| `eval_val` | substitution | fail | sum 33.76 (> 1) |" in text
    assert "| final_int8_zlib_roundtrip | **1.4** | **1.4** | **1.4** |" in text


def test_no_runtime_section_without_a_runtime_run(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    text = ReviewReporter().render(audit(["fixtures/examples/2026-03-17_TinyBaseline"]))
    assert "Runtime probes" not in text


def test_a_hypothesis_the_probes_refuted_is_listed_apart_from_the_findings(monkeypatch):
    from auditor.findings import Confidence, Finding, Location, Severity

    monkeypatch.chdir(FIXTURES.parent)
    report = audit(["fixtures/examples/2026-03-17_TinyBaseline"])
    sub = report.submissions[0]
    note = Finding(code="PG102", name="boundary-plus-one", severity=Severity.NOTE, confidence=Confidence.LOW,
                   message="update reaches one past the chunk; pattern present, but the runtime probes found no leak",
                   location=Location("train_gpt.py", 12), tags=("boundary_plus1",),
                   evidence={"runtime": {"status": "pass", "probes": ["future"]}})
    sub.findings.append(note)
    text = ReviewReporter().render(report)
    findings, considered = text.split("### Considered and not counted")
    assert "PG102" not in findings and "None of the checks below found a problem." in findings
    assert "1 static hypotheses the runtime probes refuted" in considered and "PG102 boundary-plus-one" in considered


def _over_cap(seed: str, line: int):
    from auditor.findings import Confidence, Finding, Location, Severity

    return Finding(code="PG301", name="artifact-over-cap", severity=Severity.ERROR, confidence=Confidence.HIGH,
                   message=f"seed {seed}: the artifact is 16,030,231 bytes, over the cap",
                   location=Location(f"rec/x/train_seed{seed}.log", line), snippet="Serialized model: 15941708 bytes",
                   evidence={"seed": seed, "log": f"rec/x/train_seed{seed}.log", "line": line, "model_bytes": 15941708,
                             "hashed": False},
                   sources=("README", "R-SIZE-CAP", "#825"), key=seed)


def test_one_block_per_rule_with_its_findings_listed_under_it():
    from auditor.results import Report, SubmissionReport

    sub = SubmissionReport(path="rec/x", findings=[_over_cap(s, 65) for s in ("42", "1337", "2024")],
                           head_sha="a" * 40, pr=825)
    text = ReviewReporter().render(Report(submissions=[sub]))
    assert text.count("#### ❌ PG301 artifact-over-cap") == 1 and "· 3 findings" in text
    assert text.count("**Why it matters:**") == 1 and text.count("**Legal alternative:**") == 1
    for seed in ("42", "1337", "2024"):
        assert f"[`train_seed{seed}.log:65`](https://github.com/openai/parameter-golf/blob/{'a' * 40}/rec/x/train_seed{seed}.log#L65)" in text
    assert "model bytes 15,941,708" in text and "hashed no" in text
    # rulings are links, internal catalogue names are left out
    assert "[README](https://github.com/openai/parameter-golf#readme)" in text
    assert "[#825](https://github.com/openai/parameter-golf/issues/825)" in text
    assert "R-SIZE-CAP" not in text
    # a finding more of the same rule costs its own lines, not another copy of the rule's text
    more = SubmissionReport(path="rec/x", findings=[_over_cap(s, 65) for s in ("42", "1337", "2024", "7")],
                            head_sha="a" * 40, pr=825)
    grown = len(ReviewReporter().render(Report(submissions=[more]))) - len(text)
    assert 0 < grown < 500


def test_the_scored_stage_is_named_the_same_in_every_table():
    from auditor.results import Report, SubmissionReport

    seeds = [{"seed": s, "val_bpb": 1.115, "val_bpb_stage": "final_int8_zlib_roundtrip_exact",
              "eval_s": {"final_int6_roundtrip": 23.0, "final_int6_sliding_window": t},
              "scored_eval_s": t, "scored_eval_stage": "final_int6_sliding_window"} for s, t in (("314", 105.09), ("42", 77.2))]
    text = ReviewReporter().render(Report(submissions=[SubmissionReport(path="rec/x", seeds=seeds)]))
    assert "105.1 s (seed 314, `final_int6_sliding_window`)" in text
    assert "| 314 | — | 1.115 | final_int6_sliding_window |" in text
    assert "| final_int6_sliding_window | **105.1** | **77.2** |" in text
    assert "| final_int6_roundtrip | 23.0 | 23.0 |" in text
    assert "Seeds 314, 42: the score is logged as `final_int8_zlib_roundtrip_exact`" in text
    for seed in seeds:  # the _exact line of the timed stage itself needs no note
        seed["val_bpb_stage"] = "final_int6_sliding_window_exact"
    text = ReviewReporter().render(Report(submissions=[SubmissionReport(path="rec/x", seeds=seeds)]))
    assert "| 314 | — | 1.115 | final_int6_sliding_window |" in text and "the score is logged as" not in text

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

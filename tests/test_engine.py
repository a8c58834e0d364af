"""The engine: guarded checks (PG907), selection, suppressions and waivers."""

from __future__ import annotations

from auditor import registry
from auditor.engine import AuditOptions, audit
from auditor.findings import Confidence, Severity, Status
from auditor.rule import BundleRule
from auditor.suppress import Waiver, WaiverError, load_waivers

import pytest

from .conftest import FIXTURES


class Exploding(BundleRule):
    """A check with a bug."""

    CODE = "PG399"
    NAME = "exploding"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    TAGS = ("format",)

    def check(self, evidence):
        raise ZeroDivisionError("boom")


@pytest.fixture
def with_exploding_rule(monkeypatch):
    rules = dict(registry.all_rules())
    rules["PG399"] = Exploding
    monkeypatch.setattr(registry, "all_rules", lambda: rules)


def test_a_crashing_check_becomes_pg907_and_the_rest_runs(with_exploding_rule):
    report = audit([FIXTURES / "wrappers" / "lzma_b85"])
    codes = sorted(f.code for f in report.findings)
    assert codes == ["PG109", "PG907"]
    pg907 = next(f for f in report.findings if f.code == "PG907")
    assert pg907.evidence["check"] == "PG399" and "ZeroDivisionError" in pg907.message
    assert "PG399 exploding" in report.submissions[0].checked


def test_debug_lets_the_error_raise(with_exploding_rule):
    with pytest.raises(ZeroDivisionError):
        audit([FIXTURES / "wrappers" / "lzma_b85"], AuditOptions(debug=True))


def test_select_keeps_tool_findings_unless_ignored():
    bomb = FIXTURES / "wrappers" / "bomb"
    assert [f.code for f in audit([bomb], AuditOptions(select=["PG1"])).findings] == ["PG904"]
    assert audit([bomb], AuditOptions(ignore=["PG904"])).findings == []


def _suppressed(tmp_path, comment: str, inline: bool = True):
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(f"import urllib.request\ndata = urllib.request.urlopen('u').read(){comment}\n")
    (finding,) = audit([folder], AuditOptions(inline_suppressions=inline)).findings
    return finding


def test_inline_suppression_with_reason(tmp_path):
    finding = _suppressed(tmp_path, "  # pgolf-audit: ignore[PG109] -- reads a local file:// URL in tests")
    assert finding.status is Status.SUPPRESSED and "local file" in finding.status_reason


def test_inline_suppression_without_reason_does_not_apply(tmp_path):
    finding = _suppressed(tmp_path, "  # pgolf-audit: ignore[PG109]")
    assert finding.status is Status.ACTIVE and "no reason" in finding.status_reason


def test_inline_suppressions_can_be_refused(tmp_path):
    finding = _suppressed(tmp_path, "  # pgolf-audit: ignore[PG109] -- trust me, this is fine", inline=False)
    assert finding.status is Status.ACTIVE


def test_waivers_file(tmp_path):
    (finding,) = audit([FIXTURES / "wrappers" / "lzma_b85"]).findings
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(
        f'[[waiver]]\nfingerprint = "{finding.fingerprint}"\ncode = "PG109"\n'
        'reason = "fixture: the URL is never fetched"\nlink = "https://example.com/ruling"\n'
    )
    loaded = load_waivers(waivers)
    assert loaded == [Waiver(finding.fingerprint, "fixture: the URL is never fetched", "https://example.com/ruling", "PG109")]
    (again,) = audit([FIXTURES / "wrappers" / "lzma_b85"], AuditOptions(waivers=loaded)).findings
    assert again.status is Status.SUPPRESSED and "example.com/ruling" in again.status_reason
    assert audit([FIXTURES / "wrappers" / "lzma_b85"], AuditOptions(waivers=loaded)).submissions[0].verdict.value == "clean"


@pytest.mark.parametrize("text", ['[[waiver]]\nfingerprint = "abc"\n', "not toml [", 'waiver = "x"\n'])
def test_malformed_waivers_are_usage_errors(tmp_path, text):
    path = tmp_path / "w.toml"
    path.write_text(text)
    with pytest.raises(WaiverError):
        load_waivers(path)

"""PG309 not-significant and the statistics behind it (needs a baseline from the command line)."""

from __future__ import annotations

import pytest

from auditor.engine import AuditOptions, audit
from auditor.records import samples as S
from auditor.records import stats
from auditor.rule import Case

from ..conftest import materialize

SEEDS = {1: 1.0601, 2: 1.0606, 3: 1.0598}


def _folder(tmp_path, values=SEEDS):
    logs = {f"train_seed{k}.log": S.modern_log(k, bpb=v) for k, v in values.items()}
    fields = {"val_bpb": round(sum(values.values()) / len(values), 5), "seeds": list(values)}
    return materialize(Case(files=S.folder(logs, fields)), tmp_path / "case")


def _pg309(tmp_path, monkeypatch, significance):
    folder = _folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    report = audit([folder.name], AuditOptions(select=["PG309"], significance=significance))
    sub = report.submissions[0]
    return [f for f in sub.findings if f.code == "PG309"], sub.facts.get("significance", {})


needs_scipy = pytest.mark.skipif(stats.scipy_stats() is None, reason="scipy not installed")


@needs_scipy
def test_readme_rule_rejects_a_small_margin(tmp_path, monkeypatch):
    found, facts = _pg309(tmp_path, monkeypatch, {"rule": "readme", "baseline": [1.0611, 1.0615, 1.0609], "source": "test"})
    assert [f.severity.value for f in found] == ["warning"]
    assert facts["rule"] == "readme" and facts["passed"] is False
    assert "README rule" in found[0].message


@needs_scipy
def test_welch_rule_accepts_the_same_claim(tmp_path, monkeypatch):
    found, facts = _pg309(tmp_path, monkeypatch, {"rule": "welch", "baseline": [1.0611, 1.0615, 1.0609], "source": "test"})
    assert found == []
    assert facts["rule"] == "welch" and facts["passed"] is True and facts["p_value"] < 0.25


@needs_scipy
def test_one_sample_against_a_sota_value(tmp_path, monkeypatch):
    found, facts = _pg309(tmp_path, monkeypatch, {"rule": "readme", "baseline_value": 1.0700})
    assert found == [] and facts["passed"] is True
    assert "one-sample" in facts["test"]


def test_without_a_baseline_nothing_is_reported(tmp_path, monkeypatch):
    found, facts = _pg309(tmp_path, monkeypatch, {"rule": "readme"})
    assert found == [] and facts["reason"] == "no baseline given"


def test_without_scipy_the_result_says_so(monkeypatch):
    monkeypatch.setattr(stats, "scipy_stats", lambda: None)
    result = stats.test_claim([1.06, 1.061], rule="welch", baseline=[1.07, 1.071])
    assert not result.decided and "scipy not installed" in result.reason


def test_one_seed_cannot_be_significant():
    result = stats.test_claim([1.05], rule="welch", baseline_value=1.07)
    assert result.decided and result.passed is False and "one seed" in result.reason


@needs_scipy
def test_margin_is_converted_with_bytes_per_token():
    result = stats.test_claim([1.0, 1.0001, 0.9999], rule="readme", baseline_value=1.01, bytes_per_token=3.726631)
    assert result.margin_bpb == pytest.approx(0.005 / (0.6931471805599453 * 3.726631))
    assert "nats per token" in result.units


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError):
        stats.test_claim([1.0], rule="bonferroni")

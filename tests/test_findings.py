"""Findings: fingerprints without line numbers, verdicts, and the JSON shape."""

from __future__ import annotations

from dataclasses import replace

from auditor.findings import Confidence, Finding, Location, Origin, Severity, Status, Verdict, verdict_of


def _finding(**kw) -> Finding:
    base = dict(
        code="PG101", name="target-in-key", severity=Severity.ERROR, confidence=Confidence.HIGH,
        message="m", location=Location("a/train_gpt.py", 10, 4), snippet="key = h ^ (y * P)",
    )
    base.update(kw)
    return Finding(**base)


def test_fingerprint_ignores_lines_and_whitespace():
    a = _finding()
    b = _finding(location=Location("a/train_gpt.py", 99, 0), snippet="key  =  h ^ (y * P)  ")
    assert a.fingerprint == b.fingerprint


def test_fingerprint_changes_with_code_path_snippet_or_key():
    a = _finding()
    assert a.fingerprint != replace(a, code="PG102").fingerprint
    assert a.fingerprint != replace(a, location=Location("b/train_gpt.py", 10)).fingerprint
    assert a.fingerprint != replace(a, snippet="key = h").fingerprint
    assert a.fingerprint != replace(a, key="seed 42").fingerprint


def test_verdicts():
    assert verdict_of([]) is Verdict.CLEAN
    assert verdict_of([_finding()]) is Verdict.VIOLATION
    assert verdict_of([_finding(confidence=Confidence.LOW)]) is Verdict.REVIEW
    assert verdict_of([_finding(severity=Severity.WARNING)]) is Verdict.REVIEW
    assert verdict_of([_finding(severity=Severity.NOTE)]) is Verdict.CLEAN
    assert verdict_of([_finding(status=Status.INACTIVE)]) is Verdict.CLEAN
    assert verdict_of([_finding(status=Status.SUPPRESSED)]) is Verdict.CLEAN


def test_to_dict_has_the_contract_fields():
    origin = Origin("w.py", 2, 0, ("b85", "lzma"))
    data = _finding(location=Location("w.py", 30, 4, decoded_from=origin), evidence={"n": (1, 2), "s": Severity.NOTE}).to_dict()
    for key in ("code", "name", "severity", "confidence", "status", "tags", "message", "location", "evidence"):
        assert key in data
    assert data["location"]["decoded_from"] == {"path": "w.py", "line": 2, "column": 0, "layers": ["b85", "lzma"]}
    assert data["evidence"] == {"n": [1, 2], "s": "note"}


def test_location_text():
    assert str(Location("a.py", 3, 0)) == "a.py:3:1"
    assert str(Location("a.py", 30, 4, decoded_from=Origin("a.py", 2))) == "a.py:2 (decoded line 30)"
    assert str(Location("a.log")) == "a.log"

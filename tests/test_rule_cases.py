"""Every rule's embedded cases, run through the whole engine (Fixit's VALID/INVALID).

A valid case must raise no active finding of its rule; an invalid case must raise one, with
the expected status, at exactly the expected lines when the case names them.
"""

from __future__ import annotations

import pytest

from auditor import registry
from auditor.engine import AuditOptions, audit

from .conftest import materialize

CASES = [
    pytest.param(rule, case, valid, id=f"{rule.CODE}-{'valid' if valid else 'invalid'}-{i}")
    for rule in registry.all_rules().values()
    if rule.KIND != "runtime"
    for valid, cases in ((True, rule.VALID), (False, rule.INVALID))
    for i, case in enumerate(cases)
]


@pytest.mark.parametrize(("rule", "case", "valid"), CASES)
def test_case(rule, case, valid, tmp_path, monkeypatch):
    folder = materialize(case, tmp_path / "case")
    monkeypatch.chdir(tmp_path)
    report = audit(["case"], AuditOptions(select=[rule.CODE]))
    own = [f for s in report.submissions for f in s.findings if f.code == rule.CODE]
    if valid:
        active = [f for f in own if f.counts]
        assert not active, [f"{f.location}: {f.message}" for f in active]
        return
    matching = [f for f in own if f.status is case.status]
    assert matching, f"expected a {case.status.value} {rule.CODE} finding, got {[(f.status.value, f.message) for f in own]}"
    if case.lines:
        assert sorted({f.location.line for f in matching}) == sorted(case.lines)
    assert folder.exists()

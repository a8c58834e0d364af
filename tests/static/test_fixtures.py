"""The annotated fixtures of fixtures/static, checked both ways (semgrep's convention).

Every file under ``fixtures/static/PGxxx/`` is audited as a lone script. Lines annotated
``# expect: PGxxx`` must carry an active finding of that code, ``# expect-inactive: PGxxx``
an inactive one, and no other line may carry a finding of the code (``# ok: PGxxx`` marks
the near misses that must stay quiet).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditor.engine import AuditOptions, audit

from ..conftest import FIXTURES

ROOT = FIXTURES / "static"
FILES = sorted(ROOT.glob("PG*/*.py"))
ANNOTATION = re.compile(r"#\s*(expect|expect-inactive|ok):\s*(PG\d{3})")


def _annotations(path: Path) -> dict[str, dict[int, str]]:
    wanted: dict[str, dict[int, str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for kind, code in ANNOTATION.findall(line):
            wanted.setdefault(code, {})[number] = kind
    return wanted


def test_every_static_rule_has_fixtures():
    from auditor import registry

    codes = {rule.CODE for rule in registry.by_kind("static")}
    assert codes <= {p.parent.name for p in FILES}, codes - {p.parent.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_fixture(path: Path):
    code = path.parent.name
    wanted = _annotations(path).get(code, {})
    assert any(kind.startswith("expect") for kind in wanted.values()), f"{path.name} has no expect annotation"
    report = audit([path], AuditOptions(select=[code]))
    found = {}
    for finding in report.findings:
        if finding.code != code:
            continue
        found[finding.location.line] = "expect" if finding.status.value == "active" else "expect-inactive"
    expected = {line: kind for line, kind in wanted.items() if kind != "ok"}
    quiet = {line for line, kind in wanted.items() if kind == "ok"}
    assert found == expected, f"{path.name}: found {sorted(found.items())}, expected {sorted(expected.items())}"
    assert not quiet & set(found), f"{path.name}: findings on lines marked ok: {sorted(quiet & set(found))}"

"""The catalogue's invariants: one code, one module, documented, with cases both ways."""

from __future__ import annotations

import re

import pytest

from auditor import registry
from auditor.catalogue_doc import catalogue_markdown
from auditor.findings import Confidence, Severity
from auditor.rule import DOC_SECTIONS, KNOWN_TAGS

from .conftest import REPO_ROOT

RULES = list(registry.all_rules().values())
IDS = [r.CODE for r in RULES]
SOURCE_PATTERN = re.compile(r"^(#\d+|README.*|L-[A-Z0-9-]+|R-[A-Z0-9-]+|PEP \d+)$")
CODE_RANGES = {"static": "PG1", "runtime": "PG2", "records": "PG3", "tool": "PG9"}


def test_catalogue_is_not_empty():
    assert len(RULES) >= 8


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_identity(rule):
    assert registry.CODE_PATTERN.match(rule.CODE)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.NAME), rule.NAME
    assert rule.CODE.startswith(CODE_RANGES[rule.KIND]), f"{rule.CODE} is a {rule.KIND} rule"
    assert isinstance(rule.SEVERITY, Severity) and isinstance(rule.CONFIDENCE, Confidence)
    module_file = rule.__module__.rsplit(".", 1)[-1]
    assert module_file == f"{rule.CODE.lower()}_{rule.NAME.replace('-', '_')}", module_file


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_tags_and_sources(rule):
    assert rule.TAGS, "every rule has at least one tag"
    assert set(rule.TAGS) <= KNOWN_TAGS, set(rule.TAGS) - KNOWN_TAGS
    for source in rule.SOURCES:
        assert SOURCE_PATTERN.match(source), source


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_docstring_has_the_sections_in_order(rule):
    doc = rule.doc()
    positions = [doc.find(f"## {section}") for section in DOC_SECTIONS]
    assert all(p >= 0 for p in positions), f"missing sections in {rule.CODE}: {positions}"
    assert positions == sorted(positions), f"sections out of order in {rule.CODE}"
    assert rule.summary().endswith(".") and len(rule.summary()) > 20


@pytest.mark.parametrize("rule", RULES, ids=IDS)
def test_every_rule_is_tested_both_ways(rule):
    if rule.TESTED_IN:
        for rel in rule.TESTED_IN:
            text = (REPO_ROOT / rel).read_text()
            assert rule.CODE in text, f"{rel} does not mention {rule.CODE}"
        return
    assert rule.VALID, f"{rule.CODE} has no valid case"
    assert rule.INVALID, f"{rule.CODE} has no invalid case"


def test_rules_readme_is_current():
    readme = REPO_ROOT / "rules" / "README.md"
    assert readme.read_text() == catalogue_markdown(), (
        "rules/README.md is stale: run `pgolf-audit rules --format markdown > rules/README.md`"
    )

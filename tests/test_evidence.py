"""The evidence stage: one typed object per bundle that rules read and nothing writes."""

from __future__ import annotations

from auditor import registry
from auditor.discover import discover
from auditor.engine import AuditOptions, audit
from auditor.evidence import Evidence
from auditor.problems import TOOL_RESULTS

from .conftest import EXAMPLE


def test_the_per_seed_table_and_facts_do_not_depend_on_the_selected_rules():
    everything = audit([EXAMPLE]).submissions[0]
    static_only = audit([EXAMPLE], AuditOptions(select=["PG1"])).submissions[0]
    records_only = audit([EXAMPLE], AuditOptions(select=["PG3"])).submissions[0]
    assert everything.seeds, "the example folder has seed logs"
    assert static_only.seeds == everything.seeds == records_only.seeds
    assert static_only.facts == everything.facts == records_only.facts
    assert everything.facts["scored_runs"][0]["settings"]  # with their sources
    assert "significance" in static_only.facts  # the claim test is evidence, not PG309's side effect


def test_evidence_computes_each_analysis_once():
    evidence = Evidence(discover([EXAMPLE])[0])
    assert evidence.records is evidence.records
    main = evidence.bundle.main_source
    assert evidence.static(main).program is evidence.program
    assert evidence.flow(main) is evidence.flow(main)


def test_the_bundle_is_no_blackboard():
    bundle = discover([EXAMPLE])[0]
    for name in ("cached", "put", "get", "_cache"):
        assert not hasattr(bundle, name)


def test_the_core_table_of_tool_results_matches_the_catalogue():
    documented = {code: rule for code, rule in registry.all_rules().items() if rule.KIND == "tool"}
    assert set(TOOL_RESULTS) == set(documented)
    for code, result in TOOL_RESULTS.items():
        rule = documented[code]
        assert (result.name, result.severity, result.confidence) == (rule.NAME, rule.SEVERITY, rule.CONFIDENCE), code
        assert (result.sources, result.tags) == (rule.SOURCES, rule.TAGS), code

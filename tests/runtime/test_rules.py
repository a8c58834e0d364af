"""The PG2xx rules and PG908 on the fixture submissions: each fixture is caught by the right probe.

Each fixture runs once (session fixture); every rule's VALID and INVALID cases then go through
the engine with the cached harness result, as ``check --runtime`` would.
"""

from __future__ import annotations

import shutil

import pytest

from auditor import registry
from auditor.discover import discover
from auditor.engine import AuditOptions, audit_evidence
from auditor.evidence import Evidence
from auditor.findings import Severity

from ..conftest import REPO_ROOT
from .conftest import FIXTURES, needs_sandbox, tree_digest

RUNTIME_RULES = [r for r in registry.all_rules().values() if r.KIND == "runtime"]
CASES = [
    pytest.param(rule, case, valid, id=f"{rule.CODE}-{'valid' if valid else 'invalid'}-{case.folder.rsplit('/', 1)[-1]}")
    for rule in RUNTIME_RULES
    for valid, cases in ((True, rule.VALID), (False, rule.INVALID))
    for case in cases
]


def findings_for(folder: str, results, codes: list[str]):
    name = folder.rsplit("/", 1)[-1]
    bundle = discover([REPO_ROOT / folder])[0]
    options = AuditOptions(select=codes, runtime=True)
    return audit_evidence(Evidence(bundle, options.context(), runtime=results[name]), options).findings


@pytest.mark.parametrize(("rule", "case", "valid"), CASES)
def test_case(rule, case, valid, runtime_results):
    own = [f for f in findings_for(case.folder, runtime_results, [rule.CODE]) if f.code == rule.CODE and f.counts]
    if valid:
        assert not own, [f.message for f in own]
    else:
        assert own, f"{rule.CODE} not raised on {case.folder}: {runtime_results[case.folder.rsplit('/', 1)[-1]].to_dict()}"


@pytest.mark.parametrize("name", ["legal_sliding", "legal_ttt", "cache_plus1_825", "legal_repo_habits",
                                  "legal_expert_mixture", "legal_precomputed_hints"])
def test_legal_fixtures_pass_every_probe(name, runtime_results):
    result = runtime_results[name]
    assert result.status == "pass", result.reasons
    probes = {r.probe for r in result.rows if r.status == "pass"}
    assert {"determinism", "future", "substitution", "pipeline_future", "pipeline_substitution"} <= probes


def test_inputs_precomputed_from_the_stream_are_found_and_tried(runtime_results):
    """The legal near miss of precomputed_target_gate: its hints come from the stream (rerun and
    replay differ after the cut), so reruns with a substituted target ran, and agreed."""
    row = next(r for r in runtime_results["legal_precomputed_hints"].rows if r.probe == "pipeline_substitution")
    assert row.evidence["derived_positions"] > 0
    assert len(row.evidence["positions"]) > 1
    plain = next(r for r in runtime_results["legal_sliding"].rows if r.probe == "pipeline_substitution")
    assert plain.evidence["derived_positions"] == 0 and len(plain.evidence["positions"]) == 1


@pytest.mark.parametrize(("name", "probe", "tag"), [
    ("ngram_target_in_key", "substitution", "target_in_key"),
    ("ngram_tensor_accumulators", "substitution", "target_in_key"),  # window sums read out, added to tensors
    ("ngram_expert_mixture", "substitution", "target_in_key"),  # experts summed in torch, model's loss on a later line
    ("ngram_unnamed_table", "substitution", "target_in_key"),  # np.zeros(1 << 22), known by its mask
    ("ngram_clipped_posterior", "substitution", "target_in_key"),  # p clipped to 1: NLL 0 is a score
    ("helper_loaded_by_path", "substitution", "target_in_key"),  # the evaluation is in a module loaded by path
    ("cache_plus1_leak", "substitution", "target_in_key"),
    ("target_gated_mixer", "substitution", "target_gated"),
    ("byte_spread_mixture", "substitution", "bpb_accounting"),  # a pure-Python rescorer, probed as a black box
    ("precomputed_target_gate", "pipeline_substitution", "causality"),  # the gate arrives as a tensor (#1967)
    ("slot", "future", "slot"),
    ("ttt_before_score", "score_before_update", "ttt_before_score"),
    ("prequant_ttt", "pipeline_future", "prequant_ttt"),
    ("two_pass_rescore", "future", "causality"),
    ("noncausal_attention", "future", "causality"),
])
def test_each_leak_is_caught_by_the_right_probe(name, probe, tag, runtime_results):
    result = runtime_results[name]
    assert result.status == "fail", result.reasons
    assert probe in {r.probe for r in result.failures}
    findings = findings_for(f"fixtures/runtime/{name}", runtime_results, ["PG2"])
    errors = [f for f in findings if f.severity is Severity.ERROR and f.counts]
    assert any(tag in f.tags for f in errors), [(f.code, f.tags) for f in errors]
    evidence = errors[0].evidence
    assert "probe" in evidence and ("at_position" in evidence or "sum" in evidence)


def test_a_rescorer_is_probed_on_the_claimed_figure_and_its_pass_clears_nothing(runtime_results):
    """The legal near miss of byte_spread_mixture: the same rescorer mixing whole token
    distributions. Its probe runs and passes; the claim still rests on a black box, so the
    verdict stays inconclusive (the claimed figure is none a captured evaluation returned)."""
    result = runtime_results["legal_token_mixture_rescorer"]
    assert not result.failures
    row = next(r for r in result.rows if r.evidence.get("rescorer"))
    assert row.status == "pass" and row.scorer == "mixture_bpb"
    assert max(row.evidence["sums"]) <= 1.0
    assert result.status == "inconclusive" and "was not exercised" in result.reasons[0]


def test_substitution_sum_is_far_above_one_for_a_hashed_cache(runtime_results):
    row = next(r for r in runtime_results["ngram_target_in_key"].failures if r.probe == "substitution")
    assert row.evidence["sum"] > 1.5
    assert row.evidence["position"] > 0


def test_network_attempt_is_stopped_and_reported(runtime_results):
    result = runtime_results["network"]
    assert any(e["kind"] == "network" and e["blocked"] for e in result.sandbox_events)
    findings = findings_for("fixtures/runtime/network", runtime_results, ["PG205", "PG908"])
    assert {"PG205", "PG908"} <= {f.code for f in findings}
    assert result.status == "inconclusive"


def test_nondeterminism_is_reported_and_never_passes(runtime_results):
    result = runtime_results["nondeterministic"]
    assert result.status != "pass"
    assert any(r.probe == "determinism" and r.status == "fail" for r in result.rows)


def test_inconclusive_says_why(runtime_results):
    result = runtime_results["missing_import"]
    assert result.status == "inconclusive"
    assert any("fused_golf_kernels_cuda" in r for r in result.reasons), result.reasons
    findings = findings_for("fixtures/runtime/missing_import", runtime_results, ["PG908"])
    pg908 = [f for f in findings if f.code == "PG908"]
    assert pg908 and "fused_golf_kernels_cuda" in pg908[0].message


def test_wrapped_script_is_decoded_and_run(runtime_results):
    result = runtime_results["wrapped_legal"]
    assert result.script.rsplit("/", 1)[-1].startswith("__pg_decoded__")
    assert result.status == "pass", result.reasons


def test_audited_folders_are_unchanged(runtime_results):
    assert tree_digest(FIXTURES) == runtime_results["__digest_before__"]


@pytest.mark.parametrize(("name", "explained_by"), [
    ("bytes_remapped_targets", None),  # bytes of the clamped ids: no named error fits
    ("bytes_subset_denominator", "every target of the stream, not only the scored ones"),
    ("bytes_lut_space_twice", "leading space counted twice (a table that keeps it, plus the formula's extra byte)"),
])
def test_byte_accounting_errors_fail_the_byte_probe(name, explained_by, runtime_results):
    result = runtime_results[name]
    assert result.status == "fail", result.reasons
    row = next(r for r in result.failures if r.probe == "bytes")
    assert row.evidence["explained_by"] == explained_by
    assert abs(row.evidence["implied_bytes"] - row.evidence["canonical_bytes"]) > 10 * row.evidence["tolerance_bytes"]
    findings = findings_for(f"fixtures/runtime/{name}", runtime_results, ["PG206"])
    assert any(f.code == "PG206" and "bpb_accounting" in f.tags for f in findings)


@pytest.mark.parametrize("name", ["legal_sliding", "legal_ttt", "wrapped_legal", "bytes_sliding_scored_subset_legal"])
def test_legal_byte_accounting_passes_the_byte_probe(name, runtime_results):
    rows = [r for r in runtime_results[name].rows if r.probe == "bytes"]
    assert rows and all(r.status == "pass" for r in rows), [(r.scorer, r.status, r.detail) for r in rows]



DIAGNOSTIC = """
def eval_val_plain(args, model, val_tokens):
    seq = args.train_seq_len
    n = (val_tokens.numel() - 1) // seq * seq
    x, y = val_tokens[:n].view(-1, seq), val_tokens[1 : n + 1].view(-1, seq)
    with torch.inference_mode():
        logits = model.forward_logits(x)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1), reduction="none")
    return float(nll.mean())
"""


@needs_sandbox
def test_after_an_evaluation_fails_a_probe_the_others_are_not_replayed(tmp_path):
    # a fail is proof: a diagnostic evaluation probed after it would not change the verdict
    from auditor.discover import discover
    from auditor.evidence import AuditContext, Evidence

    from .conftest import LIMITS, SETTINGS

    folder = tmp_path / "ngram_after_a_diagnostic"
    shutil.copytree(REPO_ROOT / "fixtures" / "runtime" / "ngram_target_in_key", folder)
    script = folder / "train_gpt.py"
    call = "    loss, bpb = eval_val_sliding_ngram("
    text = script.read_text().replace("\ndef main():", DIAGNOSTIC + "\n\ndef main():")
    assert call in text
    script.write_text(text.replace(call, '    print(f"diagnostic val_loss:{eval_val_plain(args, model, val_tokens):.4f}")\n' + call))
    result = Evidence(discover([folder])[0], AuditContext(runtime=True, runtime_settings=SETTINGS,
                                                             runtime_limits=LIMITS)).runtime
    assert result is not None and result.status == "fail" and result.raw is not None
    rows = {sc.name: [(r.probe, r.status) for r in sc.probes] for sc in result.raw.scorers}
    assert ("substitution", "fail") in rows["eval_val_sliding_ngram"]  # the last evaluation goes first
    assert rows["eval_val_plain"] == [("replay", "skipped")]

"""The per-seed table: seeds, duplicates, the scored stage, sizes as submitted, claims."""

from __future__ import annotations

import json

import pytest

from auditor.discover import discover
from auditor.engine import AuditOptions, audit
from auditor.records import samples as S
from auditor.records.analysis import analyse
from auditor.records.claims import parse_claims
from auditor.rule import Case

from ..conftest import EXAMPLE, materialize


def _bundle(tmp_path, files):
    folder = materialize(Case(files=files), tmp_path / "case")
    (bundle,) = discover([folder])
    return bundle


def test_the_bundled_example_fills_seeds_and_facts(in_tmp):
    report = audit([str(EXAMPLE)])
    sub = report.submissions[0]
    assert sub.verdict.value == "clean"
    assert [s["seed"] for s in sub.seeds] == ["1337", "2024", "42"]
    first = sub.seeds[0]
    for key in ("val_bpb", "val_bpb_stage", "total_bytes_logged", "total_bytes_submitted", "model_bytes",
                "code_bytes_logged", "submitted_code_bytes", "train_s", "eval_s", "scored_eval_s", "world_size"):
        assert key in first, key
    assert sub.facts["tokenizer_family"] == "sp1024" and sub.facts["claimed_val_bpb"] == 1.22438876


def test_identical_logs_count_once(tmp_path):
    log = S.baseline_log(42)
    bundle = _bundle(tmp_path, S.folder({"train_seed42.log": log, "train.log": log}, {"val_bpb": 1.2247}))
    a = analyse(bundle)
    assert [r.seed for r in a.rows] == ["42"]
    assert [e.duplicate_of for e in a.logs if e.duplicate_of] == [bundle.file("train_seed42.log").path]


def test_claim_picks_the_stage_it_rests_on(tmp_path):
    extra = "pre_quant_sliding_window val_loss:0.0397 val_bpb:0.0235 stride:64 eval_time:65808175ms\n"
    log = S.baseline_log(42, extra=extra)
    bundle = _bundle(tmp_path, S.folder({"train_seed42.log": log}, {"val_bpb": 0.0235}))
    row = analyse(bundle).rows[0]
    assert row.score.raw_label == "pre_quant_sliding_window" and row.score_time.value == 65808.175
    assert "not a final score" in row.score_reason


def test_a_claim_without_a_final_stage_may_rest_on_a_training_time_validation(tmp_path):
    log = "".join(line for line in S.baseline_log(42).splitlines(keepends=True) if not line.startswith("final_"))
    rows = analyse(_bundle(tmp_path, S.folder({"train_seed42.log": log}, {"val_bpb": 1.2176}))).rows
    assert rows[0].score is not None and rows[0].score.raw_label == "step" and rows[0].score.bpb == 1.2176
    assert not rows[0].score.final and "training-time validation" in rows[0].score_reason
    # a claim no line shows still rests on nothing
    rows = analyse(_bundle(tmp_path / "other", S.folder({"train_seed42.log": log}, {"val_bpb": 1.1500}))).rows
    assert rows[0].score is None


def test_mean_claim_selects_a_stage_across_seeds(tmp_path):
    mix = "ppm_mix bytes=10982035 mix_bpb={v}\n"
    logs = {f"train_seed{k}.log": S.modern_log(k, after_eval=mix.format(v=v)) for k, v in ((1, 1.0002), (2, 1.0004))}
    bundle = _bundle(tmp_path, S.folder(logs, {"val_bpb": 1.0003}))
    rows = analyse(bundle).rows
    assert {r.score.label for r in rows} == {"ppm_mix:mix_bpb"}


def test_code_counted_as_shipped_and_helpers_listed(tmp_path):
    files = S.folder(
        {"train_seed1.log": S.baseline_log(1, model_bytes=15_000_000, code_bytes=10)},
        {"val_bpb": 1.2247},
        script=S.SCRIPT + "import helper\n",
        extra={"helper.py": "X = 1\n", "notes_prep.py": "print('not referenced')\n"},
    )
    a = analyse(_bundle(tmp_path, files))
    row = a.rows[0]
    assert row.code_counted == len((S.SCRIPT + "import helper\n").encode())
    assert row.submitted_total == 15_000_000 + row.code_counted
    assert [f.rel for f in a.helpers] == ["helper.py"] and row.with_helpers_total == row.submitted_total + 6


def test_seed_from_file_name_when_the_log_does_not_say(tmp_path):
    log = S.baseline_log(9).replace("seed:9\n", "")
    a = analyse(_bundle(tmp_path, S.folder({"run_seed2024.log": log}, {"val_bpb": 1.2247})))
    assert a.rows[0].seed == "2024"


def test_claims_variants():
    c = parse_claims("s.json", {"val_loss": 0.5440, "bytes_total": 15995959, "seeds": [42, 1337]})
    assert c.val_bpb is None and c.missing == ["val_bpb", "name/author", "github_id"] and c.seeds == ["42", "1337"]
    c = parse_claims("s.json", {"val_bpb_per_seed": {"42": 0.9018, "seed1337": 0.9033}, "artifact_bytes_per_seed": {"42": 15953988}})
    assert c.per_seed["1337"].bpb.value == 0.9033 and c.per_seed["42"].bytes.value == 15953988
    c = parse_claims("s.json", {"seed_results": {"7": {"val_bpb": "1.0801", "artifact_bytes": 15_900_000, "eval_time_ms": 626055}}})
    assert c.per_seed["7"].bpb.value == 1.0801 and c.per_seed["7"].eval_s.value == pytest.approx(626.055)
    c = parse_claims("s.json", {"val_bpb_mean": 1.1, "author": "a", "github_id": "a"})
    assert c.val_bpb.value == 1.1 and not c.missing


def test_log_without_any_figure_is_not_a_seed(tmp_path):
    a = analyse(_bundle(tmp_path, S.folder({"train_seed1.log": S.baseline_log(1), "notes.txt": "just notes\n"}, {"val_bpb": 1.2247})))
    assert [r.seed for r in a.rows] == ["1"]


def test_report_json_is_serialisable(tmp_path, monkeypatch):
    materialize(Case(files=S.folder({"train_seed1.log": S.modern_log(1)}, {"val_bpb": 1.0612})), tmp_path / "case")
    monkeypatch.chdir(tmp_path)
    report = audit(["case"], AuditOptions())
    json.dumps(report.to_dict())


def test_progress_lines_of_a_running_pass_are_not_stages(tmp_path):
    progress = "".join(f"  ttt_chunk [{i}/3] bpb=1.0{i} time={100.0 * i:.1f}s\n" for i in (1, 2, 3))
    log = S.modern_log(42, eval_ms=455_128).replace("beginning TTT eval timer\n", "beginning TTT eval timer\n" + progress)
    bundle = _bundle(tmp_path, S.folder({"train_seed42.log": log}, {"val_bpb": 1.0612}))
    (row,) = analyse(bundle).rows
    assert not any("ttt_chunk" in s.label for s in row.stages)
    # the two diagnostics (6.718 s, 49.995 s) and the scored pass (455.128 s); cumulative progress times left out
    assert row.eval_sum_s == pytest.approx(6.718 + 49.995 + 455.128)


def test_a_declared_non_record_submission_in_the_record_folder_is_held_to_the_non_record_rules(tmp_path):
    files = {"data/README.md": "shards go here\n"} | {
        f"records/track_10min_16mb/2026-04-01_Grant/{k}": v
        for k, v in S.folder({"train_seed1.log": S.baseline_log(1, train_ms=3_600_411)},
                             {"val_bpb": 1.2247, "track": "non-record-16mb"}).items()}
    folder = materialize(Case(files=files), tmp_path / "case")
    report = audit([str(folder / "records/track_10min_16mb/2026-04-01_Grant")], AuditOptions(select=["PG304", "PG308"]))
    found = {(f.code, f.severity.value) for f in report.findings}
    assert ("PG304", "note") in found and ("PG304", "error") not in found
    assert ("PG308", "warning") in found  # filed in the wrong track


def test_an_mlx_run_is_not_timed_as_8xh100(tmp_path):
    log = "Running MLX 0.31.1\nmlx_version:0.31.1\n" + S.baseline_log(1, eval_ms=1_011_771).replace("world_size:8 grad_accum_steps:1\n", "")
    folder = materialize(Case(files=S.folder({"train_seed1.log": log}, {"val_bpb": 1.2247})), tmp_path / "case")
    report = audit([str(folder)], AuditOptions(select=["PG303"]))
    (finding,) = report.findings
    assert finding.severity.value == "warning" and "Apple silicon (MLX)" in finding.message


def test_a_seed_the_submission_does_not_name_is_not_its_evidence(tmp_path):
    logs = {"train_seed1337.log": S.baseline_log(1337), "train_seed7.log": S.baseline_log(7, model_bytes=16_100_000)}
    folder = materialize(Case(files=S.folder(logs, {"val_bpb": 1.2247, "seed": 1337})), tmp_path / "case")
    report = audit([str(folder)], AuditOptions(select=["PG301"]))
    (finding,) = report.findings
    assert finding.severity.value == "note" and "the one seed submission.json names" in finding.message
    # named, the same log is the claim's evidence: an error
    folder = materialize(Case(files=S.folder(logs, {"val_bpb": 1.2247, "seeds": [1337, 7]})), tmp_path / "both")
    assert {f.severity.value for f in audit([str(folder)], AuditOptions(select=["PG301"])).findings} == {"error"}

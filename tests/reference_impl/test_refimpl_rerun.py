"""The rerun driver: log parsing, the side-by-side comparison, and a shortened smoke rerun whose
records folder is checked against the challenge's formats."""

from __future__ import annotations

import json
import re

import pytest

from reference_impl import rerun
from reference_impl.quantize import ENTRY_SCRIPT, code_bytes, submission_code_files

# A made-up log in the challenge's formats (console capture: noise lines first, other ranks' lines mixed in).
RECORD_LOG = """\
W0101 00:00:00.000000 1 site-packages/torch/distributed/run.py:852] some torchrun warning
logs/example.txt
model_params:17059912
step:1/20000 train_loss:6.9000 train_time:40ms step_avg:40.00ms
[rank3]:[W101 00:00:01] a warning from another rank
step:1000/20000 val_loss:2.3400 val_bpb:1.3800 train_time:43000ms step_avg:43.00ms
step:13000/20000 train_loss:2.0500 train_time:600010ms step_avg:46.15ms
step:13001/20000 val_loss:2.0600 val_bpb:1.2200 train_time:600050ms step_avg:46.15ms
stopping_early: wallclock_cap train_time:600050ms step:13001/20000
Serialized model: 67000000 bytes
Code size: 47000 bytes
Total submission size: 67047000 bytes
Serialized model int8+zlib: 15800000 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)
Total submission size int8+zlib: 15847000 bytes
final_int8_zlib_roundtrip val_loss:2.0700 val_bpb:1.2250 eval_time:1500ms
final_int8_zlib_roundtrip_exact val_loss:2.07012345 val_bpb:1.22501234
"""


def test_parse_log_reads_the_final_exact_stage_sizes_and_times(tmp_path):
    path = tmp_path / "train.log"
    path.write_text(RECORD_LOG)
    facts = rerun.parse_log(path)
    assert facts.final == {"label": "final_int8_zlib_roundtrip", "val_loss": 2.07012345, "val_bpb": 1.22501234,
                           "eval_ms": 1500}
    assert (facts.model_bytes, facts.code_bytes, facts.total_bytes, facts.fmt) == (15800000, 47000, 15847000,
                                                                                 "int8+zlib")
    assert (facts.steps, facts.iterations, facts.train_time_ms, facts.stopped_early) == (13001, 20000, 600050, True)
    assert facts.step_avg_ms == 46.15
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    with pytest.raises(ValueError, match="no final"):
        _ = rerun.parse_log(empty).final


def test_compare_prints_both_runs_and_the_differences(tmp_path):
    ours = tmp_path / "ours.log"
    ours.write_text(RECORD_LOG.replace("val_bpb:1.22501234", "val_bpb:1.22401234").replace("15847000", "15850000"))
    theirs = tmp_path / "theirs.log"
    theirs.write_text(RECORD_LOG)
    table = rerun.compare(ours, theirs)
    assert re.search(r"val_bpb\s+1\.22401234\s+1\.22501234\s+-0\.00100000", table)
    assert re.search(r"bytes_total\s+15,850,000\s+15,847,000\s+\+3,000", table)
    assert re.search(r"step_avg_ms\s+46\.15\s+46\.15\s+\+0\.00", table)
    assert re.search(r"train_time_ms\s+600,050\s+600,050", table)


def test_main_rejects_incomplete_arguments(capsys):
    for argv in ([], ["--data", "x"], ["--smoke", "--data", "x", "--tokenizer", "t.model"]):
        with pytest.raises(SystemExit) as info:
            rerun.main(argv)
        assert info.value.code == 2


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    # The full smoke (200 steps) is measured by benchmarks/reference_speed.py; this is the same
    # pipeline with fewer steps so that the test suite stays fast.
    return rerun.run_smoke(tmp_path_factory.mktemp("smoke"), console=False, iterations=40, val_loss_every=20,
                           ttt_epochs=1)


@pytest.mark.slow
def test_shortened_smoke_rerun_writes_a_consistent_records_folder(smoke_record):
    record = smoke_record
    assert sorted(p.name for p in record.iterdir()) == ["README.md", "reference_impl", "submission.json", "train.log",
                                                        "train_gpt.py"]
    submission = json.loads((record / "submission.json").read_text())
    assert {"author", "name", "date", "val_bpb", "val_loss", "bytes_total", "bytes_code", "track", "seeds"} \
        <= set(submission)
    log = (record / "train.log").read_text().splitlines()
    # the claim is the last stage, and each stage's _exact twin carries the numbers of record
    stages = [line.split()[0] for line in log if " val_loss:" in line and not line.startswith("step:")]
    assert stages == ["final_int8_zlib_roundtrip", "final_int8_zlib_roundtrip_exact", "final_sliding_window",
                      "final_sliding_window_exact", "final_ngram_mixer", "final_ngram_mixer_exact", "legal_ttt",
                      "legal_ttt_exact"]
    assert log[-1] == f"legal_ttt_exact val_loss:{submission['val_loss']:.8f} val_bpb:{submission['val_bpb']:.8f}"
    assert f"Total submission size int8+zlib: {submission['bytes_total']} bytes" in log
    assert f"Code size: {submission['bytes_code']} bytes" in log
    assert submission["bytes_code"] == code_bytes()
    assert submission["seeds"] == [1337] and submission["track"] == "non_record_16mb"
    copied = {p.name: p.read_bytes() for p in (record / "reference_impl").iterdir()}
    assert copied == {p.name: p.read_bytes() for p in submission_code_files()}
    entry = (record / "train_gpt.py").read_bytes()
    assert entry == ENTRY_SCRIPT.encode()
    assert sum(len(b) for b in copied.values()) + len(entry) == submission["bytes_code"]
    readme = (record / "README.md").read_text()
    assert f"{submission['val_bpb']:.8f}" in readme and "python -m reference_impl.rerun --smoke" in readme


@pytest.mark.slow
def test_the_smoke_record_is_audited_clean_with_its_code_counted(smoke_record):
    """`pgolf-audit check` reads the rerun's folder like any submission, and finds nothing."""
    from auditor.engine import audit

    record = smoke_record
    report = audit([record])
    (sub,) = report.submissions
    assert sub.verdict.value == "clean", [f"{f.code} {f.message}" for f in sub.findings]
    from auditor.discover import discover

    (bundle,) = discover([record])
    counted = {f.rel for f in bundle.code_files}
    assert counted == {"train_gpt.py"} | {f"reference_impl/{p.name}" for p in submission_code_files()}
    submission = json.loads((record / "submission.json").read_text())
    assert sum(f.size for f in bundle.code_files) == submission["bytes_code"]


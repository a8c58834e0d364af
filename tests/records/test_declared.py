"""Declared facts: what a README and submission.json say about the run, and how the checks use it."""

from __future__ import annotations

import pytest

from auditor.discover import discover
from auditor.engine import AuditOptions, audit
from auditor.records import samples as S
from auditor.records.analysis import analyse
from auditor.records.declared import _declares_val_training, parse_hardware
from auditor.rule import Case

from ..conftest import materialize


def _findings(tmp_path, files, code):
    folder = materialize(Case(files=files), tmp_path / "case")
    report = audit([str(folder)], AuditOptions(select=[code]))
    return [f for s in report.submissions for f in s.findings if f.code == code and f.counts]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8xH100 80GB SXM", (8, "H100 80GB SXM")),
        ("8×H100 SXM (RunPod)", (8, "H100 SXM")),
        ("RTX A6000", (None, "RTX A6000")),
        ("1x RTX A6000", (1, "RTX A6000")),
        ("1x A100 80GB", (1, "A100 80GB")),
        ("H100 x 8", (8, "H100")),
        ("NVIDIA GeForce RTX 4090", (None, "GeForce RTX 4090")),
        ("RunPod community cloud", None),
    ],
)
def test_hardware_values(value, expected):
    assert parse_hardware(value) == expected


@pytest.mark.parametrize(
    "sentence",
    [
        "We train on the validation shard for 2 epochs.",
        "We train for two epochs on the full validation split.",
        "Pre-quant TTT trains on validation data BEFORE quantization",
        "The model is trained with fineweb_val_000000.bin as its training data",
        "TRAIN_FILES=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin torchrun train_gpt.py",
    ],
)
def test_statements_of_training_on_validation_data(sentence):
    assert _declares_val_training(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "No training on validation data: training uses fineweb_train_*.bin exclusively.",
        "Fort Knox never trains on the validation set.",
        "The short-doc TTT schedule does not train on future validation tokens.",
        "then use score-first test-time training on val data.",
        '"You can\'t cheat by training on the validation set before you evaluate on the validation set."',
        "we trained on 8B tokens then evaluated on the validation set",
        "trained the model using fineweb_train, and evaluated with the validation set",
        "Training uses the validation set only for periodic monitoring.",
        "Optional post-training KL-divergence adaptation on validation data (off by default).",
    ],
)
def test_sentences_that_are_not_such_statements(sentence):
    assert _declares_val_training(sentence) is None


def test_declared_facts_are_in_the_analysis_with_their_lines(tmp_path):
    readme = "# Run\n\n| Hardware | 1x RTX A6000 |\n| Training time | 120 min |\n\nWe train on the validation shard.\n"
    folder = materialize(Case(files=S.folder({}, {"val_bpb": 1.2, "wallclock_minutes": 120}, extra={"README.md": readme})),
                         tmp_path / "case")
    (bundle,) = discover([folder])
    d = analyse(bundle).declared
    assert [(s.line, s.value) for s in d.hardware] == [(3, (1, "RTX A6000"))]
    assert sorted((s.path.rsplit("/", 1)[-1], s.value) for s in d.train_time) == [
        ("README.md", (7200.0, True)), ("submission.json", (7200.0, False)),
    ]
    assert [s.line for s in d.val_training] == [6]
    facts = analyse(bundle).facts()
    assert "declared_hardware" in facts and "declared_val_training" in facts


def test_declared_training_time_severity(tmp_path):
    def severities(fields):
        return [f.severity.value for f in _findings(tmp_path / str(len(fields)) / "x", S.folder({}, fields), "PG304")]

    assert severities({"val_bpb": 1.2, "wallclock_minutes": 120}) == ["error"]
    assert severities({"val_bpb": 1.2, "wallclock_minutes": 15, "x": 1}) == ["warning"]  # may include the eval
    assert severities({"val_bpb": 1.2, "train_time_seconds": 700, "y": 1, "z": 2}) == ["error"]
    assert severities({"val_bpb": 1.2, "track": "track_non_record_16mb", "wallclock_minutes": 120, "a": 1, "b": 2, "c": 3}) == ["note"]


def test_logs_come_before_declarations(tmp_path):
    # a log shows the training time and the hardware: the declarations do not add findings
    files = S.folder({"train_seed42.log": S.baseline_log(42)}, {"val_bpb": 1.2247, "wallclock_minutes": 120, "hardware": "RTX A6000"})
    assert _findings(tmp_path / "a", files, "PG304") == []
    assert _findings(tmp_path / "b", files, "PG310") == []


def test_declared_val_training_is_an_error_at_its_line(tmp_path):
    readme = "# Run\n\nTraining data: we train on the validation shard, then quantize.\n"
    (finding,) = _findings(tmp_path, S.folder({}, {"val_bpb": 1.2}, extra={"README.md": readme}), "PG307")
    assert finding.severity.value == "error" and finding.location.line == 3
    assert finding.location.path.endswith("README.md")

"""Exit codes and the commands other than check's formats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import EXAMPLE, FIXTURES, REPO_ROOT, run_cli

CLEAN = str(EXAMPLE)
VIOLATION = str(FIXTURES / "wrappers" / "lzma_b85")
WARNING_ONLY = str(FIXTURES / "wrappers" / "bomb")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["check", CLEAN], 0),
        (["check", VIOLATION], 1),
        (["check", VIOLATION, "--exit-zero"], 0),
        # the bomb's payload was not decoded (PG904, a warning): an incomplete audit
        (["check", WARNING_ONLY], 2),
        (["check", WARNING_ONLY, "--allow-tool-errors"], 0),
        (["check", WARNING_ONLY, "--exit-zero"], 0),
        (["check", WARNING_ONLY, "--fail-level", "warning"], 1),
        (["check", CLEAN, VIOLATION], 1),
        (["check", VIOLATION, "--ignore", "PG109"], 0),
        (["check", VIOLATION, "--select", "PG9"], 0),
        (["check", VIOLATION, "--select", "XX9"], 2),
        (["check", VIOLATION, "--ignore", "PG1O9"], 2),
        (["check", "no/such/path"], 2),
        (["check", CLEAN, "no/such/path"], 2),
        (["check", CLEAN, "no/such/path", "--exit-zero"], 2),
        (["check", CLEAN, "--format", "yaml"], 2),
        (["check"], 2),
        (["nonsense"], 2),
        (["rules"], 0),
        (["rules", "--format", "json"], 0),
        (["explain", "PG904"], 0),
        (["explain", "wrapper-not-unpacked"], 0),
        (["explain", "PG000"], 2),
    ],
)
def test_exit_codes(args, code):
    result = run_cli(*args)
    assert result.code == code, (result.stdout[-500:], result.stderr[-500:])
    assert "Traceback" not in result.stderr


def test_explain_prints_the_rule_doc():
    result = run_cli("explain", "PG904", "--raw")
    assert result.stdout.startswith("# PG904 wrapper-not-unpacked")
    for section in ("What it does", "Why is this bad?", "Example", "Use instead", "References"):
        assert f"## {section}" in result.stdout


def test_python_dash_m_and_version():
    done = subprocess.run([sys.executable, "-m", "auditor", "--version"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0 and done.stdout.startswith("pgolf-audit ")


def test_console_script_is_installed():
    done = subprocess.run(["pgolf-audit", "check", CLEAN, "-q"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert "CLEAN" in done.stdout


def test_a_missing_path_among_several_is_reported_after_what_was_audited():
    result = run_cli("check", CLEAN, "no/such/path", "-f", "json")
    assert result.code == 2
    report = json.loads(result.stdout)
    assert [s["verdict"] for s in report["submissions"]] == ["clean"]
    assert report["not_audited"] == ["no such file or directory: no/such/path"]
    assert "not audited: no such file or directory: no/such/path" in result.stderr


def test_an_unknown_code_names_the_valid_codes_and_prefixes():
    result = run_cli("check", CLEAN, "--select", "PG1,XX9")
    assert result.code == 2 and result.stdout == ""
    assert "unknown code or prefix XX9" in result.stderr
    assert "PG101-" in result.stderr and "PG901-" in result.stderr and "PG1 static" in result.stderr


@pytest.mark.parametrize("folder", ["empty", "wheels"])
def test_a_folder_without_a_submission_is_not_clean(tmp_path, folder):
    path = tmp_path / folder
    path.mkdir()
    if folder == "wheels":
        (path / "dep-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04")
    result = run_cli("check", path, "-f", "json")
    assert result.code == 2, result.stderr
    sub = json.loads(result.stdout)["submissions"][0]
    assert sub["verdict"] == "review" and "PG905" in {f["code"] for f in sub["findings"]}


@pytest.mark.parametrize("args", [["causality", CLEAN], ["check", CLEAN, "--runtime"]])
def test_the_runtime_harness_without_the_runtime_extra_names_the_install_command(args, monkeypatch):
    monkeypatch.delenv("PGOLF_AUDIT_RUNTIME_PYTHON", raising=False)
    monkeypatch.setitem(sys.modules, "numpy", None)  # as if numpy were not installed
    result = run_cli(*args)
    assert result.code == 2 and result.stdout == ""
    assert "numpy not installed" in result.stderr
    assert "pip install 'parameter-golf-auditor[runtime]'" in result.stderr

"""Exit codes and the commands other than check's formats."""

from __future__ import annotations

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
        (["check", WARNING_ONLY], 0),
        (["check", WARNING_ONLY, "--fail-level", "warning"], 1),
        (["check", CLEAN, VIOLATION], 1),
        (["check", VIOLATION, "--ignore", "PG109"], 0),
        (["check", VIOLATION, "--select", "PG9"], 0),
        (["check", "no/such/path"], 2),
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

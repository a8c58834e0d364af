"""Shared test helpers: the repository root, running the CLI, materializing rule cases."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from auditor.cli import main
from auditor.rule import Case

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "fixtures"
EXAMPLE = FIXTURES / "examples" / "2026-03-17_TinyBaseline"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``pgolf-audit`` in-process and capture what it prints."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
    return CliResult(code, out.getvalue(), err.getvalue())


def materialize(case: Case, root: Path) -> Path:
    """Write a rule case into a folder and return it."""
    root.mkdir(parents=True, exist_ok=True)
    if case.folder:
        shutil.copytree(REPO_ROOT / case.folder, root, dirs_exist_ok=True)
    code = case.materialize_code()
    if code is not None:
        (root / "train_gpt.py").write_text(code, encoding="utf-8")
    for rel, content in case.files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run with the working directory in a temporary folder (paths are shown relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

"""[tool.pgolf-audit] in pyproject.toml: found from the audited path upward, overridden by the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from auditor.cli import parse_args
from auditor.config import candidates

from .conftest import EXAMPLE, FIXTURES, run_cli

VIOLATION = FIXTURES / "wrappers" / "lzma_b85"  # PG109, an error


def _project(root: Path, table: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f"[project]\nname = 'x'\n\n[tool.pgolf-audit]\n{table}\n")
    return root


def _submission(root: Path, source: Path = VIOLATION) -> Path:
    target = root / "records" / "track_10min_16mb" / "2026-04-01_X"
    shutil.copytree(source, target)
    return target


def test_select_from_the_closest_pyproject_and_the_cli_overrides_it(tmp_path):
    folder = _submission(_project(tmp_path / "repo", 'select = ["PG3", "PG9"]'))
    assert run_cli("check", folder).code == 0  # PG109 is not selected
    assert run_cli("check", folder, "--select", "PG1").code == 1
    assert run_cli("check", folder, "--isolated").code == 1


def test_fail_level_ignore_and_tool_errors(tmp_path):
    root = _project(tmp_path / "repo", 'ignore = ["PG109"]\nfail-level = "note"\nallow-tool-errors = true')
    args = parse_args(["check", str(_submission(root))])
    assert args.ignore == ["PG109"] and args.fail_level == "note" and args.allow_tool_errors
    assert args.config == str((root / "pyproject.toml").resolve())
    assert parse_args(["check", str(root), "--fail-level", "error"]).fail_level == "error"


def test_significance_baseline_and_waivers_paths_are_relative_to_the_file(tmp_path):
    root = _project(tmp_path / "repo", 'significance = "welch"\nbaseline-seeds = [1.06, 1.07]\n'
                    'baseline-pr = 1868\nwaivers = "audit/waivers.toml"\nbaseline = "records/base"')
    args = parse_args(["check", str(root)])
    assert args.significance == "welch" and args.baseline_seeds == [1.06, 1.07]
    assert args.waivers == (root / "audit" / "waivers.toml").resolve()
    assert args.baseline == str((root / "records" / "base").resolve())
    assert parse_args(["pr", "1", "--repo", str(root)]).baseline_pr == 1868


def test_a_pyproject_of_the_audited_code_is_never_read(tmp_path):
    root = tmp_path / "repo"
    folder = _submission(root)
    _project(folder, 'ignore = ["PG1"]')  # shipped inside the submission
    _project(root / "records", 'ignore = ["PG1"]')  # anywhere under records/
    assert run_cli("check", folder).code == 1
    loose = _submission(tmp_path / "elsewhere")
    _project(loose, 'ignore = ["PG1"]')
    assert loose / "pyproject.toml" not in list(candidates(loose))
    assert run_cli("check", loose / "train_gpt.py").code == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('selct = ["PG1"]', "unknown key selct"),
        ('fail-level = "fatal"', "fail-level must be one of error, warning, note"),
        ('select = ["XX9"]', "unknown code or prefix XX9"),
        ("select = [", "not valid TOML"),
    ],
)
def test_a_malformed_table_is_a_usage_error(tmp_path, table, message):
    root = _project(tmp_path / "repo", table)
    shutil.copytree(EXAMPLE, root / "example")
    result = run_cli("check", root / "example")
    assert result.code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def test_the_ci_gate_reads_the_table_at_the_base_commit(tmp_path):
    repo = _project(tmp_path / "repo", 'select = ["PG1", "PG3"]')
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    _git(repo, "checkout", "-q", "-b", "pr")
    _submission(repo)
    _project(repo, 'ignore = ["PG1"]')  # the pull request tries to switch the check off
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pr")
    result = run_cli("ci", "--repo", repo, "--base", "main", "--head", "pr", "--format", "console")
    assert result.code == 1, result.stdout  # PG109 still fails the gate

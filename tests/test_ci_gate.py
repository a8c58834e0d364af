"""The CI gate, run as the action runs it, on fixture pull requests in a local git repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from auditor.ci import folders_of, records_folder_of

from .conftest import EXAMPLE, FIXTURES, REPO_ROOT, run_cli

TRACK = "records/track_10min_16mb"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def pr_repo(tmp_path) -> Path:
    """main holds one accepted record; branch 'pr' adds a clean folder and a violating one."""
    repo = tmp_path / "parameter-golf"
    shutil.copytree(EXAMPLE, repo / TRACK / "2026-03-17_Existing")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "main")
    _git(repo, "checkout", "-q", "-b", "pr")
    shutil.copytree(EXAMPLE, repo / TRACK / "2026-04-01_CleanCopy")
    shutil.copytree(FIXTURES / "wrappers" / "lzma_b85", repo / TRACK / "2026-04-02_Downloads")
    (repo / TRACK / "2026-03-17_Existing" / "README.md").write_text("edited, not added\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pr")
    return repo


def test_records_folder_of():
    assert records_folder_of("records/track_10min_16mb/2026-04-01_X/train_gpt.py") == "records/track_10min_16mb/2026-04-01_X"
    assert records_folder_of("records/track_10min_16mb/2026-04-01_X/logs/a.txt") == "records/track_10min_16mb/2026-04-01_X"
    assert records_folder_of("README.md") is None and records_folder_of("records/track_10min_16mb") is None
    assert folders_of(["records/t/a/x.py", "records/t/a/y.log", "records/t/b/z.py", "other.py"]) == ["records/t/a", "records/t/b"]


def test_gate_audits_only_added_folders_and_writes_every_output(pr_repo, tmp_path, monkeypatch):
    out = tmp_path / "out"
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = run_cli("ci", "--repo", pr_repo, "--base", "main", "--head", "pr", "--out-dir", out, "--pr", "42", "--format", "github")
    assert result.code == 1, result.stderr
    assert "2026-04-01_CleanCopy" in result.stderr and "2026-04-02_Downloads" in result.stderr
    assert "2026-03-17_Existing" not in result.stderr  # modified, not added
    assert sorted(p.name for p in out.iterdir()) == ["pr.json", "report.json", "report.md", "report.sarif"]
    report = json.loads((out / "report.json").read_text())
    verdicts = {s["path"]: s["verdict"] for s in report["submissions"]}
    assert verdicts == {f"{TRACK}/2026-04-01_CleanCopy": "clean", f"{TRACK}/2026-04-02_Downloads": "violation"}
    assert all(s["pr"] == 42 and len(s["head_sha"]) == 40 for s in report["submissions"])
    assert json.loads((out / "pr.json").read_text())["pr"] == 42
    assert f"::error file={TRACK}/2026-04-02_Downloads/train_gpt.py,line=2" in result.stdout
    assert summary.read_text().startswith("<!-- pgolf-audit:review -->")
    sarif = json.loads((out / "report.sarif").read_text())
    assert sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith(TRACK)


def test_gate_passes_when_only_clean_folders_are_added(pr_repo, tmp_path):
    _git(pr_repo, "checkout", "-q", "-b", "clean-only", "main")
    shutil.copytree(EXAMPLE, pr_repo / TRACK / "2026-04-03_Clean")
    _git(pr_repo, "add", "-A")
    _git(pr_repo, "commit", "-qm", "clean")
    result = run_cli("ci", "--repo", pr_repo, "--base", "main", "--head", "clean-only", "--out-dir", tmp_path / "o")
    assert result.code == 0, result.stdout


def test_gate_with_no_records_folder(pr_repo, tmp_path):
    _git(pr_repo, "checkout", "-q", "-b", "docs", "main")
    (pr_repo / "NOTES.md").write_text("x\n")
    _git(pr_repo, "add", "-A")
    _git(pr_repo, "commit", "-qm", "docs")
    result = run_cli("ci", "--repo", pr_repo, "--base", "main", "--head", "docs", "--out-dir", tmp_path / "o")
    assert result.code == 0
    assert "no records folder added" in result.stderr
    assert "nothing to audit" in (tmp_path / "o" / "report.md").read_text()


def test_gate_fails_on_a_folder_it_could_not_audit_unless_tool_errors_are_allowed(pr_repo, tmp_path):
    _git(pr_repo, "checkout", "-q", "-b", "wheels", "main")
    folder = pr_repo / TRACK / "2026-04-04_OnlyWheels"
    folder.mkdir(parents=True)
    (folder / "dep-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04")
    _git(pr_repo, "add", "-A")
    _git(pr_repo, "commit", "-qm", "wheels")
    args = ("ci", "--repo", pr_repo, "--base", "main", "--head", "wheels", "--format", "console")
    result = run_cli(*args)
    assert result.code == 2 and "PG905" in result.stdout  # nothing to audit is not a pass
    assert run_cli(*args, "--allow-tool-errors").code == 0


def test_bad_base_is_a_usage_error(pr_repo):
    result = run_cli("ci", "--repo", pr_repo, "--base", "no-such-ref", "--head", "pr")
    assert result.code == 2 and "cannot diff" in result.stderr


def test_pre_commit_style_files(pr_repo):
    staged = [str(pr_repo / TRACK / "2026-04-02_Downloads" / "train_gpt.py")]
    result = run_cli("ci", "--repo", pr_repo, *staged, "--format", "console")
    assert result.code == 1 and "2026-04-02_Downloads" in result.stdout


def _action_audit_script() -> str:
    """The 'run:' block of the audit step of action.yml, as the runner executes it."""
    text = (REPO_ROOT / "action.yml").read_text()
    step = text.split("- name: Audit the records folders the change adds", 1)[1]
    block = step.split("      run: |\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("        "):
            break
        lines.append(line[8:])
    return "\n".join(lines)


def test_the_action_script_itself(pr_repo, tmp_path):
    script = _action_audit_script()
    assert "pgolf-audit" in script and "--no-inline-suppressions" in script
    out = tmp_path / "action-out"
    env = {
        **os.environ,
        "PGA_BASE": "main", "PGA_HEAD": "pr", "PGA_PR": "7", "PGA_FAIL_LEVEL": "error", "PGA_RUNTIME": "false",
        "PGA_WAIVERS": "", "PGA_INLINE": "false", "PGA_ANNOTATIONS": "10", "PGA_OUT": str(out),
        "GITHUB_ACTIONS": "true",
    }
    env.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(["bash", "-e", "-c", script], cwd=pr_repo, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert re.search(r"^::error file=records/.*2026-04-02_Downloads/train_gpt.py", done.stdout, re.M)
    assert (out / "report.sarif").exists() and json.loads((out / "pr.json").read_text())["pr"] == 7


@pytest.mark.parametrize(("allow", "code"), [("false", 2), ("true", 0)])
def test_the_action_fails_an_incomplete_audit_unless_told_otherwise(pr_repo, tmp_path, allow, code):
    _git(pr_repo, "checkout", "-q", "-b", "wheels", "main")
    folder = pr_repo / TRACK / "2026-04-04_OnlyWheels"
    folder.mkdir(parents=True)
    (folder / "dep-1.0-py3-none-any.whl").write_bytes(b"PK\x03\x04")
    _git(pr_repo, "add", "-A")
    _git(pr_repo, "commit", "-qm", "wheels")
    env = {
        **os.environ,
        "PGA_BASE": "main", "PGA_HEAD": "wheels", "PGA_PR": "", "PGA_FAIL_LEVEL": "error", "PGA_RUNTIME": "false",
        "PGA_WAIVERS": "", "PGA_INLINE": "false", "PGA_TOOL_ERRORS": allow, "PGA_ANNOTATIONS": "10",
        "PGA_OUT": str(tmp_path / "out"), "GITHUB_ACTIONS": "true",
    }
    env.pop("GITHUB_STEP_SUMMARY", None)
    done = subprocess.run(["bash", "-e", "-c", _action_audit_script()], cwd=pr_repo, env=env, capture_output=True, text=True)
    assert done.returncode == code, done.stderr


def test_workflows_keep_untrusted_code_away_from_the_write_token():
    audit = (REPO_ROOT / "examples" / "workflows" / "pgolf-audit.yml").read_text()
    comment = (REPO_ROOT / "examples" / "workflows" / "pgolf-audit-comment.yml").read_text()
    assert "pull_request:" in audit and "pull_request_target" not in audit
    assert re.search(r"permissions:\n  contents: read\n", audit)
    assert "workflow_run:" in comment and "checkout" not in comment
    assert "head.sha" in comment  # the PR number from the artifact is verified against the API
    assert 'user.login == \\"github-actions[bot]\\"' in comment  # only the bot's own comment is edited


def _violation_fingerprint(pr_repo, tmp_path) -> tuple[str, str]:
    out = tmp_path / "probe"
    run_cli("ci", "--repo", pr_repo, "--base", "main", "--head", "pr", "--out-dir", out)
    report = json.loads((out / "report.json").read_text())
    (finding,) = [f for s in report["submissions"] for f in s["findings"] if f["severity"] == "error"]
    return finding["code"], finding["fingerprint"]


def _waiver(code: str, fingerprint: str) -> str:
    return f'[[waiver]]\ncode = "{code}"\nfingerprint = "{fingerprint}"\nreason = "accepted by the maintainers"\n'


def test_a_pull_request_cannot_waive_its_own_findings(pr_repo, tmp_path):
    code, fingerprint = _violation_fingerprint(pr_repo, tmp_path)
    (pr_repo / ".github").mkdir()
    (pr_repo / ".github" / "waivers.toml").write_text(_waiver(code, fingerprint))
    _git(pr_repo, "add", "-A")
    _git(pr_repo, "commit", "-qm", "waive my own finding")
    result = run_cli("ci", "--repo", pr_repo, "--base", "main", "--head", "pr", "--waivers",
                     pr_repo / ".github" / "waivers.toml")
    assert result.code == 1, result.stderr  # read at the base commit, where the file does not exist


def test_waivers_at_the_base_apply_and_must_match_code_and_fingerprint(pr_repo, tmp_path):
    code, fingerprint = _violation_fingerprint(pr_repo, tmp_path)
    _git(pr_repo, "checkout", "-q", "main")
    (pr_repo / "waivers.toml").write_text(_waiver(code, fingerprint) + _waiver("PG301", "0" * 16))
    _git(pr_repo, "add", "-A")
    _git(pr_repo, "commit", "-qm", "maintainers waive it")
    _git(pr_repo, "checkout", "-q", "pr")
    _git(pr_repo, "rebase", "-q", "main")
    args = ["ci", "--repo", pr_repo, "--base", "main", "--head", "pr", "--waivers", "waivers.toml"]
    result = run_cli(*args)
    assert result.code == 0, result.stderr
    assert "unused waiver PG301" in result.stderr  # a note
    assert run_cli(*args, "--fail-on-unused-waivers").code == 1
    # the same fingerprint under another code waives nothing
    _git(pr_repo, "checkout", "-q", "main")
    (pr_repo / "waivers.toml").write_text(_waiver("PG301", fingerprint))
    _git(pr_repo, "commit", "-qam", "wrong code")
    _git(pr_repo, "checkout", "-q", "pr")
    _git(pr_repo, "rebase", "-q", "main")
    assert run_cli(*args).code == 1


def test_third_party_actions_are_pinned_to_a_commit_sha():
    # a tag can be moved to other code after review; a commit SHA cannot
    files = [REPO_ROOT / "action.yml", *sorted((REPO_ROOT / "examples" / "workflows").glob("*.yml"))]
    seen = 0
    for path in files:
        for line in path.read_text().splitlines():
            match = re.search(r"uses:\s*([\w.-]+/[\w./-]+)@(\S+)", line)
            if match is None or match.group(1).startswith("OWNER/"):
                continue
            seen += 1
            assert re.fullmatch(r"[0-9a-f]{40}", match.group(2)), f"{path.name}: {line.strip()}"
            assert re.search(r"#\s*v\d+\.\d+\.\d+", line), f"{path.name}: the release is not named: {line.strip()}"
    assert seen >= 4

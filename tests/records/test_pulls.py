"""PR discovery, ``pgolf-audit pr`` and ``pgolf-audit triage`` on a small hand-made clone."""

from __future__ import annotations

import json
import subprocess

import pytest

from auditor import registry
from auditor.commands.triage import parse_prs, triage
from auditor.engine import AuditOptions
from auditor.errors import UsageError
from auditor.gitrepo import GitRepo
from auditor.pulls import PullIndex, group_folders, main_ref, pull_heads
from auditor.records import samples as S
from auditor.suppress import Waiver

from ..conftest import run_cli

TRACK = "records/track_10min_16mb"


def _git(cwd, *args) -> str:
    env_args = ["-c", "user.email=a@b", "-c", "user.name=a", "-c", "init.defaultBranch=main"]
    done = subprocess.run(["git", "-C", str(cwd), *env_args, *args], check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _folder(name, **log):
    files = S.folder({"train_seed42.log": S.baseline_log(42, **log)}, {"val_bpb": 1.2247})
    return {f"{TRACK}/{name}/{k}": v for k, v in files.items()}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    root = tmp_path_factory.mktemp("pg")
    _git(root, "init", "-q")
    _write(root, {"README.md": "challenge\n", **_folder("2026-03-17_Base")})
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    base = _git(root, "rev-parse", "HEAD")

    def branch(name, files, ref):
        _git(root, "checkout", "-q", "-b", name, base)
        _write(root, files)
        _git(root, "add", "-A")
        _git(root, "commit", "-qm", name)
        _git(root, "update-ref", ref, "HEAD")

    branch("open", {**_folder("2026-04-01_Open", model_bytes=15_999_990), "README.md": "edited\n"}, "refs/pull/1/head")
    branch("merged", _folder("2026-04-02_Merged"), "refs/pull/2/head")
    branch("docs", {"docs/notes.md": "no records\n"}, "refs/pull/3/head")
    branch("edit", {f"{TRACK}/2026-03-17_Base/extra.log": "more\n"}, "refs/pull/4/head")
    branch("two", {**_folder("2026-04-05_A"), **{f"{TRACK}/{k}": v for k, v in _folder("2026-04-05_B").items()}},
           "refs/remotes/origin/pr/6")
    branch("again", _folder("2026-04-05_A"), "refs/pull/8/head")  # PR 6's first folder, on its own
    _git(root, "checkout", "-q", "main")
    _git(root, "merge", "-q", "--no-ff", "-m", "merge 2", "merged")
    _write(root, {"later.md": "after the merge\n"})
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "later")
    return root


def test_heads_and_main(clone):
    with GitRepo(clone) as repo:
        assert sorted(pull_heads(repo)) == [1, 2, 3, 4, 6, 8]
        assert main_ref(repo) == _git(clone, "rev-parse", "main")


def test_folders_each_pr_adds(clone):
    with GitRepo(clone) as repo:
        heads = pull_heads(repo)
        index = PullIndex(repo, main_ref(repo))
        assert [f.path for f in index.folders_of(1, heads[1]).folders] == [f"{TRACK}/2026-04-01_Open"]
        merged = index.folders_of(2, heads[2])  # inside main's history: diffed against main before the merge
        assert [f.path for f in merged.folders] == [f"{TRACK}/2026-04-02_Merged"]
        assert index.folders_of(3, heads[3]).problem == "adds no files under records/"
        assert "only edits existing" in index.folders_of(4, heads[4]).problem
        six = index.folders_of(6, heads[6])
        assert [f.path for f in six.folders] == [f"{TRACK}/2026-04-05_A", f"{TRACK}/records/track_10min_16mb/2026-04-05_B"]
        assert index.folders_of(7, None).problem.startswith("head commit missing")


def test_group_folders():
    paths = [f"{TRACK}/X/a.py", f"{TRACK}/X/logs/b.txt", f"{TRACK}/r/{TRACK}/Y/c.py", "records/loose.py"]
    assert group_folders(paths) == ["records", f"{TRACK}/X", f"{TRACK}/r/{TRACK}/Y"]


def test_pr_command_names_the_head(clone, tmp_path):
    out = tmp_path / "r.json"
    result = run_cli("pr", "1", "--repo", clone, "-f", "json", "-o", out, "-q")
    assert result.code == 1  # the open PR's seed is over the cap
    sub = json.loads(out.read_text())["submissions"][0]
    assert sub["head_sha"] == _git(clone, "rev-parse", "refs/pull/1/head") and sub["pr"] == 1
    assert "PG301" in {f["code"] for f in sub["findings"]}
    assert sub["seeds"][0]["total_bytes_submitted"] > 16_000_000


def test_pr_command_explains_what_it_cannot_audit(clone):
    result = run_cli("pr", "3", "--repo", clone)
    assert result.code == 2 and "adds no files under records/" in result.stderr
    result = run_cli("pr", "99", "--repo", clone)
    assert result.code == 2 and "git fetch origin pull/99/head" in result.stderr


def test_a_missing_pull_request_among_several_exits_2_after_the_report(clone, tmp_path):
    out = tmp_path / "r.json"
    result = run_cli("pr", "2", "99", "--repo", clone, "-f", "json", "-o", out, "--exit-zero")
    assert result.code == 2  # even advisory runs: part of what was asked was not audited
    report = json.loads(out.read_text())
    assert [s["pr"] for s in report["submissions"]] == [2]
    assert any("pull/99/head" in p for p in report["not_audited"])
    assert "not audited: PR #99" in result.stderr
    comment = tmp_path / "c.md"
    result = run_cli("review", "--pr", "2", "--pr", "99", "--repo", clone, "-o", comment)
    assert result.code == 2 and "PR #99" in result.stderr
    assert "pgolf-audit review" in comment.read_text()


def test_triage_rows_and_warm_cache(clone, tmp_path):
    cache = tmp_path / "cache"
    options = AuditOptions(select=["PG3"])
    cold = triage(str(clone), numbers=[1, 2, 3, 4, 6, 99], options=options, jobs=2, cache_root=cache)
    rows = {r["pr"]: r for r in cold.rows}
    assert rows[1]["verdict"] == "violation" and "PG301" in rows[1]["codes"] and "size_cap" in rows[1]["error_tags"]
    assert rows[1]["head_sha"] and rows[1]["seeds"][0]["seed"] == "42"
    assert rows[2]["verdict"] == "clean"
    assert rows[3]["verdict"] == "no-records" and rows[99]["problem"].startswith("no head ref")
    assert "PG308" in rows[6]["codes"]  # two folders in one PR, one of them nested
    assert cold.audited == 4 and cold.failed == 0
    warm = triage(str(clone), numbers=[1, 2, 3, 4, 6, 99], options=options, jobs=2, cache_root=cache)
    assert warm.audited == 0 and warm.cached == 4
    assert [r["verdict"] for r in warm.rows] == [r["verdict"] for r in cold.rows]


def test_triage_audits_a_folder_once_and_applies_the_pull_request_check_per_row(clone, tmp_path):
    cold = triage(str(clone), numbers=[6, 8], options=AuditOptions(select=["PG3"]), jobs=1, cache_root=tmp_path)
    assert cold.audited == 2  # PR 6's two folders; PR 8 adds the same folder as PR 6's first
    rows = {r["pr"]: r for r in cold.rows}
    one_folder = [f for f in rows[6]["findings"] if "adds 2 folders" in f["message"]]
    assert [f["where"] for f in one_folder] == [f"{TRACK}/2026-04-05_A", f"{TRACK}/records/track_10min_16mb/2026-04-05_B"]
    assert not [f for f in rows[8]["findings"] if "folders; a submission PR adds one" in f["message"]]
    assert rows[8]["verdict"] == "clean" and rows[6]["verdict"] == "review"
    ignored = triage(str(clone), numbers=[6], options=AuditOptions(select=["PG3"], ignore=["PG308"]), jobs=1,
                     cache_root=tmp_path / "other")
    assert not [f for f in ignored.rows[0].get("findings", []) if f["code"] == "PG308"]
    finding = registry.get("PG308").one_folder_per_pull_request(f"{TRACK}/2026-04-05_A", ["a", "b"])
    waiver = Waiver(finding.fingerprint, "two ablations, kept together", code="PG308")
    waived = triage(str(clone), numbers=[6], jobs=1, cache_root=tmp_path / "waived",
                    options=AuditOptions(select=["PG3"], waivers=[waiver]))
    row = waived.rows[0]["findings"]
    assert [f["where"] for f in row if "adds 2 folders" in f["message"]] == [
        f"{TRACK}/records/track_10min_16mb/2026-04-05_B"]  # folder A's finding is waived (rows list active ones)


def test_triage_command_writes_jsonl(clone, tmp_path):
    out = tmp_path / "t.jsonl"
    result = run_cli("triage", "--repo", clone, "--prs", "1-3", "--jsonl", out, "--no-cache", "-j", "1",
                     "--select", "PG3", "--no-progress")
    assert result.code == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["pr"] for r in rows] == [1, 2, 3]
    assert "pgolf-audit triage: 3 pull requests" in result.stdout


def test_parse_prs():
    available = [1, 5, 9, 12, 40]
    assert parse_prs("all", available) == available
    assert parse_prs("5,40", available) == [5, 40]
    assert parse_prs("5-12", available) == [5, 9, 12]
    assert parse_prs("12-", available) == [12, 40]
    with pytest.raises(UsageError):
        parse_prs("x-y", available)


def test_pr_significance_against_another_pr(clone, tmp_path):
    out = tmp_path / "r.json"
    result = run_cli("pr", "2", "--repo", clone, "--baseline-pr", "1", "--significance", "welch",
                     "--select", "PG309", "-f", "json", "-o", out, "-q")
    assert result.code == 0, result.stderr
    sub = json.loads(out.read_text())["submissions"][0]
    significance = sub["facts"]["significance"]
    assert significance["rule"] == "welch" and "PR #1" in significance["baseline_source"]


def test_review_of_a_pull_request_links_its_head_and_reproduces_with_pr(clone, tmp_path):
    out = tmp_path / "comment.md"
    result = run_cli("review", "--pr", "1", "--repo", clone, "-o", out)
    assert result.code == 0, result.stderr
    text = out.read_text()
    head = _git(clone, "rev-parse", "refs/pull/1/head")
    assert f"/blob/{head}/{TRACK}/2026-04-01_Open/train_seed42.log#L" in text  # the over-cap seed's line
    assert "❌ violation" in text and "PR [#1]" in text
    assert "reproduce with `pgolf-audit pr 1 --repo <clone of openai/parameter-golf>`" in text


def test_review_takes_paths_or_a_pull_request(clone):
    assert run_cli("review").code == 2
    assert run_cli("review", "--pr", "1", "--repo", clone, str(clone)).code == 2

"""Reading a records folder out of a git commit, without a checkout."""

from __future__ import annotations

import subprocess

import pytest

from auditor.discover import build_bundle
from auditor.engine import AuditOptions, audit_bundles
from auditor.files import FileStoreError
from auditor.gitrepo import GitError, GitRepo, GitTreeStore


def _git(cwd, *args):
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "pg"
    folder = root / "records" / "track_10min_16mb" / "2026-03-20_X"
    folder.mkdir(parents=True)
    (folder / "train_gpt.py").write_text("import urllib.request\nurllib.request.urlopen('u')\n")
    (folder / "submission.json").write_text('{"val_bpb": 1.2}')
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "add", "-A")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    (folder / "train_gpt.py").write_text("changed in the work tree, not committed\n")
    with GitRepo(root) as git:
        yield git


def test_audit_a_folder_at_a_commit(repo):
    head = repo.resolve("HEAD")
    store = GitTreeStore(repo, head, "records/track_10min_16mb/2026-03-20_X")
    assert [f.rel for f in store.list_files()] == ["submission.json", "train_gpt.py"]
    assert store.read("train_gpt.py").startswith(b"import urllib")  # the committed content
    bundle = build_bundle(store)
    report = audit_bundles([bundle], AuditOptions(select=["PG1"]))  # the records checks see a bare folder
    (finding,) = report.findings
    assert finding.code == "PG109"
    assert finding.location.path == "records/track_10min_16mb/2026-03-20_X/train_gpt.py"
    assert len(store.blob_id("train_gpt.py")) == 40


def test_errors(repo, tmp_path):
    with pytest.raises(GitError):
        repo.resolve("refs/pull/999/head")
    with pytest.raises(GitError, match="not a git repository"):
        GitRepo(tmp_path / "nowhere")
    store = GitTreeStore(repo, repo.resolve("HEAD"), "records")
    with pytest.raises(FileStoreError):
        store.read("missing.py")


def test_a_symbolic_link_in_a_commit_is_reported_not_read(tmp_path):
    root = tmp_path / "links"
    folder = root / "records" / "track_10min_16mb" / "2026-03-21_L"
    folder.mkdir(parents=True)
    (folder / "train_gpt.py").write_text("x = 1\n")
    (folder / "README.md").symlink_to("/etc/hostname")
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "add", "-A")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    with GitRepo(root) as git:
        store = GitTreeStore(git, git.resolve("HEAD"), "records/track_10min_16mb/2026-03-21_L")
        assert [f.rel for f in store.list_files()] == ["train_gpt.py"]
        assert store.skipped() == [("README.md", "a symbolic link")]
        problems = [f for f in build_bundle(store).problems if f.code == "PG905"]
        assert [f.location.path.rsplit("/", 1)[-1] for f in problems] == ["README.md"]


def test_a_folder_named_like_a_file_in_a_commit_is_reported_not_read(tmp_path):
    root = tmp_path / "dirs"
    folder = root / "records" / "track_10min_16mb" / "2026-03-21_D"
    (folder / "train_gpt.py").mkdir(parents=True)
    (folder / "train_gpt.py" / "inner.py").write_text("x = 1\n")
    (folder / "logs" / "train_seed1.log" / "deeper").mkdir(parents=True)
    (folder / "logs" / "train_seed1.log" / "deeper" / "a.txt").write_text("step:1/2\n")
    (folder / "submission.json").write_text("{}\n")
    _git(root, "init", "-q")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "add", "-A")
    _git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    with GitRepo(root) as git:
        store = GitTreeStore(git, git.resolve("HEAD"), "records/track_10min_16mb/2026-03-21_D")
        assert [f.rel for f in store.list_files()] == ["submission.json"]
        assert store.skipped() == [("logs/train_seed1.log", "a folder where a file is expected"),
                                   ("train_gpt.py", "a folder where a file is expected")]

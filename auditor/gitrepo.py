"""Reading submissions straight out of a git repository, without checking anything out.

A clone of openai/parameter-golf (bare or not) holds every pull request's head commit under
``refs/pull/N/head``. :class:`GitRepo` keeps one ``git cat-file --batch`` process open and
reads trees and blobs through it; :class:`GitTreeStore` presents the files of one folder at
one commit as a :class:`auditor.files.FileStore`, so a PR's records folder is audited exactly
as a folder on disk would be, and every file carries its blob id (a cache key that changes
only when the content does).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from auditor.errors import UsageError
from auditor.files import FILE_SUFFIXES, MAX_LOG_BYTES, FileStoreError, StoredFile, capped_lines


class GitError(UsageError):
    """A git command failed (not a repository, unknown commit, missing ref)."""


@dataclass(frozen=True)
class TreeEntry:
    """A file of a tree: path relative to the repository root, blob id, size."""

    path: str
    blob: str
    size: int
    link: bool = False  # a symbolic link (its blob is the target's name; never followed)


class GitRepo:
    """A local git repository read through one long-lived ``git cat-file --batch``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.git_dir = self.run("rev-parse", "--git-dir").strip()
        except GitError as exc:
            raise GitError(f"not a git repository: {path}") from exc
        self._batch: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def run(self, *args: str) -> str:
        """Run a git command in the repository and return its stdout."""
        try:
            done = subprocess.run(
                ["git", "-C", str(self.path), *args], capture_output=True, check=False, timeout=300
            )
        except FileNotFoundError as exc:
            raise GitError("git is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {' '.join(args)} timed out") from exc
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"git {' '.join(args[:3])}: {message[-1] if message else 'failed'}")
        return done.stdout.decode("utf-8", "replace")

    def resolve(self, rev: str) -> str:
        """The full commit id of a revision (branch, ref, abbreviated id)."""
        return self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()

    def ls_tree(self, commit: str, prefix: str = "") -> list[TreeEntry]:
        """Every blob below ``prefix`` at ``commit`` (recursive), with sizes."""
        args = ["ls-tree", "-r", "-l", "-z", commit]
        if prefix:
            args += ["--", prefix.rstrip("/") + "/"]
        out = self.run(*args)
        entries = []
        for record in out.split("\0"):
            if not record:
                continue
            meta, _, path = record.partition("\t")
            mode, kind, blob, size = meta.split()
            if kind != "blob":  # submodules
                continue
            entries.append(TreeEntry(path, blob, int(size) if size.isdigit() else 0, link=mode == "120000"))
        return entries

    def _batch_process(self) -> subprocess.Popen[bytes]:
        if self._batch is None or self._batch.poll() is not None:
            self._batch = subprocess.Popen(
                ["git", "-C", str(self.path), "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        return self._batch

    def read_blob(self, blob: str, limit: int | None = None) -> bytes:
        """The content of a blob (the first ``limit`` bytes)."""
        with self._lock:
            proc = self._batch_process()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(blob.encode() + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().decode()
            parts = header.split()
            if len(parts) != 3 or parts[1] == "missing":
                raise FileStoreError(f"blob {blob[:12]} is not in the repository")
            size = int(parts[2])
            data = proc.stdout.read(size)
            proc.stdout.read(1)  # the newline after the content
        return data if limit is None else data[:limit]

    def close(self) -> None:
        if self._batch is not None and self._batch.poll() is None:
            assert self._batch.stdin is not None
            self._batch.stdin.close()
            self._batch.wait(timeout=10)
        self._batch = None

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _file_like_folder(rel: str) -> str:
    """The first folder of ``rel`` named like a file the audit reads (``train_gpt.py/``), or ""."""
    parts = rel.split("/")[:-1]
    for i, part in enumerate(parts):
        if part.lower().endswith(FILE_SUFFIXES):
            return "/".join(parts[: i + 1])
    return ""


class GitTreeStore:
    """The files of one folder at one commit, as a read-only file store."""

    def __init__(self, repo: GitRepo, commit: str, prefix: str, entries: list[TreeEntry] | None = None) -> None:
        self.repo = repo
        self.commit = commit
        self.prefix = prefix.strip("/")
        self.display_root = self.prefix or "."
        base = f"{self.prefix}/" if self.prefix else ""
        listed = entries if entries is not None else repo.ls_tree(commit, self.prefix)
        inside = {e.path[len(base):]: e for e in listed if e.path.startswith(base)}
        # a folder named like a file the audit reads (``train_gpt.py/``): reported, its files not read
        self.file_like_folders = sorted({folder for rel in inside if (folder := _file_like_folder(rel))})
        inside = {rel: e for rel, e in inside.items() if not _file_like_folder(rel)}
        self.entries = {rel: e for rel, e in inside.items() if not e.link}
        self.links = sorted(rel for rel, e in inside.items() if e.link)

    def list_files(self) -> list[StoredFile]:
        return [StoredFile(rel, e.size) for rel, e in sorted(self.entries.items())]

    def skipped(self) -> list[tuple[str, str]]:
        return sorted([*((rel, "a symbolic link") for rel in self.links),
                       *((rel, "a folder where a file is expected") for rel in self.file_like_folders)])

    def blob_id(self, rel: str) -> str:
        return self.entries[rel].blob

    def read(self, rel: str, limit: int | None = None) -> bytes:
        entry = self.entries.get(rel)
        if entry is None:
            raise FileStoreError(f"{rel}: no such file at {self.commit[:12]}")
        return self.repo.read_blob(entry.blob, limit)

    def open_lines(self, rel: str) -> Iterator[bytes]:
        yield from capped_lines(self.read(rel, MAX_LOG_BYTES))

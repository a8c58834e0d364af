"""Read-only access to the files of a submission, wherever they live.

The auditor never writes into what it audits. A submission is read through a
:class:`FileStore`: a folder on disk, or a tree inside a git repository (a PR's head
commit, read without checking anything out; see :mod:`auditor.gitrepo`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: Folders never descended into while listing a submission.
SKIPPED_DIRS = frozenset({".git", "__pycache__", ".venv", "venv", "node_modules", ".ipynb_checkpoints"})
#: A records folder holds a few dozen files; stop listing a runaway tree here.
MAX_FILES = 2000
MAX_DEPTH = 6
#: A log is read up to this many bytes (a real one has a few MB; a huge or sparse file is cut).
MAX_LOG_BYTES = 32_000_000
#: Lines longer than this are cut (a file without newlines is not read into memory at once).
MAX_LINE_BYTES = 1_000_000
#: A folder with a name like these stands where a file the audit reads is expected
#: (``train_gpt.py/``, ``submission.json/``, ``train_seed1.log/``): reported, never descended into.
FILE_SUFFIXES = (".py", ".json", ".log", ".md")


class FileStoreError(OSError):
    """A file could not be read (missing, unreadable, not a regular file)."""


@dataclass(frozen=True)
class StoredFile:
    """A file of a store: its path relative to the store root and its size in bytes."""

    rel: str
    size: int


class FileStore(Protocol):
    """Where a submission's files are read from."""

    #: How paths are shown to the user (relative to the repository or the working directory).
    display_root: str

    def list_files(self) -> list[StoredFile]:
        """Every regular file below the root, as posix paths relative to it."""
        ...

    def skipped(self) -> list[tuple[str, str]]:
        """Entries the listing left out and why (symbolic links, devices), as (path, what)."""
        ...

    def read(self, rel: str, limit: int | None = None) -> bytes:
        """The bytes of a file (at most ``limit``); :class:`FileStoreError` if it cannot be read."""
        ...

    def open_lines(self, rel: str) -> Iterator[bytes]:
        """The file's lines as bytes, streamed, for large logs (at most :data:`MAX_LOG_BYTES`, each
        line at most :data:`MAX_LINE_BYTES`)."""
        ...


class DirectoryStore:
    """A folder on disk, or a chosen set of files in it."""

    def __init__(self, root: Path, display_root: str, only: list[str] | None = None) -> None:
        self.root = root
        self.display_root = display_root
        self._only = only
        self._skipped: list[tuple[str, str]] = []

    def list_files(self) -> list[StoredFile]:
        if self._only is not None:
            return [StoredFile(rel, self._size(rel)) for rel in self._only]
        found: list[StoredFile] = []
        self._skipped = []
        base_depth = len(self.root.parts)
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            depth = len(Path(dirpath).parts) - base_depth
            kept = []
            for name in dirnames:  # a linked folder is listed here but never descended into
                rel = Path(dirpath, name).relative_to(self.root).as_posix()
                if Path(dirpath, name).is_symlink():
                    self._skipped.append((rel, "a symbolic link"))
                elif name.lower().endswith(FILE_SUFFIXES):
                    self._skipped.append((rel, "a folder where a file is expected"))
                elif name not in SKIPPED_DIRS and depth < MAX_DEPTH:
                    kept.append(name)
            dirnames[:] = sorted(kept)
            for name in sorted(filenames):
                full = Path(dirpath, name)
                try:
                    info = full.lstat()
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    # links, sockets and devices are not part of a submission: never followed, reported
                    what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                    self._skipped.append((full.relative_to(self.root).as_posix(), what))
                    continue
                found.append(StoredFile(full.relative_to(self.root).as_posix(), info.st_size))
                if len(found) >= MAX_FILES:
                    return found
        return found

    def skipped(self) -> list[tuple[str, str]]:
        return list(self._skipped)

    def _size(self, rel: str) -> int:
        try:
            return (self.root / rel).stat().st_size
        except OSError:
            return -1

    def _path(self, rel: str) -> Path:
        path = self.root / rel
        try:
            info = path.lstat()
        except FileNotFoundError as exc:
            raise FileStoreError(f"{rel}: no such file") from exc
        except OSError as exc:
            raise FileStoreError(f"{rel}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(info.st_mode):
            raise FileStoreError(f"{rel}: not a regular file")
        return path

    def read(self, rel: str, limit: int | None = None) -> bytes:
        path = self._path(rel)
        try:
            with path.open("rb") as handle:
                return handle.read() if limit is None else handle.read(limit)
        except OSError as exc:
            raise FileStoreError(f"{rel}: {exc.strerror or exc}") from exc

    def open_lines(self, rel: str) -> Iterator[bytes]:
        path = self._path(rel)
        left = MAX_LOG_BYTES
        try:
            with path.open("rb") as handle:
                while left > 0:
                    line = handle.readline(min(MAX_LINE_BYTES, left))
                    if not line:
                        return
                    left -= len(line)
                    yield line
        except OSError as exc:
            raise FileStoreError(f"{rel}: {exc.strerror or exc}") from exc


class MemoryStore:
    """Files held in memory (tests, decoded payloads, blobs read from git)."""

    def __init__(self, files: dict[str, bytes], display_root: str) -> None:
        self._files = files
        self.display_root = display_root

    def list_files(self) -> list[StoredFile]:
        return [StoredFile(rel, len(data)) for rel, data in sorted(self._files.items())]

    def skipped(self) -> list[tuple[str, str]]:
        return []

    def read(self, rel: str, limit: int | None = None) -> bytes:
        try:
            data = self._files[rel]
        except KeyError as exc:
            raise FileStoreError(f"{rel}: no such file") from exc
        return data if limit is None else data[:limit]

    def open_lines(self, rel: str) -> Iterator[bytes]:
        yield from capped_lines(self.read(rel, MAX_LOG_BYTES))


def capped_lines(data: bytes) -> Iterator[bytes]:
    """The lines of ``data``, each cut at :data:`MAX_LINE_BYTES`."""
    for line in data.splitlines(keepends=True):
        for start in range(0, len(line), MAX_LINE_BYTES):
            yield line[start:start + MAX_LINE_BYTES]

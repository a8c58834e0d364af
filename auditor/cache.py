"""On-disk caches of ``pgolf-audit triage``: audit results by git blob id, PR discovery by commit.

A records folder's audit depends only on the auditor's code, the options, the folder's path
and the content of its files; git names that content by blob id. So a result is stored under
a key made of the auditor version, a digest of the auditor's and the catalogue's source, the
options, the folder path and the sorted (path, blob id) pairs — a second run over unchanged
PRs reads every result back and audits only what changed. What a PR adds is stored per
(head commit, main commit), which never changes once both are known.

Files are small JSON documents written atomically (temporary file + rename), so an
interrupted run leaves no half-written entry and parallel runs do not corrupt each other.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from auditor import __version__


def default_dir() -> Path:
    """``$PGOLF_AUDIT_CACHE``, else ``$XDG_CACHE_HOME/pgolf-audit``, else ``~/.cache/pgolf-audit``."""
    explicit = os.environ.get("PGOLF_AUDIT_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pgolf-audit"


@functools.cache
def code_digest() -> str:
    """A digest of the auditor's own source and of the rule catalogue: the "rules version"."""
    from auditor.registry import catalogue_dir  # registry imports the catalogue lazily

    digest = hashlib.sha256(__version__.encode())
    roots = [Path(__file__).resolve().parent, catalogue_dir()]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(path.relative_to(root).as_posix().encode())
            try:
                digest.update(path.read_bytes())
            except OSError:
                continue
    return digest.hexdigest()[:24]


def result_key(folder: str, blobs: list[tuple[str, str]], options: dict[str, Any]) -> str:
    """The cache key of one folder's audit."""
    payload = {
        "version": __version__,
        "code": code_digest(),
        "folder": folder,
        "blobs": sorted(blobs),
        "options": options,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class ResultCache:
    """Audit results of records folders, one JSON file per key. Disabled when ``root`` is None."""

    def __init__(self, root: Path | None) -> None:
        self.root = root / "results" if root is not None else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.root is None:
            return
        try:
            _write_atomic(self._path(key), json.dumps(value, separators=(",", ":"), default=str))
        except OSError:
            pass  # a cache that cannot be written only costs time


class PullCache:
    """What each PR adds, for one main commit: ``{pr: {head, base, folders, problem}}``."""

    def __init__(self, root: Path | None, main: str) -> None:
        self.path = root / "pulls" / f"{main}.json" if root is not None else None
        self.entries: dict[str, dict[str, Any]] = {}
        self.dirty = False
        if self.path is not None:
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self.entries = {}

    def get(self, number: int, head: str) -> dict[str, Any] | None:
        entry = self.entries.get(str(number))
        return entry if entry is not None and entry.get("head") == head else None

    def put(self, number: int, entry: dict[str, Any]) -> None:
        self.entries[str(number)] = entry
        self.dirty = True

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        try:
            _write_atomic(self.path, json.dumps(self.entries, separators=(",", ":")))
        except OSError:
            pass
        self.dirty = False

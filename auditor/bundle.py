"""A submission as the analyzers see it: its files, its Python sources, its problems.

A bundle is built by :mod:`auditor.discover`. It holds the main script and the sibling Python
modules it imports or executes, the decoded payloads of self-extracting wrappers, C/C++/CUDA
sources, submission.json, logs, README and requirements.txt. Analyzers keep what they derive
from it (parsed logs, per-seed figures, static facts, the scored configuration) in one
:class:`auditor.evidence.Evidence` per bundle, so that each file is parsed once however many
checks use it; the bundle itself holds only files, sources and the problems met reading them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from auditor.files import FileStore, FileStoreError
from auditor.findings import Finding
from auditor.source import PythonSource, Role

#: Text files larger than this are not read whole (logs are streamed instead).
MAX_TEXT_BYTES = 32_000_000

NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".h", ".hpp", ".hh")
LOG_SUFFIXES = (".log", ".txt", ".out")


class FileKind(str, enum.Enum):
    """What a file of a submission is."""

    PYTHON = "python"
    NATIVE = "native"
    SUBMISSION_JSON = "submission_json"
    LOG = "log"
    README = "readme"
    REQUIREMENTS = "requirements"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


def classify(rel: str) -> FileKind:
    """The kind of a file from its path inside the submission folder."""
    name = rel.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower.endswith(".py"):
        return FileKind.PYTHON
    if lower.endswith(NATIVE_SUFFIXES):
        return FileKind.NATIVE
    if lower.startswith("submission") and lower.endswith(".json"):
        return FileKind.SUBMISSION_JSON
    if lower in {"readme.md", "readme", "readme.txt", "readme.rst"}:
        return FileKind.README
    if lower.startswith("requirements") and lower.endswith(".txt"):
        return FileKind.REQUIREMENTS
    if lower.endswith(LOG_SUFFIXES) or "/logs/" in f"/{rel.lower()}":
        return FileKind.LOG
    return FileKind.OTHER


@dataclass
class BundleFile:
    """A file of a submission."""

    rel: str  # relative to the submission folder, posix
    path: str  # as shown to the user (relative to the repository or working directory)
    kind: FileKind
    size: int
    #: Part of the submitted code: the main script, or referenced by it (imported, exec'd,
    #: compiled, loaded). These bytes count towards the artifact.
    referenced: bool = False
    role: Role | None = None  # for Python files


@dataclass(eq=False)
class Bundle:
    """One submission: a records folder, or a lone script."""

    path: str  # the folder (or script) as shown to the user
    store: FileStore
    files: list[BundleFile]
    main_script: BundleFile | None = None
    sources: list[PythonSource] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    #: A lone script was given rather than a records folder: folder checks do not apply.
    single_file: bool = False
    head_sha: str | None = None
    pr: int | None = None
    #: The folders the same pull request adds (the records-folder check wants one per PR).
    pr_folders: tuple[str, ...] = ()
    #: The parsed object of each valid submission.json, by relative path (read at discovery).
    json_objects: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    # -- files by kind ---------------------------------------------------------------------

    def of_kind(self, kind: FileKind) -> list[BundleFile]:
        return [f for f in self.files if f.kind is kind]

    @property
    def logs(self) -> list[BundleFile]:
        return self.of_kind(FileKind.LOG)

    @property
    def submission_jsons(self) -> list[BundleFile]:
        return self.of_kind(FileKind.SUBMISSION_JSON)

    @property
    def readme(self) -> BundleFile | None:
        found = self.of_kind(FileKind.README)
        return found[0] if found else None

    @property
    def requirements(self) -> BundleFile | None:
        found = self.of_kind(FileKind.REQUIREMENTS)
        return found[0] if found else None

    @property
    def native_sources(self) -> list[BundleFile]:
        return self.of_kind(FileKind.NATIVE)

    @property
    def code_files(self) -> list[BundleFile]:
        """The files whose bytes make up the submitted code."""
        return [f for f in self.files if f.referenced]

    def file(self, rel: str) -> BundleFile | None:
        for candidate in self.files:
            if candidate.rel == rel:
                return candidate
        return None

    # -- reading -------------------------------------------------------------------------------

    def read_bytes(self, rel: str, limit: int | None = MAX_TEXT_BYTES) -> bytes:
        """The bytes of a file; raises :class:`auditor.files.FileStoreError`."""
        return self.store.read(rel, limit)

    def read_text(self, rel: str, limit: int | None = MAX_TEXT_BYTES) -> str:
        """A file decoded as UTF-8 (invalid bytes replaced); raises FileStoreError."""
        return self.store.read(rel, limit).decode("utf-8", errors="replace")

    def try_read_text(self, rel: str) -> str | None:
        try:
            return self.read_text(rel)
        except FileStoreError:
            return None

    def iter_lines(self, rel: str):
        """Stream a file's lines as text (large logs); raises FileStoreError."""
        for raw in self.store.open_lines(rel):
            yield raw.decode("utf-8", errors="replace")

    @property
    def main_source(self) -> PythonSource | None:
        """The main script's source: its (largest) decoded payload when the script is a wrapper."""
        own = [s for s in self.sources if s.role is Role.MAIN]
        decoded = [s for s in own if s.is_decoded]
        if decoded:
            return max(decoded, key=lambda s: len(s.text))
        return own[0] if own else None

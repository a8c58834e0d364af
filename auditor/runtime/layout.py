"""Where a submission finds its files: the sandbox's working folder laid out as the challenge
repository (sandbox side; no torch).

A records folder is written to run from a clone of openai/parameter-golf: its script reads
``./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin`` relative to the clone's root, or finds
the root from its own place (``Path(__file__).resolve().parents[3]`` for
``records/track_10min_16mb/<name>/train_gpt.py``), and some scripts write such paths as plain
literals instead of reading them from an environment variable the harness can set. So

- the working folder is the clone's root: the harness's synthetic data lives in ``data/``
  (``datasets/fineweb10B_sp<V>/`` shards and ``tokenizers/fineweb_<V>_bpe.model``), the
  copy of the folder sits at :func:`records_folder` (``records/track_10min_16mb/<its name>``,
  the depth of a records folder) and the run starts there;
- every path the script's own literals name inside the working folder (relative ones, and
  absolute ones under it) is filled with the harness's files by what the literal itself is:
  a SentencePiece model (``….model``), a shard or shard pattern (``…val….bin``,
  ``…train…*.bin``: the challenge's file names), or a folder into which the script's own
  shard patterns are written (:func:`default_paths`, :func:`materialize`).

Nothing is taken from the names of variables; the literals are the script's defaults, and what
is written there is the same synthetic stream and tokenizer the harness writes everywhere.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

#: The copy of the audited folder, relative to the working folder (the repository's root),
#: when its own name cannot be used (:func:`records_folder`).
SUBMISSION = PurePosixPath("records/track_10min_16mb/submission")
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][\w.\-]{0,99}")


def records_folder(name: str = "") -> PurePosixPath:
    """Where the copy of the audited folder sits in the checkout: the records folder of its own
    name (``records/track_10min_16mb/2026-03-17_NaiveBaseline``), as in a clone of the
    challenge's repository; :data:`SUBMISSION` for a name that is not a plain folder name."""
    return SUBMISSION.parent / name if _FOLDER_NAME.fullmatch(name or "") else SUBMISSION


#: At most this many literal paths are filled (a script is not a file-system plan).
MAX_PATHS = 32
_SHARD = re.compile(r"\.bin$")
_GLOB = re.compile(r"[*?\[]")
#: A literal that reads as a path (not a sentence, a format string or a URL).
_PATHLIKE = re.compile(r"^(\./|\.\./|/)?[\w.\-*?\[\]]+(/[\w.\-*?\[\]]*)*$")
#: A folder literal that holds data: a path (``./x``, ``../x``, ``/x``, ``x/y``) with a ``data``
#: component (the repository's ``data/``, a pod's ``/workspace/research_data``); other folders
#: (``./logs``, ``./checkpoints``) are where a script writes, and are left alone.
_FOLDER = re.compile(r"(^|/)[\w.\-]*data[\w.\-]*(/|$)", re.I)


@dataclass
class DefaultPaths:
    """The path literals of a script, by what they name."""

    tokenizers: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)  # files or patterns, "val"/"train" in the name
    folders: list[str] = field(default_factory=list)
    #: Shard file names or patterns without a folder ("fineweb_val_*.bin"), written into folders.
    shard_names: list[str] = field(default_factory=list)


def _literals(tree: ast.AST) -> Iterable[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) <= 300:
            yield node.value


def default_paths(texts: Iterable[str]) -> DefaultPaths:
    """Path literals of the scripts ``texts`` (sources that do not parse are skipped)."""
    out = DefaultPaths()
    seen: set[str] = set()
    for text in texts:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for value in _literals(tree):
            if value in seen or not _PATHLIKE.match(value) or value in (".", "..", "/"):
                continue
            seen.add(value)
            name = PurePosixPath(value).name
            role = shard_role(name)
            if "/" not in value.rstrip("/"):
                if role:
                    out.shard_names.append(value)
                continue
            if name.endswith(".model"):
                out.tokenizers.append(value)
            elif role:
                out.shards.append(value)
            elif "." not in name and not _GLOB.search(value) and _FOLDER.search(value):
                out.folders.append(value)
    return out


def shard_role(name: str) -> str | None:
    """``"val"`` or ``"train"`` for a shard file name or pattern of the challenge's kind, else None."""
    if not _SHARD.search(name):
        return None
    words = set(re.split(r"[^a-z]+", name.lower()))
    if "val" in words or "validation" in words:
        return "val"
    if "train" in words:
        return "train"
    return None


def _instance(pattern: str) -> str:
    """A file name a glob pattern matches (``fineweb_val_*.bin`` -> ``fineweb_val_000000.bin``)."""
    name = re.sub(r"\[[^\]]*\]", "0", pattern)
    return name.replace("*", "000000").replace("?", "0")


def _inside(workdir: Path, literal: str, protected: Path) -> Path | None:
    """Where a literal points in the working folder, or None (outside it, or in the copy of the
    submission, which is never written)."""
    path = Path(literal) if literal.startswith("/") else workdir / literal
    try:
        full = Path(os.path.normpath(path))
    except (ValueError, OSError):
        return None
    root = workdir.resolve()
    if not full.is_relative_to(root) or full == root or full.is_relative_to(protected):
        return None
    return full


@dataclass
class Materialized:
    """What :func:`materialize` wrote: validation shards (rewritten with each perturbed stream)
    and a line per path for the report."""

    val_shards: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def materialize(paths: DefaultPaths, workdir: Path, tokenizer: Path,
                write_train: Callable[[Path], None], folder: PurePosixPath = SUBMISSION) -> Materialized:
    """Fill the paths the literals name in the working folder with the harness's files. Existing
    files are left alone; validation shards are returned for the caller to write (and rewrite)."""
    out = Materialized()
    protected = (workdir / folder).resolve()
    done = 0

    def place(literal: str) -> Path | None:
        nonlocal done
        if done >= MAX_PATHS:
            return None
        target = _inside(workdir, literal, protected)
        if target is not None:
            done += 1
        return target

    for literal in paths.tokenizers:
        target = place(literal)
        if target is not None and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tokenizer, target)
            out.notes.append(f"{literal}: the harness's tokenizer")
    for literal in paths.shards:
        role = shard_role(PurePosixPath(literal).name)
        target = place(literal)
        if target is None:
            continue
        target = target.with_name(_instance(target.name))
        if glob.glob(glob.escape(str(target))):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if role == "val":
            out.val_shards.append(target)
        else:
            write_train(target)
        out.notes.append(f"{literal}: a synthetic {role} shard")
    names = paths.shard_names or ["fineweb_train_*.bin", "fineweb_val_*.bin"]
    for literal in paths.folders:
        if not any(shard_role(n) == "val" for n in names):
            break
        target = place(literal)
        if target is None or (target.exists() and not target.is_dir()):
            continue
        written = []
        for name in names:
            file = target / _instance(name)
            if file.exists():
                continue
            target.mkdir(parents=True, exist_ok=True)
            written.append(file.name)
            if shard_role(name) == "val":
                out.val_shards.append(file)
            else:
                write_train(file)
        if written:
            out.notes.append(f"{literal}: a folder with synthetic shards ({', '.join(written)})")
    return out

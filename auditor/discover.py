"""From command-line paths to submissions (bundles).

A path may be a records folder, a folder of records folders (``records/track_10min_16mb``),
a single script, or several files; files given together from one folder form one bundle.
Python sources are read, unpacked (self-extracting wrappers are decoded without executing)
and linked: a sibling module counts as part of the submitted code when the main script, or a
module it uses, names it in an import anywhere (at the top, inside a ``try:`` block or a
function, through ``importlib.import_module("helper")``), or in a string
(``exec(open("helper.py").read())``, ``load(sources=["kernel.cpp"])``). Anything unreadable becomes a PG9xx finding.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from auditor.bundle import Bundle, BundleFile, FileKind, classify
from auditor.errors import UsageError
from auditor.files import MAX_LOG_BYTES, DirectoryStore, FileStore, FileStoreError
from auditor.findings import Confidence, Location, Severity
from auditor.problems import tool_finding
from auditor.source import MAX_PARSE_BYTES, PythonSource, Role
from auditor.unpack import unpack

MAIN_SCRIPT_NAMES = ("train_gpt.py",)
_SUBMISSION_MARKERS = re.compile(r"^(train\w*\.py|submission\w*\.json|.*\.log)$", re.I)


def display_path(path: Path, root: Path | None = None) -> str:
    """A path as the user should see it: relative to ``root`` (default: the working directory)."""
    try:
        rel = path.resolve().relative_to((root or Path.cwd()).resolve())
        return rel.as_posix() or "."
    except ValueError:
        return path.as_posix()


def _looks_like_submission(folder: Path) -> bool:
    try:
        return any(_SUBMISSION_MARKERS.match(p.name) for p in folder.iterdir() if p.is_file())
    except OSError:
        return False


def _submission_folders(folder: Path, depth: int = 3) -> list[Path]:
    """Records folders at or below ``folder`` (a track folder holds many)."""
    if _looks_like_submission(folder):
        return [folder]
    if depth == 0:
        return []
    found: list[Path] = []
    try:
        children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    for child in children:
        found.extend(_submission_folders(child, depth - 1))
    return found


def discover(paths: Iterable[str | Path], root: Path | None = None) -> list[Bundle]:
    """Bundles for the given command-line paths, in the order given.

    Paths are shown relative to ``root`` (default: the working directory). Raises
    :class:`UsageError` for a path that does not exist; everything else that goes wrong
    (unreadable files, undecodable text) is reported as findings inside the bundles.
    """
    bundles: list[Bundle] = []
    loose: dict[Path, list[str]] = defaultdict(list)
    for raw in paths:
        path = Path(raw)
        if not os.path.lexists(path):
            raise UsageError(f"no such file or directory: {raw}")
        if path.is_dir():
            folders = _submission_folders(path)
            if not folders:
                bundles.append(build_bundle(DirectoryStore(path, display_path(path, root))))
            for folder in folders:
                bundles.append(build_bundle(DirectoryStore(folder, display_path(folder, root))))
        else:
            loose[path.parent].append(path.name)
    for parent, names in loose.items():
        store = DirectoryStore(parent, display_path(parent, root), only=sorted(set(names)))
        single = len(names) == 1 and names[0].endswith(".py")
        bundles.append(build_bundle(store, single_file=single))
    return bundles


def _choose_main(files: list[BundleFile]) -> BundleFile | None:
    python = [f for f in files if f.kind is FileKind.PYTHON]
    top = [f for f in python if "/" not in f.rel]
    for name in MAIN_SCRIPT_NAMES:
        for f in top:
            if f.rel == name:
                return f
    for prefix in ("train_gpt", "train"):
        named = sorted((f for f in top if f.rel.startswith(prefix)), key=lambda f: (len(f.rel), f.rel))
        if named:
            return named[0]
    if len(top) == 1:
        return top[0]
    return None


def build_bundle(store: FileStore, *, single_file: bool = False) -> Bundle:
    """Read a store into a bundle: classify files, read and unpack Python, link modules."""
    try:
        stored = store.list_files()
    except OSError as exc:
        stored = []
        listing_error = str(exc)
    else:
        listing_error = ""
    root = store.display_root.rstrip("/") or "."

    def shown(rel: str) -> str:
        return rel if root == "." else f"{root}/{rel}"

    files = [BundleFile(s.rel, shown(s.rel), classify(s.rel), s.size) for s in stored]
    bundle = Bundle(path=files[0].path if single_file and files else root, store=store, files=files)
    bundle.single_file = single_file
    if listing_error:
        bundle.problems.append(
            tool_finding("PG905", f"cannot list the folder: {listing_error}", Location(root))
        )
    else:
        for rel, what in getattr(store, "skipped", list)():
            # a link is never followed (it could point anywhere on the machine): its target is
            # not read and not named
            bundle.problems.append(tool_finding(
                "PG905", f"{what}: not followed and not read, so whatever it stands for (a README, a log, "
                "submission.json) is not audited", Location(shown(rel)), key=f"skipped:{rel}"))
    auditable = (FileKind.PYTHON, FileKind.SUBMISSION_JSON, FileKind.LOG)
    if not listing_error and not any(f.kind in auditable for f in files):
        bundle.problems.append(
            tool_finding(
                "PG905",
                "no files to audit here (no train_gpt.py, submission.json or logs)",
                Location(root),
                severity=Severity.WARNING,
            )
        )
    bundle.main_script = _choose_main(files)
    if bundle.main_script is not None:
        bundle.main_script.referenced = True
    _read_python(bundle)
    _link_references(bundle)
    _check_text_files(bundle)
    return bundle


def _decode_source(bundle: Bundle, f: BundleFile) -> str | None:
    """Read a Python file as text, or record why it cannot be analysed."""
    loc = Location(f.path)
    if f.size > MAX_PARSE_BYTES:
        bundle.problems.append(
            tool_finding(
                "PG903",
                f"{f.size:,} bytes is larger than the {MAX_PARSE_BYTES:,}-byte limit for Python analysis; not parsed",
                loc,
                evidence={"bytes": f.size, "limit": MAX_PARSE_BYTES},
            )
        )
        return None
    try:
        data = bundle.read_bytes(f.rel, limit=MAX_PARSE_BYTES + 1)
    except FileStoreError as exc:
        bundle.problems.append(tool_finding("PG905", f"cannot read the file: {exc}", loc))
        return None
    if not data.strip():
        if f.role is Role.MAIN:
            bundle.problems.append(
                tool_finding("PG903", "the script is empty: there is nothing to analyse", loc, evidence={"bytes": len(data)})
            )
        return None
    if b"\x00" in data:
        bundle.problems.append(
            tool_finding("PG902", "binary content (NUL bytes) where Python source was expected", loc, evidence={"bytes": len(data)})
        )
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        declared = _declared_encoding(data)
        if declared:
            try:
                text = data.decode(declared)
            except (LookupError, UnicodeDecodeError):
                text = None
            else:
                return text
        bundle.problems.append(
            tool_finding(
                "PG902",
                f"not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at offset {exc.start}",
                loc,
                evidence={"offset": exc.start},
            )
        )
        return None
    return text


_CODING = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")


def _declared_encoding(data: bytes) -> str | None:
    for line in data.splitlines()[:2]:
        match = _CODING.match(line)
        if match:
            return match.group(1).decode("ascii", "replace")
    return None


def _read_python(bundle: Bundle) -> None:
    """Read every Python file; unpack wrappers; mark roles (refined by :func:`_link_references`)."""
    for f in bundle.files:
        if f.kind is not FileKind.PYTHON:
            continue
        f.role = Role.MAIN if f is bundle.main_script else Role.AUXILIARY
        text = _decode_source(bundle, f)
        if text is None:
            continue
        source = PythonSource(path=f.path, text=text, role=f.role, bundle=bundle)
        bundle.sources.append(source)
        result = unpack(text, f.path, tree=source.ast_tree, nodes=source.ast_nodes)
        source.decoded_exec_lines = set(result.decoded_exec_lines)
        for payload in result.payloads:
            bundle.sources.append(
                PythonSource(
                    path=f.path,
                    text=payload.text,
                    role=f.role,
                    origin=payload.origin,
                    bundle=bundle,
                    decoded_exec_lines=set(payload.decoded_exec_lines),
                )
            )
        for failure in result.failures:
            origin = failure.origin
            loc = Location(f.path, failure.line, failure.column, decoded_from=origin)
            layers = " → ".join(failure.layers) or "?"
            bundle.problems.append(
                tool_finding(
                    "PG904",
                    f"self-extracting wrapper not unpacked ({layers}): {failure.reason}; its code was not analysed",
                    loc,
                    snippet=failure.snippet,
                    evidence={"reason": failure.reason, "layers": list(failure.layers)},
                    key=failure.reason,
                )
            )


def _names_in(source: PythonSource, rel: str) -> tuple[set[str], set[str]]:
    """Absolute dotted names of the modules a source imports, and its string literals.

    ``rel`` is the source's path in the submission; relative imports (``from .model import
    GPT`` in ``pkg/train.py``) are resolved against it.
    """
    modules: set[str] = set()
    strings: set[str] = set()
    package = rel.split("/")[:-1]
    for node in source.ast_nodes:
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base: list[str] = []
            if node.level:
                if node.level - 1 > len(package):
                    continue  # beyond the submission folder
                base = package[: len(package) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
            if prefix:
                modules.add(prefix)
            for alias in node.names:  # "from pkg import module" imports a module too
                modules.add(f"{prefix}.{alias.name}" if prefix else alias.name)
        elif isinstance(node, ast.Call) and node.args and _is_import_call(node.func):
            # importlib.import_module("helper"), __import__("helper"): a module named by a string
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and _DOTTED.match(first.value):
                modules.add(first.value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) < 300:
            strings.add(node.value)
    return modules, strings


_DOTTED = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*$")


def _is_import_call(func: ast.expr) -> bool:
    """``importlib.import_module(…)``, ``import_module(…)`` or ``__import__(…)``: the standard
    library's ways to import a module named at run time."""
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in ("import_module", "__import__")


def _by_stem(by_module: dict[str, BundleFile], name: str) -> BundleFile | None:
    """The one submitted module a top-level import can only mean: ``import helper`` when the
    folder has no ``helper.py`` at its top but exactly one ``<folder>/helper.py`` (a script that
    puts that folder on ``sys.path``). None when no file or several files could be meant."""
    if "." in name or name in sys.stdlib_module_names:
        return None
    found = {f.rel: f for dotted, f in by_module.items() if dotted.endswith("." + name)}
    return next(iter(found.values())) if len(found) == 1 else None


def _link_references(bundle: Bundle) -> None:
    """Mark the files the submitted code uses, following modules that use further files."""
    by_module: dict[str, BundleFile] = {}
    for f in bundle.files:
        if f.kind is FileKind.PYTHON:
            dotted = f.rel[:-3].replace("/", ".")
            by_module[dotted] = f
            if dotted.endswith(".__init__"):
                by_module[dotted[: -len(".__init__")]] = f
    rel_of = {f.path: f.rel for f in bundle.files}
    queue = [s for s in bundle.sources if s.role is Role.MAIN]
    seen: set[int] = set()
    while queue:
        source = queue.pop()
        if id(source) in seen:
            continue
        seen.add(id(source))
        modules, strings = _names_in(source, rel_of.get(source.path, ""))
        newly: list[BundleFile] = []
        for name in modules:
            # "a.b.c" runs a/__init__.py, a/b/__init__.py and a/b/c.py: every one that exists
            parts = name.split(".")
            for end in range(1, len(parts) + 1):
                target = by_module.get(".".join(parts[:end]))
                if target is not None:
                    newly.append(target)
            if parts[0] not in by_module:
                target = _by_stem(by_module, parts[0])
                if target is not None:
                    newly.append(target)
        for f in bundle.files:
            if f.kind in (FileKind.PYTHON, FileKind.NATIVE) and not f.referenced:
                base = f.rel.rsplit("/", 1)[-1]
                if any(s == f.rel or s == base or s.endswith("/" + f.rel) or s.endswith("/" + base) for s in strings):
                    newly.append(f)
        for f in newly:
            if f.referenced:
                continue
            f.referenced = True
            if f.kind is FileKind.PYTHON:
                f.role = Role.MODULE
                for s in bundle.sources:
                    if s.path == f.path:
                        s.role = Role.MODULE
                        queue.append(s)


#: submission.json files are small; anything larger is not a claim file.
MAX_JSON_BYTES = 2_000_000


def submission_json(bundle: Bundle, rel: str) -> dict | None:
    """The parsed object of a submission.json file, or None when it was unreadable or invalid."""
    return bundle.json_objects.get(rel)


def _read_json(bundle: Bundle, f: BundleFile) -> None:
    """Parse a submission.json once, keeping the object for the records checks (PG906 if invalid)."""
    try:
        data = bundle.read_bytes(f.rel, limit=MAX_JSON_BYTES + 1)
    except FileStoreError as exc:
        bundle.problems.append(tool_finding("PG905", f"cannot read the file: {exc}", Location(f.path)))
        return
    if len(data) > MAX_JSON_BYTES:
        bundle.problems.append(
            tool_finding("PG906", f"larger than {MAX_JSON_BYTES:,} bytes: not read as a claim file", Location(f.path))
        )
        return
    try:
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        bundle.problems.append(tool_finding("PG906", f"not UTF-8 text (offset {exc.start})", Location(f.path)))
        return
    except json.JSONDecodeError as exc:
        bundle.problems.append(
            tool_finding(
                "PG906",
                f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                Location(f.path, exc.lineno, exc.colno - 1),
                evidence={"error": exc.msg, "line": exc.lineno, "column": exc.colno},
            )
        )
        return
    except RecursionError:
        bundle.problems.append(tool_finding("PG906", "not valid JSON: nested too deeply", Location(f.path)))
        return
    if not isinstance(value, dict):
        bundle.problems.append(
            tool_finding("PG906", f"a JSON {type(value).__name__}, not an object with the submission's fields", Location(f.path))
        )
        return
    bundle.json_objects[f.rel] = value


def _check_text_files(bundle: Bundle) -> None:
    """Logs, README and JSON must at least be text; say so when they are not. Parse the JSON."""
    for f in bundle.files:
        if f.kind not in (FileKind.LOG, FileKind.SUBMISSION_JSON, FileKind.README, FileKind.REQUIREMENTS):
            continue
        if f.kind is FileKind.SUBMISSION_JSON:
            _read_json(bundle, f)
            continue
        try:
            head = bundle.read_bytes(f.rel, limit=8192)
        except FileStoreError as exc:
            bundle.problems.append(tool_finding("PG905", f"cannot read the file: {exc}", Location(f.path)))
            continue
        if f.kind is FileKind.LOG and f.size > MAX_LOG_BYTES:
            bundle.problems.append(tool_finding(
                "PG905", f"a {f.size:,}-byte log: only its first {MAX_LOG_BYTES:,} bytes are read",
                Location(f.path), evidence={"bytes": f.size, "read": MAX_LOG_BYTES}, key="log-cap"))
        if b"\x00" in head:
            bundle.problems.append(
                tool_finding(
                    "PG902",
                    f"binary content (NUL bytes) in a {f.kind.value.replace('_', ' ')} file; it is read as text with the bytes replaced",
                    Location(f.path),
                    severity=Severity.NOTE,
                    confidence=Confidence.HIGH,
                )
            )

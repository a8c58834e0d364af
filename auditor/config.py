"""``[tool.pgolf-audit]`` in ``pyproject.toml``: the options a project sets once.

Found as ruff finds ``[tool.ruff]``: the closest ``pyproject.toml`` that has the table, from
the audited path upward (for ``pr`` and ``triage``, from the clone given by ``--repo``). The
command line overrides it, option by option. A ``pyproject.toml`` inside a records folder or
anywhere under a ``records/`` directory is never read: it belongs to the code under audit, and
a submission must not be able to switch its own checks off. For the same reason ``ci --base``
reads the file as it is at the base commit, not as the pull request leaves it.

.. code-block:: toml

    [tool.pgolf-audit]
    select = ["PG1", "PG3"]          # codes or prefixes; --select
    ignore = ["PG310"]               # --ignore
    fail-level = "warning"           # --fail-level
    allow-tool-errors = false        # --allow-tool-errors
    waivers = "audit/waivers.toml"   # --waivers, relative to this file
    significance = "welch"           # --significance
    baseline = "records/track_10min_16mb/2026-03-17_NaiveBaseline"  # --baseline, relative to this file
    baseline-bpb = 1.0611            # --baseline-bpb
    baseline-seeds = [1.0612, 1.0621] # --baseline-seeds
    baseline-pr = 1868               # --baseline-pr
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.errors import UsageError

FILE = "pyproject.toml"
SECTION = "pgolf-audit"
#: Files that make a folder a submission (its pyproject.toml is part of the audited code).
_SUBMISSION_FILES = ("train_gpt.py", "submission.json")


def _codes(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(c, str) for c in items):
        raise ValueError("a list of codes or prefixes, e.g. [\"PG1\", \"PG301\"]")
    return [c.strip().upper() for c in items if c.strip()]


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return str(value)

    return check


def _of(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"a {kind.__name__}")
        return value

    return check


def _floats(value: Any) -> list[float]:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ValueError("a list of numbers")
    return [float(v) for v in value]


def _significance(value: Any) -> str:
    from auditor.records.stats import RULES  # scipy-free, but keep start-up light

    return _choice(*RULES)(value)


#: key in the table -> (argparse destination, converter, relative to the file)
KEYS: dict[str, tuple[str, Callable[[Any], Any], bool]] = {
    "select": ("select", _codes, False),
    "ignore": ("ignore", _codes, False),
    "fail-level": ("fail_level", _choice("error", "warning", "note"), False),
    "allow-tool-errors": ("allow_tool_errors", _of(bool), False),
    "waivers": ("waivers", _of(str), True),
    "significance": ("significance", _significance, False),
    "baseline": ("baseline", _of(str), True),
    "baseline-bpb": ("baseline_bpb", _of(float), False),
    "baseline-seeds": ("baseline_seeds", _floats, False),
    "baseline-pr": ("baseline_pr", _of(int), False),
}


@dataclass
class Config:
    """The options read from a ``[tool.pgolf-audit]`` table, keyed by argparse destination."""

    path: str | None = None  # where they were read (a file, or "BASE:pyproject.toml")
    defaults: dict[str, Any] = field(default_factory=dict)


def parse(text: str, where: str, folder: Path) -> Config | None:
    """The ``[tool.pgolf-audit]`` table of a pyproject.toml's text; None when it has none."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML ({exc})") from exc
    table = data.get("tool", {}).get(SECTION) if isinstance(data.get("tool"), dict) else None
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"{where}: [tool.{SECTION}] must be a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise UsageError(f"{where}: unknown key {', '.join(unknown)} in [tool.{SECTION}]; the keys are {', '.join(KEYS)}")
    defaults: dict[str, Any] = {}
    for key, value in table.items():
        dest, convert, relative = KEYS[key]
        try:
            converted = convert(value)
        except ValueError as exc:
            raise UsageError(f"{where}: [tool.{SECTION}] {key} must be {exc}") from exc
        if relative:
            converted = str((folder / converted).resolve()) if not Path(converted).is_absolute() else converted
        if dest == "waivers":
            converted = Path(converted)
        defaults[dest] = converted
    return Config(where, defaults)


def _is_submission(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _SUBMISSION_FILES)


def candidates(start: Path) -> Iterable[Path]:
    """The pyproject.toml files that may configure an audit of ``start``, closest first.

    Folders under a ``records`` directory, and the audited folder itself when it is a
    submission, are skipped: what they hold is the code under audit.
    """
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    first = True
    for directory in (folder, *folder.parents):
        skip = "records" in directory.parts or (first and _is_submission(directory))
        first = False
        if not skip:
            yield directory / FILE


def discover(start: Path) -> Config:
    """The closest configuration for ``start`` (an empty one when there is none)."""
    for path in candidates(start):
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc}") from exc
        found = parse(text, str(path), path.parent)
        if found is not None:
            return found
    return Config()


def at_commit(repo: Path, commit: str) -> Config:
    """The configuration in the root pyproject.toml of ``repo`` at ``commit`` (trusted: the base
    of a pull request, not the pull request's own version)."""
    done = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{FILE}"], capture_output=True, check=False, timeout=60
    )
    if done.returncode != 0:
        return Config()
    where = f"{commit}:{FILE}"
    return parse(done.stdout.decode("utf-8", "replace"), where, repo.resolve()) or Config()

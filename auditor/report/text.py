"""Evidence and messages as text people read: no Python reprs, no words cut in half.

Evidence is structured data (numbers, strings, lists, nested mappings); the JSON and SARIF
reports keep it as data. Every human format (console, Markdown, the review comment, triage)
shows it through :func:`readable`: ``None`` is "—", booleans are "yes"/"no", integers have
thousands separators, lists are comma-separated, mappings are ``key: value`` pairs, and paths
inside the submission's folder (also where a sentence quotes them) are shown relative to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from auditor.findings import Finding

ELLIPSIS = "…"


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rfind(" ")
    if space >= limit // 2:  # a word boundary not too far back; otherwise cut the long word
        cut = cut[:space]
    return cut.rstrip(" ,;:") + ELLIPSIS


def readable(value: Any, base: str = "") -> str:
    """One evidence value as text; ``base`` (a folder) is dropped from the front of paths."""
    return _text(value, base.rstrip("/") + "/" if base else "")


def _text(value: Any, prefix: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, str):  # a path inside the folder, alone or quoted in a sentence
        return value.replace(prefix, "") if prefix else value
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v, prefix) for v in value) or "—"
    if isinstance(value, Mapping):
        return "; ".join(f"{_text(k, prefix)}: {_text(v, prefix)}" for k, v in value.items()) or "—"
    return str(value)


def label(key: str) -> str:
    """An evidence key as words: ``total_bytes_submitted`` -> ``total bytes submitted``."""
    return key.replace("_", " ")


def evidence_items(finding: Finding, base: str = "", *, skip: tuple[str, ...] = (), limit: int = 300) -> list[tuple[str, str]]:
    """(label, text) pairs of a finding's evidence, each value shortened to ``limit`` characters."""
    return [
        (label(key), shorten(readable(value, base), limit))
        for key, value in finding.to_dict()["evidence"].items()
        if key not in skip
    ]


_CODE_LIKE = frozenset("()[]{}=_*<>|\\#`^~")


def md_value(text: str) -> str:
    """An evidence value inside Markdown: code-like text in backticks, prose and numbers as they are."""
    text = text.replace("\n", " ").replace("|", "\\|")
    if not _CODE_LIKE.intersection(text):
        return text
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"

"""The reporter interface: one module per output format, as ruff and pip-audit have it."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TextIO

from auditor.results import Report

ISSUE_URL = "https://github.com/openai/parameter-golf/issues/{number}"
README_URL = "https://github.com/openai/parameter-golf#readme"
_ISSUE_CONDITION = re.compile(r"R-(\d+)-(\w+)")


def source_url(source: str) -> str | None:
    """A link for a rule source: ``#779`` -> the issue/PR page (GitHub redirects issues to PRs)."""
    if source.startswith("#") and source[1:].isdigit():
        return ISSUE_URL.format(number=source[1:])
    return None


def public_sources(sources: tuple[str, ...] | list[str]) -> list[tuple[str, str | None]]:
    """Rule sources as (label, link) for readers: the challenge README and issue or PR numbers.

    A rule also names the catalogue entry it was written from (``R-SIZE-CAP``); that name means
    nothing outside this project, so it is left out, except that ``R-1017-C4`` (condition C4 of
    issue #1017) becomes a link to the issue.
    """
    out: list[tuple[str, str | None]] = []
    for source in sources:
        condition = _ISSUE_CONDITION.fullmatch(source)
        if source == "README":
            out.append(("README", README_URL))
        elif condition:
            number, name = condition.groups()
            out.append((f"#{number} ({name})", ISSUE_URL.format(number=number)))
        elif not source.startswith("R-"):
            out.append((source, source_url(source)))
    return list(dict.fromkeys(out))


def sources_markdown(sources: tuple[str, ...] | list[str]) -> str:
    """Rule sources as Markdown links: ``[README](…), [#779](…)``."""
    return ", ".join(f"[{label}]({url})" if url else label for label, url in public_sources(sources))


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def escape_controls(path: str) -> str:
    """A file name as one printable line: a newline, tab or terminal escape in it (a name is the
    submitter's to choose) is shown as ``\\x0a``, so it cannot start a line of its own (a workflow
    command in a CI log, a Markdown heading) or colour a terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", path)


def escape_surrogates(text: str, in_json: bool = False) -> str:
    """Text that encodes as UTF-8: a file name that is not UTF-8 (Python keeps its bytes as lone
    surrogates) is shown with its bytes escaped, ``caf\\xe9.py``; inside JSON the backslash is
    itself escaped, so the document stays valid."""
    def one(match: re.Match[str]) -> str:
        code = ord(match.group())
        shown = f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"
        return shown.replace("\\", "\\\\") if in_json else shown

    return _SURROGATE.sub(one, text)


class Reporter(ABC):
    """Turns a report into text in one format."""

    @abstractmethod
    def render(self, report: Report) -> str:
        """The whole report as text."""

    def write(self, report: Report, stream: TextIO, *, color: bool | None = False) -> None:
        """Write the report to a stream (a terminal or a file); ``color`` None: decide from the stream."""
        text = escape_surrogates(self.render(report))
        stream.write(text if text.endswith("\n") else text + "\n")

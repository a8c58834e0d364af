"""The reporter interface: one module per output format, as ruff and pip-audit have it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TextIO

from auditor.results import Report

ISSUE_URL = "https://github.com/openai/parameter-golf/issues/{number}"


def source_url(source: str) -> str | None:
    """A link for a rule source: ``#779`` -> the issue/PR page (GitHub redirects issues to PRs)."""
    if source.startswith("#") and source[1:].isdigit():
        return ISSUE_URL.format(number=source[1:])
    return None


def sources_markdown(sources: tuple[str, ...] | list[str]) -> str:
    """Rule sources as Markdown, issue and PR numbers linked: ``[#779](…), README``."""
    parts = []
    for source in sources:
        url = source_url(source)
        parts.append(f"[{source}]({url})" if url else source)
    return ", ".join(parts)


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


class Reporter(ABC):
    """Turns a report into text in one format."""

    @abstractmethod
    def render(self, report: Report) -> str:
        """The whole report as text."""

    def write(self, report: Report, stream: TextIO, *, color: bool = False) -> None:
        """Write the report to a stream (a terminal or a file)."""
        text = self.render(report)
        stream.write(text if text.endswith("\n") else text + "\n")

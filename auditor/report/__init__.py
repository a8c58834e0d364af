"""Output formats. One module per format; :class:`Format` maps names to reporters."""

from __future__ import annotations

from enum import Enum

from auditor.report.base import Reporter


class Format(str, Enum):
    """The output formats of ``pgolf-audit check``."""

    CONSOLE = "console"
    JSON = "json"
    SARIF = "sarif"
    MARKDOWN = "markdown"
    GITHUB = "github"

    def __str__(self) -> str:
        return self.value

    def reporter(self) -> Reporter:
        """The reporter for this format."""
        if self is Format.CONSOLE:
            from auditor.report.console import ConsoleReporter

            return ConsoleReporter()
        if self is Format.JSON:
            from auditor.report.json import JsonReporter

            return JsonReporter()
        if self is Format.SARIF:
            from auditor.report.sarif import SarifReporter

            return SarifReporter()
        if self is Format.MARKDOWN:
            from auditor.report.markdown import MarkdownReporter

            return MarkdownReporter()
        from auditor.report.github import GithubReporter

        return GithubReporter()


__all__ = ["Format", "Reporter"]

"""Rule documentation rendered from the rules themselves (``rules/README.md``, ``explain``)."""

from __future__ import annotations

from auditor import registry
from auditor.report.base import source_url
from auditor.rule import Rule

HEADER = """# Rule catalogue

Generated from the rule modules by `pgolf-audit rules --format markdown`; do not edit by hand
(a test checks that this file is current). Codes: PG1xx static analysis of the code, PG2xx
runtime causality probes, PG3xx records (logs, submission.json, folder), PG9xx the auditor's
own results (what could not be checked). Run `pgolf-audit explain CODE` for one rule.

"""


def _sources(rule: type[Rule]) -> str:
    parts = []
    for source in rule.SOURCES:
        url = source_url(source)
        parts.append(f"[{source}]({url})" if url else source)
    return ", ".join(parts) or "—"


def rule_markdown(rule: type[Rule]) -> str:
    """The documentation page of one rule."""
    head = [
        f"# {rule.CODE} {rule.NAME}",
        "",
        f"Kind: {rule.KIND} · severity: {rule.SEVERITY.value} · confidence: {rule.CONFIDENCE.value} · "
        f"tags: {', '.join(rule.TAGS) or '—'} · sources: {_sources(rule)}",
        "",
    ]
    return "\n".join(head) + rule.doc() + "\n"


def catalogue_markdown() -> str:
    """The whole catalogue: an index table, then every rule's documentation."""
    rules = list(registry.all_rules().values())
    lines = [HEADER, "| code | name | kind | severity | confidence | what it does |", "|---|---|---|---|---|---|"]
    for rule in rules:
        anchor = f"{rule.CODE.lower()}-{rule.NAME}"
        lines.append(
            f"| [{rule.CODE}](#{anchor}) | {rule.NAME} | {rule.KIND} | {rule.SEVERITY.value} | "
            f"{rule.CONFIDENCE.value} | {rule.summary()} |"
        )
    lines.append("")
    for rule in rules:
        lines.append(rule_markdown(rule).replace(f"# {rule.CODE}", f"## {rule.CODE}", 1).replace("\n## ", "\n### "))
    return "\n".join(lines).rstrip() + "\n"

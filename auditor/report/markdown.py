"""Markdown: a report a reviewer can paste into a pull request, or a CI job summary."""

from __future__ import annotations

from auditor.findings import Finding, Status, Verdict
from auditor.report.base import Reporter, escape_controls, md_cell, sources_markdown
from auditor.report.text import evidence_items, md_value, readable
from auditor.results import Report, SubmissionReport

VERDICT_TEXT = {
    Verdict.CLEAN: "clean",
    Verdict.REVIEW: "needs review",
    Verdict.VIOLATION: "violation",
}
MARKER = "<!-- pgolf-audit -->"


def _where(finding: Finding) -> str:
    loc = finding.location
    text = f"`{escape_controls(loc.path)}`"
    if loc.decoded_from is not None:
        text += f" line {loc.decoded_from.line} → decoded line {loc.line}"
    elif loc.line is not None:
        text += f":{loc.line}"
    return text


def _evidence(finding: Finding, base: str) -> list[str]:
    return [f"  - {key}: {md_value(value)}" for key, value in evidence_items(finding, base)]


def _finding_block(finding: Finding, base: str) -> list[str]:
    lines = [
        f"- **{finding.code} {finding.name}** ({finding.severity}, {finding.confidence} confidence) at {_where(finding)}",
        f"  {finding.message}",
    ]
    if finding.snippet:
        lines.append(f"  `{md_cell(finding.snippet)}`")
    lines.extend(_evidence(finding, base))
    if finding.sources:
        lines.append(f"  - rule source: {sources_markdown(finding.sources)}")
    if finding.status_reason:
        lines.append(f"  - {finding.status.value}: {finding.status_reason}")
    return lines


def submission_markdown(sub: SubmissionReport) -> list[str]:
    """The Markdown section of one submission."""
    out = [f"### `{escape_controls(sub.path)}` — {VERDICT_TEXT[sub.verdict]}"]
    if sub.head_sha:
        out.append(f"Head commit `{sub.head_sha}`.")
    out.append("")
    if sub.seeds:
        keys = [k for k in ("seed", "val_bpb", "total_bytes", "train_s", "eval_s") if any(k in s for s in sub.seeds)]
        out.append("| " + " | ".join(keys) + " |")
        out.append("|" + "---|" * len(keys))
        for seed in sub.seeds:
            out.append("| " + " | ".join(md_cell(readable(seed.get(k), sub.path)) for k in keys) + " |")
        out.append("")
    active = [f for f in sub.findings if f.counts]
    inactive = [f for f in sub.findings if f.status is Status.INACTIVE]
    suppressed = [f for f in sub.findings if f.status is Status.SUPPRESSED]
    if active:
        out.append("**Findings**")
        out.append("")
        for finding in active:
            out.extend(_finding_block(finding, sub.path))
        out.append("")
    else:
        out.append("No active findings.")
        out.append("")
    for title, group in (("Present but switched off by defaults", inactive), ("Suppressed", suppressed)):
        if group:
            out.append(f"<details><summary>{title} ({len(group)})</summary>")
            out.append("")
            for finding in group:
                out.extend(_finding_block(finding, sub.path))
            out.append("")
            out.append("</details>")
            out.append("")
    if sub.checked:
        out.append(f"<details><summary>Checked ({len(sub.checked)} rules)</summary>")
        out.append("")
        out.extend(f"- {c}" for c in sub.checked)
        out.append("")
        out.append("</details>")
        out.append("")
    return out


class MarkdownReporter(Reporter):
    """A Markdown report with a hidden marker a bot can find to update its own comment."""

    def render(self, report: Report) -> str:
        counts = {v: sum(1 for s in report.submissions if s.verdict is v) for v in Verdict}
        head = ", ".join(f"{n} {VERDICT_TEXT[v]}" for v, n in counts.items() if n) or "nothing audited"
        lines = [MARKER, f"## pgolf-audit {report.tool_version}: {head}", ""]
        for sub in report.submissions:
            lines.extend(submission_markdown(sub))
        return "\n".join(lines).rstrip() + "\n"

"""The review comment a maintainer posts on a pull request.

It states a verdict and the figures behind it first (claimed val_bpb against the logs, seeds,
worst per-seed artifact bytes against 16,000,000, scored eval time against 600 s), then the
per-seed table, then each finding with what it is, the rule or ruling it breaks (linked), the
evidence (permalinks at the head commit, decoded-line references for wrappers, probe numbers)
and the legal alternative. What was considered and not counted (code switched off by its
defaults, hypotheses refuted by runtime evidence, waived findings) is listed separately, as
is everything that was checked. Nothing in it is made up: a figure the logs do not give is
shown as "—", and the comment never recommends merging or closing.

A hidden marker lets a bot find and update its own comment instead of posting a new one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auditor import registry
from auditor.findings import Finding, Severity, Status, Verdict
from auditor.report.base import Reporter, md_cell, sources_markdown
from auditor.report.text import evidence_items, md_value
from auditor.results import Report, SubmissionReport

MARKER = "<!-- pgolf-audit:review -->"
REPO_URL = "https://github.com/openai/parameter-golf"
BYTE_CAP = 16_000_000
EVAL_CAP_S = 600.0

VERDICT_HEAD = {
    Verdict.VIOLATION: "❌ violation",
    Verdict.REVIEW: "⚠️ needs review",
    Verdict.CLEAN: "✅ clean",
}
SEVERITY_ICON = {Severity.ERROR: "❌", Severity.WARNING: "⚠️", Severity.NOTE: "ℹ️"}
REFUTED_TITLE = "static hypotheses the runtime probes refuted (pattern present, no leak)"
STATUS_TITLE = {
    Status.INACTIVE: "present in the code but switched off by its defaults",
    Status.SUPPRESSED: "waived or suppressed, with the reason given",
}


@dataclass(frozen=True)
class ReviewContext:
    """Where the audited code lives, for links, and how to reproduce the audit."""

    repo_url: str = REPO_URL
    reproduce: str = ""  # e.g. "pgolf-audit pr 825 --repo <clone of openai/parameter-golf>"


def _num(value: Any, digits: int = 0) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}" if digits else f"{value:,}"
    return str(value)


def _bpb(value: Any) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".") if isinstance(value, (int, float)) else "—"



def permalink(sub: SubmissionReport, ctx: ReviewContext, path: str, line: int | None) -> str:
    """A link to a line at the head commit, or plain ``path:line`` without a commit.

    The text names the file relative to the submission's folder (the comment's title names
    the folder); the link holds the full path.
    """
    target = f"{path}#L{line}" if line else path
    shown = f"`{_relative(path, sub.path) or path}{f':{line}' if line else ''}`"
    if sub.head_sha:
        return f"[{shown}]({ctx.repo_url}/blob/{sub.head_sha}/{target})"
    return shown



def _relative(path: str, base: str) -> str:
    return path.removeprefix(base.rstrip("/") + "/") if base else path


def _seed_value(seed: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if seed.get(key) not in (None, ""):
            return seed[key]
    return None


def _worst(seeds: list[dict[str, Any]], *keys: str) -> tuple[Any, Any]:
    """(largest value, its seed) over seeds for the first key that has values."""
    values = [(v, s.get("seed")) for s in seeds if isinstance(v := _seed_value(s, *keys), (int, float))]
    return max(values, key=lambda p: p[0]) if values else (None, None)


def headline(sub: SubmissionReport) -> list[str]:
    """The verdict and the four figures a reviewer looks at first."""
    facts = sub.facts
    seeds = sub.seeds
    bpbs = [v for s in seeds if isinstance(v := _seed_value(s, "val_bpb"), (int, float))]
    logs_bpb = "—"
    if bpbs:
        mean = sum(bpbs) / len(bpbs)
        spread = f" ({_bpb(min(bpbs))}–{_bpb(max(bpbs))})" if len(bpbs) > 1 else ""
        logs_bpb = f"{_bpb(mean)} mean of {len(bpbs)} seed{'s' if len(bpbs) > 1 else ''}{spread}"
    worst_bytes, worst_bytes_seed = _worst(seeds, "total_bytes_submitted", "total_bytes_logged", "total_bytes")
    bytes_cell = "—"
    if worst_bytes is not None:
        mark = "❌ over" if worst_bytes > BYTE_CAP else "within"
        bytes_cell = f"{_num(worst_bytes)} (seed {worst_bytes_seed}) — {mark} {BYTE_CAP:,}"
    worst_eval, worst_eval_seed = _worst(seeds, "scored_eval_s")
    eval_cell = "—"
    if worst_eval is not None:
        mark = "❌ over" if worst_eval > EVAL_CAP_S else "within"
        stage = next((scored_stage(s) for s in seeds if s.get("seed") == worst_eval_seed and scored_stage(s)), None)
        named = f", `{md_cell(stage)}`" if stage else ""
        eval_cell = f"{worst_eval:,.1f} s (seed {worst_eval_seed}{named}) — {mark} {EVAL_CAP_S:.0f} s"
    claimed_seeds = facts.get("claimed_seeds")
    rows = [
        "| | claimed (submission.json) | from the logs |",
        "|---|---|---|",
        f"| val_bpb | {_bpb(facts.get('claimed_val_bpb'))} | {logs_bpb} |",
        f"| seeds | {_num(len(claimed_seeds)) if isinstance(claimed_seeds, list) else '—'} | {len(seeds) or '—'} |",
        f"| artifact bytes, worst seed | {_num(facts.get('claimed_bytes_total'))} | {bytes_cell} |",
        f"| scored eval time, worst seed | — | {eval_cell} |",
    ]
    return rows


def scored_stage(seed: dict[str, Any]) -> str | None:
    """The evaluation stage a seed's score is counted from, by the name its timer has in the
    log: the stage whose time is the scored eval time, else the stage of the score line."""
    timed = seed.get("scored_eval_stage")
    if timed:
        return str(timed).split("#", 1)[0]
    return seed.get("val_bpb_stage") or None


def _stage_notes(sub: SubmissionReport) -> list[str]:
    """Where a score line is not the timed stage (an ``_exact`` or roundtrip line reporting the
    pass before it), say so once per pair, so that both tables name the same stage."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for seed in sub.seeds:
        line, timed = seed.get("val_bpb_stage"), scored_stage(seed)
        if line and timed and line.removesuffix("_exact") != timed:  # X_exact is X's own figure
            pairs.setdefault((line, timed), []).append(str(seed.get("seed", "—")))
    return [
        f"Seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}: the score is logged as `{md_cell(line)}`, "
        f"a line without its own timer; its time is that of `{md_cell(timed)}`, the pass it reports."
        for (line, timed), seeds in pairs.items()
    ]


def seed_table(sub: SubmissionReport) -> list[str]:
    """One row per seed, from the logs."""
    if not sub.seeds:
        return ["No seed logs were parsed."]
    rows = [
        "| seed | log | val_bpb | stage | artifact bytes (submitted code) | logged total | train s | scored eval s | GPUs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seed in sub.seeds:
        rows.append(
            "| "
            + " | ".join(
                md_cell(x)
                for x in (
                    str(seed.get("seed", "—")),
                    f"`{_relative(seed['log'], sub.path)}`" if seed.get("log") else "—",
                    _bpb(seed.get("val_bpb")),
                    str(scored_stage(seed) or "—"),
                    _num(_seed_value(seed, "total_bytes_submitted")),
                    _num(_seed_value(seed, "total_bytes_logged", "total_bytes")),
                    _num(seed.get("train_s"), 1) if isinstance(seed.get("train_s"), (int, float)) else "—",
                    _num(seed.get("scored_eval_s"), 1) if isinstance(seed.get("scored_eval_s"), (int, float)) else "—",
                    _num(seed.get("world_size")),
                )
            )
            + " |"
        )
    notes = _stage_notes(sub)
    return [*rows, *([""] + notes if notes else [])]


def stage_table(sub: SubmissionReport) -> list[str]:
    """Seconds per evaluation stage (rows) and seed (columns), from the logs' own timers."""
    stages: list[str] = []
    seeds = [s for s in sub.seeds if isinstance(s.get("eval_s"), dict) and s["eval_s"]]
    for seed in seeds:
        stages += [name for name in seed["eval_s"] if name not in stages]
    if not stages:
        return []
    rows = [
        "<details><summary>Evaluation time per stage (s, as logged; the scored stage in bold)</summary>",
        "",
        "| stage | " + " | ".join(f"seed {md_cell(str(s.get('seed', '—')))}" for s in seeds) + " |",
        "|---|" + "---|" * len(seeds),
    ]
    for name in stages[:30]:
        cells = []
        for seed in seeds:
            value = seed["eval_s"].get(name)
            text = _num(value, 1) if isinstance(value, (int, float)) else "—"
            if seed.get("scored_eval_stage"):
                scored = name == seed["scored_eval_stage"]
            else:
                scored = name.split("#", 1)[0].removesuffix("_exact") == str(seed.get("val_bpb_stage") or "").removesuffix("_exact")
            cells.append(f"**{text}**" if scored and text != "—" else text)
        rows.append(f"| {md_cell(name)} | " + " | ".join(cells) + " |")
    return [*rows, "", "</details>", ""]


def runtime_table(sub: SubmissionReport) -> list[str]:
    """The runtime harness's probes on the submission's own evaluation code, when it ran."""
    runtime = sub.facts.get("runtime")
    if not isinstance(runtime, dict):
        return []
    lines = [
        f"### Runtime probes: {runtime.get('status', '?')} ({_num(runtime.get('seconds'), 1)} s on CPU)",
        "",
        "The submission's evaluation code ran in a sandbox on a small synthetic stream, with future tokens "
        "perturbed and targets substituted.",
        "",
    ]
    probes = runtime.get("probes") or []
    if probes:
        lines += ["| scorer | probe | result | detail |", "|---|---|---|---|"]
        lines += [f"| `{md_cell(str(p.get('scorer')))}` | {md_cell(str(p.get('probe')))} | {md_cell(str(p.get('status')))} "
                  f"| {md_cell(str(p.get('detail')))} |" for p in probes]
    for reason in runtime.get("reasons") or []:
        lines.append(f"- {md_cell(str(reason))}")
    return [*lines, ""]


def _fence(path: str) -> str:
    """The code-fence language of a snippet from ``path``."""
    if path.endswith(".py"):
        return "python"
    if path.endswith(".json"):
        return "json"
    if path.endswith((".c", ".cc", ".cpp", ".cu", ".h", ".hpp", ".cuh")):
        return "cpp"
    return "text"


def _evidence_line(finding: Finding, base: str) -> str:
    """The evidence on one line, ``label value · label value``, leaving out what the link or the
    message already shows."""
    loc = finding.location
    parts = []
    for key, value in evidence_items(finding, base, skip=("decoded", "wrapper_line")):
        if value == _relative(loc.path, base) or (key == "line" and value == str(loc.line)):
            continue  # the file and line the "where" link already gives
        if len(value) >= 5 and value in finding.message:
            continue  # stated in the message already (a number, a key expression)
        parts.append(f"{key} {md_value(value)}")
    return " · ".join(parts)


def _first_paragraph(text: str) -> str:
    return " ".join(text.split("\n\n", 1)[0].split())


def _use_instead(code: str) -> str:
    try:
        rule = registry.get(code)
    except KeyError:
        return ""
    text = rule.section("Use instead")
    # keep prose, drop code blocks: the comment links to the full rule documentation
    prose = re.sub(r"```.*?```", "", text, flags=re.S).strip()
    return _first_paragraph(prose)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _lead(text: str, limit: int = 260) -> str:
    """The first sentences of a paragraph, up to about ``limit`` characters (at least one)."""
    out = ""
    for sentence in _SENTENCE_END.split(text):
        if out and len(out) + len(sentence) > limit:
            break
        out = f"{out} {sentence}".strip()
    return out


def _why(code: str) -> str:
    """Why the rule matters, in a sentence or two; the rulings are linked after it and the full
    rationale is in the rule's documentation (``pgolf-audit explain CODE``)."""
    try:
        return _lead(_first_paragraph(registry.get(code).section("Why is this bad?")))
    except KeyError:
        return ""


def where(sub: SubmissionReport, finding: Finding, ctx: ReviewContext) -> str:
    """A permalink to the finding's line (the wrapper line for decoded code)."""
    loc = finding.location
    if loc.decoded_from is not None:
        return (
            f"{permalink(sub, ctx, loc.path, loc.decoded_from.line)} → decoded payload line {loc.line} "
            f"({' → '.join(loc.decoded_from.layers)})"
        )
    return permalink(sub, ctx, loc.path, loc.line)


def _item(sub: SubmissionReport, finding: Finding, ctx: ReviewContext, head: Finding, number: int | None,
          shared_where: bool) -> list[str]:
    """One finding under its rule's heading: what, where (unless the heading gives it), the
    snippet and the evidence."""
    marker = f"{number}. " if number is not None else ""
    indent = " " * len(marker)
    level = ""
    if (finding.severity, finding.confidence) != (head.severity, head.confidence):
        level = f"({finding.severity}, {finding.confidence} confidence) "
    place = "" if shared_where else f" — {where(sub, finding, ctx)}"
    lines = [f"{marker}{level}{finding.message}{place}"]
    if finding.snippet:
        lines += [f"{indent}```{_fence(finding.location.path)}", *(indent + line for line in finding.snippet.splitlines()),
                  f"{indent}```"]
    evidence = _evidence_line(finding, sub.path)
    if evidence:
        lines.append(f"{indent}<sub>Evidence: {evidence}</sub>")
    return lines


def rule_block(sub: SubmissionReport, findings: list[Finding], ctx: ReviewContext) -> list[str]:
    """Every finding of one rule: the heading, the findings listed, then once the rule's why,
    the rulings it rests on (linked) and the legal alternative."""
    head = findings[0]
    count = f" · {len(findings)} findings" if len(findings) > 1 else ""
    lines = [
        f"#### {SEVERITY_ICON[head.severity]} {head.code} {head.name} — {head.severity}, "
        f"{head.confidence} confidence{count}",
        "",
    ]
    numbered = len(findings) > 1
    places = {where(sub, f, ctx) for f in findings}
    shared = numbered and len(places) == 1
    if shared:
        lines += [f"All in {places.pop()}:", ""]
    for number, finding in enumerate(findings, 1):
        lines += _item(sub, finding, ctx, head, number if numbered else None, shared)
        if not numbered:
            lines.append("")
    if numbered:
        lines.append("")
    why = _why(head.code)
    sources = sources_markdown(tuple(dict.fromkeys(s for f in findings for s in f.sources)))
    if why or sources:
        lines += [f"**Why it matters:** {why}" + (f" Rule: {sources}." if sources else ""), ""]
    alternative = _use_instead(head.code)
    if alternative:
        lines += [f"**Legal alternative:** {alternative}", ""]
    return lines


def by_rule(findings: list[Finding]) -> list[list[Finding]]:
    """Findings grouped by rule code, worst first (severity, then confidence), each group worst first."""
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, -f.confidence.rank))
    groups: dict[str, list[Finding]] = {}
    for finding in ordered:
        groups.setdefault(finding.code, []).append(finding)
    return list(groups.values())


def refuted(finding: Finding) -> bool:
    """A static hypothesis (a warning) that the runtime probes exercised without finding a leak:
    the harness lowered it to a note, with the probe evidence."""
    runtime = finding.evidence.get("runtime")
    return finding.severity is Severity.NOTE and isinstance(runtime, dict) and runtime.get("status") == "pass"


def _considered(sub: SubmissionReport, ctx: ReviewContext) -> list[str]:
    groups: dict[str, list[Finding]] = {}
    for finding in sub.findings:
        if finding.status is not Status.ACTIVE:
            groups.setdefault(STATUS_TITLE.get(finding.status, finding.status.value), []).append(finding)
        elif refuted(finding):
            groups.setdefault(REFUTED_TITLE, []).append(finding)
    if not groups:
        return []
    lines = ["### Considered and not counted", ""]
    for title, findings in groups.items():
        lines.append(f"<details><summary>{len(findings)} {title}</summary>")
        lines.append("")
        for finding in findings:
            loc = finding.location
            line = loc.decoded_from.line if loc.decoded_from else loc.line
            lines.append(
                f"- {finding.code} {finding.name} at {permalink(sub, ctx, loc.path, line)}: {finding.message}"
                + (f" — *{finding.status_reason}*" if finding.status_reason else "")
            )
        lines += ["", "</details>", ""]
    return lines


def _ranges(codes: list[str]) -> str:
    """``PG101–PG110, PG112`` from sorted codes: runs of consecutive numbers become ranges."""
    runs: list[list[str]] = []
    for code in codes:
        if runs and code[:2] == runs[-1][-1][:2] and code[2:].isdigit() and runs[-1][-1][2:].isdigit() \
                and int(code[2:]) == int(runs[-1][-1][2:]) + 1:
            runs[-1].append(code)
        else:
            runs.append([code])
    return ", ".join(f"{r[0]}–{r[-1]}" if len(r) > 2 else ", ".join(r) for r in runs)


def _checked(sub: SubmissionReport) -> list[str]:
    """The rules that ran, as code ranges per kind (``pgolf-audit explain CODE`` describes each)."""
    if not sub.checked:
        return []
    kinds: dict[str, list[str]] = {}
    for item in sub.checked:
        code = item.split(" ", 1)[0]
        try:
            kind = registry.get(code).KIND
        except KeyError:
            kind = "other"
        kinds.setdefault(kind, []).append(code)
    listed = "; ".join(f"{kind}: {_ranges(sorted(set(codes)))}" for kind, codes in kinds.items())
    return [f"<sub>Checked {len(sub.checked)} rules ({listed}); `pgolf-audit explain CODE` describes each.</sub>", ""]


def review_markdown(sub: SubmissionReport, ctx: ReviewContext, version: str) -> str:
    """The review comment of one submission."""
    lines = [MARKER, f"## pgolf-audit review: {VERDICT_HEAD[sub.verdict]}", ""]
    title = f"**`{sub.path}`**"
    if sub.head_sha:
        title += f" at [`{sub.head_sha[:12]}`]({ctx.repo_url}/commit/{sub.head_sha})"
    if sub.pr is not None:
        title += f" (PR [#{sub.pr}]({ctx.repo_url}/pull/{sub.pr}))"
    lines += [title, "", *headline(sub), "", "### Per-seed figures from the logs", "", *seed_table(sub), "", *stage_table(sub)]
    lines += runtime_table(sub)
    active = [f for f in sub.findings if f.counts and not refuted(f)]
    if active:
        groups = by_rule(active)
        rules = f", {len(groups)} rules" if len(groups) > 1 else ""
        lines += [f"### Findings ({len(active)}{rules})", ""]
        for group in groups:
            lines += rule_block(sub, group, ctx)
    else:
        lines += ["### Findings", "", "None of the checks below found a problem.", ""]
    lines += _considered(sub, ctx)
    lines += _checked(sub)
    footer = f"<sub>pgolf-audit {version}"
    if ctx.reproduce:
        footer += f" · reproduce with `{ctx.reproduce}`"
    footer += " · every figure above comes from the submission's own files; a finding is not a ruling.</sub>"
    lines.append(footer)
    return "\n".join(lines).rstrip() + "\n"


class ReviewReporter(Reporter):
    """One review comment per submission, separated by a rule when there are several."""

    def __init__(self, ctx: ReviewContext | None = None) -> None:
        self.ctx = ctx or ReviewContext()

    def render(self, report: Report) -> str:
        parts: Iterable[str] = (review_markdown(s, self.ctx, report.tool_version) for s in report.submissions)
        return "\n---\n\n".join(parts)

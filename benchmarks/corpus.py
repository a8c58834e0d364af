"""Measure the auditor against labeled pull requests of openai/parameter-golf.

Usage::

    python benchmarks/corpus.py --repo PATH/TO/parameter-golf --labels PATH/TO/dev.jsonl
                                [--prs 825,1412] [--jobs 2] [--json results.json] [--runtime]

``--repo`` is a clone (bare or not) that has the ``refs/pull/N/head`` refs or at least the
labeled head commits. Each labeled PR's record folder is audited at its head commit, read
straight from git, and the active findings are compared with the labels:

- a PR "detects" a violation tag when an active **error** finding carries that tag (tags
  ``prequant_ttt`` and ``ttt_before_score`` count as one group, as the labels use both);
- precision and recall are per tag, counted per PR; PRs labeled ``disputed`` or ``unknown``
  are left out of both; false positives are split by the PR's label (``legal`` or
  ``illegal`` for another reason), because the labels name the violation a ruling rests
  on, not every one the code contains;
- ``code`` counts the labeled PRs whose label points at lines of Python code (the rest rest
  on logs, READMEs or data preparation); ``recall(code)`` is the recall over those;
- a PR labeled ``legal`` must have no active error at all (any code);
- ``lines`` says, for the detected PRs, how many have a finding on one of the labeled lines;
- misses are listed with what the auditor did say about that PR (a warning, an inactive
  finding and why, nothing), and timing is printed per PR and in total.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from auditor.discover import build_bundle
from auditor.engine import AuditOptions, audit_bundles
from auditor.findings import Severity, Status
from auditor.gitrepo import GitRepo, GitTreeStore

#: Label tags scored together: a finding of either tag detects a label of either.
GROUPS = {"ttt_before_score": "prequant_ttt", "other:target_gated_ngram_hint": "target_gated"}
#: Tags the auditor reports; labels outside these (other:…) are listed but not scored.
SCORED = (
    "target_in_key", "slot", "prequant_ttt", "target_gated", "val_in_train", "size_cap", "eval_budget",
    "train_budget", "bpb_accounting",
)
CODE_SUFFIXES = (".py",)
#: Tags decided from logs and submission.json, never from code.
LOG_TAGS = frozenset({"size_cap", "eval_budget", "train_budget", "bpb_accounting"})


def group(tag: str) -> str:
    return GROUPS.get(tag, tag)


@dataclass
class Seen:
    """A finding as the benchmark keeps it."""

    code: str
    tags: tuple[str, ...]
    severity: str
    status: str
    path: str
    line: int | None
    decoded: bool
    message: str
    reason: str


@dataclass
class PrResult:
    pr: int
    verdict_label: str
    labels: set[str]
    code_labels: set[str] = field(default_factory=set)  # labels backed by lines of Python code
    labeled_lines: dict[str, list[tuple[str, int, bool]]] = field(default_factory=dict)
    detected: set[str] = field(default_factory=set)  # tags of active errors
    warned: set[str] = field(default_factory=set)  # tags of active warnings
    inactive: set[str] = field(default_factory=set)
    findings: list[Seen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "PG101 path:line message"
    auditor_verdict: str = ""
    seconds: float = 0.0
    failure: str = ""
    #: the auditor's per-seed rows and the labels' per-seed figures, for the records parser comparison
    seeds: list[dict] = field(default_factory=list)
    labeled_seeds: dict = field(default_factory=dict)


def _labels(row: dict) -> tuple[set[str], set[str], dict[str, list[tuple[str, int, bool]]]]:
    labels = {group(t) for t in row["violations"]}
    lines: dict[str, list[tuple[str, int, bool]]] = {}
    for item in row.get("lines", []):
        path = item.get("path", "")
        if not path.endswith(CODE_SUFFIXES) or not item.get("line"):
            continue
        for tag in labels:
            lines.setdefault(tag, []).append((path, int(item["line"]), bool(item.get("decoded_from_wrapper"))))
    # The corpus gives lines per PR, not per tag: log-based tags never count as code-side.
    code = {t for t in labels if t not in LOG_TAGS}
    return labels, code & set(lines), lines


def audit_one(args: tuple[str, dict, bool, list[str] | None]) -> PrResult:
    repo_path, row, runtime, select = args
    labels, code_labels, lines = _labels(row)
    result = PrResult(row["pr"], row["verdict"], labels, code_labels, lines)
    start = time.perf_counter()
    try:
        with GitRepo(repo_path) as repo:
            bundles = []
            for folder in row["record_dirs"]:
                bundle = build_bundle(GitTreeStore(repo, row["head_sha"], folder))
                bundle.head_sha, bundle.pr = row["head_sha"], row["pr"]
                bundles.append(bundle)
            report = audit_bundles(bundles, AuditOptions(runtime=runtime, select=select))
    except Exception as exc:  # a benchmark reports failures instead of stopping
        result.failure = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        return result
    result.seconds = time.perf_counter() - start
    result.auditor_verdict = ",".join(s.verdict.value for s in report.submissions)
    result.seeds = [seed for s in report.submissions for seed in s.seeds]
    result.labeled_seeds = row.get("per_seed") or {}
    for finding in report.findings:
        tags = tuple(sorted({group(t) for t in finding.tags}))
        loc = finding.location
        result.findings.append(
            Seen(finding.code, tags, finding.severity.value, finding.status.value, loc.path, loc.line,
                 loc.decoded_from is not None, finding.message, finding.status_reason)
        )
        if finding.status is Status.INACTIVE:
            result.inactive |= set(tags)
        elif finding.status is Status.ACTIVE and finding.severity is Severity.ERROR:
            result.detected |= set(tags)
            result.errors.append(f"{finding.code} {finding.location}: {finding.message[:120]}")
        elif finding.status is Status.ACTIVE and finding.severity is Severity.WARNING:
            result.warned |= set(tags)
    return result


def _line_hit(r: PrResult, tag: str) -> bool:
    wanted = {(path, line, decoded) for path, line, decoded in r.labeled_lines.get(tag, ())}
    for f in r.findings:
        if tag in f.tags and f.status == "active" and f.severity == "error":
            if (f.path, f.line, f.decoded) in wanted:
                return True
    return False


def score(results: list[PrResult]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for tag in SCORED:
        tp = fp = fn = fp_legal = code = code_tp = with_lines = line_hits = 0
        for r in results:
            if r.verdict_label in ("disputed", "unknown") or r.failure:
                continue
            labeled, found = tag in r.labels, tag in r.detected
            tp += labeled and found
            fp += found and not labeled
            fp_legal += found and not labeled and r.verdict_label == "legal"
            fn += labeled and not found
            if tag in r.code_labels:
                code += 1
                code_tp += found
            if labeled and found and r.labeled_lines.get(tag):
                with_lines += 1
                line_hits += _line_hit(r, tag)
        table[tag] = {
            "labeled": tp + fn,
            "tp": tp,
            "fp": fp,
            "fp_legal": fp_legal,
            "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan"),
            "code": code,
            "recall_code": code_tp / code if code else float("nan"),
            "lines": f"{line_hits}/{with_lines}" if with_lines else "-",
        }
    return table


#: Per-seed figures of the labels and the auditor's names for them, with a tolerance.
SEED_FIGURES = (
    ("total_bytes", "total_bytes_logged", 0),
    ("model_bytes", "model_bytes", 0),
    ("model_plus_submitted_code_bytes", "total_bytes_submitted", 0),
    ("train_s", "train_s", 0.0015),
    ("val_bpb", "val_bpb", 1e-8),
    ("world_size", "world_size", 0),
)


def print_seed_agreement(results: list[PrResult]) -> None:
    """How often the records parser reads the same per-seed figure as the labels' own parse.

    The labels' figures come from the PR logs (``per_seed`` in dev.jsonl); rows are matched by
    log file name. Disagreements are listed: some are the labels' misreads (a stage picked
    from an epoch prefix, a mean where a seed's value is meant), some are the auditor's.
    """
    counts: dict[str, list[int]] = {name: [0, 0] for _, name, _ in SEED_FIGURES}
    diffs: list[str] = []
    for r in results:
        mine = {s.get("log", "").rsplit("/", 1)[-1]: s for s in r.seeds}
        for labeled in r.labeled_seeds.values():
            ours = mine.get(labeled.get("log", ""))
            for theirs_name, our_name, tolerance in SEED_FIGURES:
                tol = tolerance
                if theirs_name not in labeled:
                    continue
                counts[our_name][1] += 1
                value = ours.get(our_name) if ours else None
                theirs = labeled[theirs_name]
                if our_name == "val_bpb" and "." in repr(theirs):  # labels often kept 4 decimals
                    tol = 0.5 * 10 ** -len(repr(theirs).split(".")[1]) + 1e-12
                if value is not None and abs(float(value) - float(theirs)) <= tol:
                    counts[our_name][0] += 1
                elif len(diffs) < 60:
                    diffs.append(f"  #{r.pr} {labeled.get('log')}: {our_name} auditor={value} labels={labeled[theirs_name]}")
    print()
    print("per-seed figures, auditor vs the labels' parse of the same logs (agree / compared):")
    for name, (agree, total) in counts.items():
        if total:
            print(f"  {name:<24}{agree:>5} / {total:<5} {agree / total:.0%}")
    if diffs:
        print("  disagreements (first 60):")
        print("\n".join(diffs))


def _fmt(x: float) -> str:
    return "  -  " if x != x else f"{x:.2f}"


def _said(r: PrResult, tag: str) -> str:
    if tag in r.warned:
        found = [f for f in r.findings if tag in f.tags and f.status == "active"]
        return f"a warning ({found[0].code} line {found[0].line})" if found else "a warning"
    if tag in r.inactive:
        found = [f for f in r.findings if tag in f.tags and f.status == "inactive"]
        return f"inactive ({found[0].code} line {found[0].line}: {found[0].reason[:110]})" if found else "inactive"
    return "nothing"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--labels", type=Path, required=True, metavar="JSONL",
                        help="the labeled pull requests (dev.jsonl of the development set)")
    parser.add_argument("--prs", help="only these PR numbers, comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="parallel worker processes")
    parser.add_argument("--runtime", action="store_true", help="also run the runtime harness")
    parser.add_argument("--json", type=Path, help="write per-PR results and scores here")
    parser.add_argument("--select", help="only these codes or prefixes, comma-separated (e.g. PG3 for the records checks)")
    args = parser.parse_args(argv)

    rows = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    if args.prs:
        wanted = {int(p) for p in args.prs.split(",")}
        rows = [r for r in rows if r["pr"] in wanted]
    start = time.perf_counter()
    select = [c.strip().upper() for c in args.select.split(",")] if args.select else None
    work = [(args.repo, row, args.runtime, select) for row in rows]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(audit_one, work))
    else:
        results = [audit_one(w) for w in work]
    wall = time.perf_counter() - start

    table = score(results)
    print(f"{len(results)} labeled PRs from {args.labels.name}; wall time {wall:.1f} s with {args.jobs} jobs")
    print()
    header = f"{'tag':<16}{'labeled':>8}{'TP':>5}{'FP':>5}{'(legal)':>8}{'FN':>5}{'precision':>11}{'recall':>8}{'code':>6}{'recall(code)':>14}{'lines':>8}"
    print(header)
    for tag, s in table.items():
        print(
            f"{tag:<16}{s['labeled']:>8}{s['tp']:>5}{s['fp']:>5}{s['fp_legal']:>8}{s['fn']:>5}"
            f"{_fmt(s['precision']):>11}{_fmt(s['recall']):>8}{s['code']:>6}{_fmt(s['recall_code']):>14}{s['lines']:>8}"
        )

    legal = [r for r in results if r.verdict_label == "legal" and not r.failure]
    dirty = [r for r in legal if r.errors]
    print()
    print(f"legal PRs with an active error: {len(dirty)} of {len(legal)}")
    for r in dirty:
        for line in r.errors:
            print(f"  #{r.pr}: {line}")

    print()
    print("misses (labeled, no active error with that tag):")
    for r in results:
        if r.verdict_label in ("disputed", "unknown") or r.failure:
            continue
        for tag in sorted(r.labels & set(SCORED)):
            if tag not in r.detected:
                side = "code" if tag in r.code_labels else "not code (logs, README, data preparation, C sources)"
                print(f"  #{r.pr} {tag} [{side}]: auditor said {_said(r, tag)}")
    print()
    print("false positives (active error with a tag the labels do not give):")
    for r in results:
        if r.verdict_label in ("disputed", "unknown") or r.failure:
            continue
        for tag in sorted((r.detected & set(SCORED)) - r.labels):
            first = next((f for f in r.findings if tag in f.tags and f.status == "active" and f.severity == "error"), None)
            where = f" {first.code} line {first.line}: {first.message[:110]}" if first else ""
            print(f"  #{r.pr} {tag} (label verdict {r.verdict_label}, labels {sorted(r.labels) or '-'}):{where}")

    failures = [r for r in results if r.failure]
    if failures:
        print()
        print("audits that failed:")
        for r in failures:
            print(f"  #{r.pr}: {r.failure}")

    print_seed_agreement(results)

    times = sorted(r.seconds for r in results)
    if times:
        print()
        print(
            f"per-PR audit time (whole audit, git reads included): median {statistics.median(times):.2f} s, "
            f"p90 {times[int(0.9 * (len(times) - 1))]:.2f} s, max {times[-1]:.2f} s"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scores": table,
                    "results": [
                        {k: v for k, v in r.__dict__.items() if k != "findings"}
                        | {"labels": sorted(r.labels), "detected": sorted(r.detected), "warned": sorted(r.warned),
                           "inactive": sorted(r.inactive), "code_labels": sorted(r.code_labels),
                           "findings": [f.__dict__ for f in r.findings]}
                        for r in results
                    ],
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

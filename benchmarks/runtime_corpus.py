"""Measure the runtime causality harness on labeled pull requests of openai/parameter-golf.

Usage::

    python benchmarks/runtime_corpus.py --repo PATH/TO/parameter-golf --labels PATH/TO/dev.jsonl
        [--prs 549,825,1321] [--jobs 1] [--budget 110] [--timeout 150] [--json out.json]
        [--resume out.json]

Each labeled PR's records folder is read at its head commit straight from git (wrappers are
decoded), run through the sandboxed harness as an audit runs it (``Evidence.runtime``: the
scored configuration of its seed logs decides the settings and the claimed stage) and the
verdict is compared with the labels:

- *conclusive* means the harness said ``fail`` or ``pass``; ``inconclusive`` comes with reasons,
  which are tallied;
- PRs with an eval-time adaptive part (n-gram cache, TTT, SLOT: by label, or by the script's
  evaluation functions and knobs) and PRs labeled ``legal`` get their own conclusive rates;
- a failed probe on a PR labeled ``legal`` is listed (there should be none);
- among conclusive PRs labeled target_in_key, slot or prequant_ttt, the share that fails a
  probe is reported per label;
- per-PR wall time (sandbox start to verdict) gives the median and p90;
- passes are split by whether the claimed stage of the seed logs was exercised (a pass with a
  claimed stage needs it; a pass without one comes from a folder whose logs name no stage).

With ``--jobs`` above 1 several sandboxes run at once: verdicts are unchanged, timings are not
comparable to a one-at-a-time run on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from auditor.discover import build_bundle
from auditor.gitrepo import GitRepo, GitTreeStore
from auditor.evidence import AuditContext, Evidence
from auditor.runtime.sandbox import Limits
from auditor.runtime.stage import scored_runtime

LEAK_LABELS = ("target_in_key", "slot", "prequant_ttt", "ttt_before_score")
ADAPTIVE_SOURCE = re.compile(
    r"def\s+\w*(ttt|slot|ngram|n_gram|cache|mixer|lora|phased|backoff|ppm|tilt)\w*\s*\(|TTT_ENABLED|SLOT_ENABLED|NGRAM_"
    r"|class\s+\w*(Ngram|NGram|Mixer|Cache)\w*", re.I)


def adaptive(row: dict[str, Any], text: str) -> bool:
    return bool(set(row["violations"]) & set(LEAK_LABELS)) or bool(ADAPTIVE_SOURCE.search(text))


#: Classes of inconclusive reasons, most fundamental first: a PR's root cause is the first of
#: its reasons' classes in this order (a run that stopped explains its unexercised stage).
REASON_CLASSES = (
    ("no main script", "no main script in the folder"),
    ("does not compile", "syntax the interpreter rejects"),
    ("(import failed)", "run stopped: import failed"), ("import failed", "run stopped: import failed"),
    ("(a gpu-only kernel", "run stopped: GPU-only kernel"), ("(dtype mismatch)", "run stopped: dtype mismatch"),
    ("(shape mismatch", "run stopped: shape mismatch (shrunk settings)"),
    ("rejected a shrunk setting", "run stopped: the script rejected a shrunk setting"),
    ("(a file was missing)", "run stopped: a file was missing"), ("(out of memory)", "run stopped: out of memory"),
    ("(the sandbox refused it)", "run stopped: the sandbox refused an action"),
    ("(an assertion of the script failed)", "run stopped: an assertion of the script"),
    ("run stopped", "run stopped: an error in the script"),
    ("refused network", "network access refused"),
    ("could not be read", "a file of the folder could not be read"),
    ("wall-clock limit", "wall-clock limit"), ("ended before its final report", "run ended early"),
    ("entry point not found", "entry point not found"), ("no evaluation function was called", "no evaluation called"),
    ("capture incomplete", "capture incomplete"), ("time budget", "time budget of the probes"),
    ("hashed count tables", "hashed tables not scaled"),
    ("the scored stage is unknown", "scored stage unknown"),
    ("never printed its line", "scored stage never printed"),
    ("is none a captured evaluation returned", "scored value from no captured evaluation"),
    ("did not act at the shrunk scale", "claimed mechanism did not act (shrunk run)"),
    ("not run", "probe not run"), ("inconclusive", "probe inconclusive"),
)


def reason_class(reason: str) -> str:
    """A short class for an inconclusive reason (for the tally)."""
    r = reason.lower()
    for key, label in REASON_CLASSES:
        if key in r:
            return label
    return "other"


def root_cause(reasons: list[str]) -> str:
    """The most fundamental class among a PR's reasons (see :data:`REASON_CLASSES`)."""
    order = {label: i for i, (_, label) in enumerate(REASON_CLASSES)}
    classes = [reason_class(r) for r in reasons]
    return min(classes, key=lambda c: order.get(c, len(order))) if classes else "none given"


def _root_reason(reasons: list[str]) -> str:
    cause = root_cause(reasons)
    return next((r for r in reasons if reason_class(r) == cause), reasons[0])


def run_one(args: tuple[str, dict[str, Any], dict[str, Any], Limits]) -> dict[str, Any]:
    repo_path, row, settings, limits = args
    out: dict[str, Any] = {"pr": row["pr"], "verdict_label": row["verdict"], "labels": row["violations"]}
    started = time.monotonic()
    try:
        with GitRepo(repo_path) as repo:
            bundle = build_bundle(GitTreeStore(repo, row["head_sha"], row["record_dirs"][0]))
        text = bundle.main_source.text if bundle.main_source is not None else ""
        out["adaptive"] = adaptive(row, text)
        evidence = Evidence(bundle, AuditContext(runtime=True, runtime_settings=settings, runtime_limits=limits))
        out["stages"] = [st.label for st in scored_runtime(evidence.scored, evidence.program, evidence.records).stages]
        result = evidence.runtime
        assert result is not None
    except Exception as exc:  # a benchmark reports failures instead of stopping
        out.update(status="inconclusive", reasons=[f"benchmark error: {type(exc).__name__}: {exc}"], failures=[],
                   seconds=time.monotonic() - started, adaptive=out.get("adaptive", False))
        return out
    out.update(
        status=result.status, reasons=result.reasons,
        failures=[{"probe": r.probe, "scorer": r.scorer, "detail": r.detail} for r in result.failures],
        passed=sorted({f"{r.scorer}:{r.probe}" for r in result.rows if r.status == "pass"}),
        seconds=time.monotonic() - started, run_env=result.run_env,
        passes=[{k: p.get(k) for k in ("name", "index", "complete", "seconds", "reason")} for p in result.passes],
        bytes=[{"scorer": r.scorer, "status": r.status, "detail": r.detail} for r in result.rows if r.probe == "bytes"],
    )
    return out


def byte_status(r: dict[str, Any]) -> str:
    """The byte-accounting probe's outcome for a PR: fail if a call failed, pass if one passed
    and none failed, else inconclusive ("not run" when no evaluation was captured)."""
    statuses = {b["status"] for b in r.get("bytes", [])}
    return next((s for s in ("fail", "pass", "inconclusive") if s in statuses), "not run")


def summarize(results: list[dict[str, Any]]) -> str:
    lines: list[str] = []

    def rate(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "-"
        conclusive = [r for r in rows if r["status"] in ("fail", "pass")]
        return f"{len(conclusive)}/{len(rows)} ({100 * len(conclusive) / len(rows):.0f} %)"

    lines.append(f"{len(results)} PRs")
    lines.append("")
    lines.append(f"{'group':<34}{'PRs':>5}{'fail':>6}{'pass':>6}{'inconcl.':>10}   conclusive")
    groups: list[tuple[str, list[dict[str, Any]]]] = [
        ("all", results),
        ("eval-time adaptive part", [r for r in results if r.get("adaptive")]),
        ("labeled legal", [r for r in results if r["verdict_label"] == "legal"]),
        ("labeled illegal", [r for r in results if r["verdict_label"] == "illegal"]),
    ]
    for label in LEAK_LABELS:
        groups.append((f"label {label}", [r for r in results if label in r["labels"]]))
    for name, rows in groups:
        c = Counter(r["status"] for r in rows)
        lines.append(f"{name:<34}{len(rows):>5}{c['fail']:>6}{c['pass']:>6}{c['inconclusive']:>10}   {rate(rows)}")
    lines.append("")
    lines.append("where conclusive, share of labeled PRs that fail a probe:")
    for label in ("target_in_key", "slot", "prequant_ttt"):
        rows = [r for r in results if label in r["labels"] and r["status"] in ("fail", "pass")]
        failed = [r for r in rows if r["status"] == "fail"]
        share = f"{100 * len(failed) / len(rows):.0f} %" if rows else "-"
        lines.append(f"  {label:<16}{len(failed)}/{len(rows)}  {share}")
    passed = [r for r in results if r["status"] == "pass"]
    staged = [r for r in passed if r.get("stages")]
    lines.append("")
    lines.append(f"passes: {len(passed)}, with the claimed stage exercised: {len(staged)}, "
                 f"with no claimed stage in the seed logs: {len(passed) - len(staged)}")
    lines.append(f"inconclusive because the scored stage was not exercised: "
                 f"{sum(1 for r in results if r['status'] == 'inconclusive' and any('the scored stage' in x for x in r['reasons']))}")
    bad = [r for r in results if r["verdict_label"] == "legal" and r["status"] == "fail"]
    lines.append("")
    lines.append(f"legal PRs with a failed probe: {len(bad)}")
    for r in bad:
        for f in r["failures"]:
            lines.append(f"  #{r['pr']} {f['scorer']} {f['probe']}: {f['detail'][:160]}")
    lines.append("")
    tally = Counter(byte_status(r) for r in results)
    lines.append("byte accounting (PG206): " + ", ".join(f"{k} {tally[k]}" for k in ("fail", "pass", "inconclusive",
                                                                                  "not run")))
    for r in sorted(results, key=lambda r: r["pr"]):
        if byte_status(r) in ("fail", "pass") or "bpb_accounting" in r["labels"]:
            first = next((b for b in r.get("bytes", []) if b["status"] == byte_status(r)), None)
            lines.append(f"  #{r['pr']} {','.join(r['labels']) or r['verdict_label']}: {byte_status(r)}"
                         + (f" ({first['scorer']}: {first['detail'][:150]})" if first else ""))
    lines.append("")
    inconclusive = [r for r in results if r["status"] == "inconclusive"]
    lines.append("inconclusive, by root cause (the most fundamental reason per PR):")
    for reason, n in Counter(root_cause(r["reasons"]) for r in inconclusive).most_common():
        lines.append(f"  {n:>3}  {reason}")
    lines.append("every reason given (a PR counts once per class):")
    for reason, n in Counter(c for r in inconclusive for c in {reason_class(x) for x in r["reasons"]}).most_common():
        lines.append(f"  {n:>3}  {reason}")
    times = sorted(r["seconds"] for r in results)
    if times:
        lines.append("")
        lines.append(f"time per PR: median {statistics.median(times):.0f} s, p90 {times[int(0.9 * (len(times) - 1))]:.0f} s, "
                     f"max {times[-1]:.0f} s")
    lines.append("")
    lines.append("per PR:")
    for r in sorted(results, key=lambda r: r["pr"]):
        what = ",".join(r["labels"]) or r["verdict_label"]
        detail = (f"{r['failures'][0]['probe']} on {r['failures'][0]['scorer']}" if r["status"] == "fail" and r["failures"]
                  else (f"[{root_cause(r['reasons'])}] " + _root_reason(r["reasons"])[:110] if r["reasons"] else ""))
        lines.append(f"  #{r['pr']:<5} {what:<28} {r['status']:<13} {r['seconds']:>5.0f} s  {detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--labels", type=Path, required=True, metavar="JSONL",
                        help="the labeled pull requests (dev.jsonl of the development set)")
    parser.add_argument("--prs", help="only these PR numbers, comma-separated")
    parser.add_argument("--jobs", type=int, default=1, help="sandboxes run at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per sandbox")
    parser.add_argument("--budget", type=float, default=100.0, help="seconds of probing per PR")
    parser.add_argument("--timeout", type=float, default=140.0, help="wall-clock limit per PR")
    parser.add_argument("--json", type=Path, help="write per-PR results here (updated after each PR)")
    parser.add_argument("--resume", type=Path, help="skip PRs already in this results file")
    args = parser.parse_args(argv)

    rows = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("record_dirs")]
    if args.prs:
        wanted = {int(p) for p in args.prs.split(",")}
        rows = [r for r in rows if r["pr"] in wanted]
    done: list[dict[str, Any]] = []
    if args.resume and args.resume.exists():
        done = json.loads(args.resume.read_text())["results"]
        seen = {r["pr"] for r in done}
        rows = [r for r in rows if r["pr"] not in seen]
    settings = {"budget_s": args.budget}
    limits = Limits(wall_s=args.timeout, threads=args.threads)
    work = [(str(args.repo), row, settings, limits) for row in rows]
    results = list(done)
    started = time.monotonic()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for result in pool.map(run_one, work):
            results.append(result)
            print(f"#{result['pr']}: {result['status']} in {result['seconds']:.0f} s"
                  + (f" ({result['reasons'][0][:100]})" if result["reasons"] and result["status"] != "fail" else ""),
                  file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps({"results": results}, indent=1, default=str))
    print(f"wall time {time.monotonic() - started:.0f} s with {args.jobs} job(s) of {args.threads} thread(s)")
    print(summarize(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

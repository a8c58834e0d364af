"""Time ``pgolf-audit triage`` over the pull requests of a clone, cold and warm.

Usage::

    python benchmarks/triage.py --repo PATH/TO/parameter-golf [--jobs 2] [--prs all]
                                [--select PG3] [--cache DIR] [--jsonl out.jsonl]

The cold run starts from an empty cache (a temporary folder unless ``--cache`` names one
that is emptied first); the warm run repeats the same triage with the cache the cold run
filled, as a second ``pgolf-audit triage`` would. Prints both timings, how many folders each
run audited or read from the cache, the rows by verdict, and every folder whose audit failed
(a crash would be listed here; there should be none).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from auditor.commands.triage import triage, write_jsonl
from auditor.engine import AuditOptions


def _line(name: str, outcome, wall: float) -> str:
    return (
        f"{name:<5} {wall:8.1f} s  (discovery {outcome.discovery_s:6.1f} s, audits {outcome.audit_s:7.1f} s)  "
        f"audited {outcome.audited:5d}  cached {outcome.cached:5d}  failed {outcome.failed}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with refs/pull/N/head")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--prs", default="all", help="all, a list or ranges (as pgolf-audit triage --prs)")
    parser.add_argument("--select", help="only these codes or prefixes (e.g. PG3 for the records checks)")
    parser.add_argument("--cache", type=Path, help="cache folder to use (emptied first); default a temporary one")
    parser.add_argument("--jsonl", type=Path, help="write the cold run's rows here")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)

    select = [c.strip().upper() for c in args.select.split(",")] if args.select else None
    options = AuditOptions(select=select)
    root = args.cache or Path(tempfile.mkdtemp(prefix="pgolf-triage-"))
    if root.exists():
        shutil.rmtree(root)
    try:
        start = time.perf_counter()
        cold = triage(args.repo, prs=args.prs, options=options, jobs=args.jobs, cache_root=root, timeout=args.timeout)
        cold_wall = time.perf_counter() - start
        start = time.perf_counter()
        warm = triage(args.repo, prs=args.prs, options=options, jobs=args.jobs, cache_root=root, timeout=args.timeout)
        warm_wall = time.perf_counter() - start
    finally:
        if args.cache is None:
            shutil.rmtree(root, ignore_errors=True)

    rows = cold.rows
    folders = sum(len(r.get("folders", [])) for r in rows)
    print(f"{len(rows)} pull requests, {folders} records folders, {args.jobs} jobs, checks: {args.select or 'all'}")
    print(_line("cold", cold, cold_wall))
    print(_line("warm", warm, warm_wall))
    verdicts = Counter(r["verdict"] for r in rows)
    print("rows by verdict: " + ", ".join(f"{v} {n}" for v, n in verdicts.most_common()))
    same = [a["verdict"] for a in cold.rows] == [b["verdict"] for b in warm.rows]
    print(f"warm rows identical to cold rows: {'yes' if same else 'NO'}")
    failed = [r for r in rows if r["verdict"] == "error" or "problem" in r and r.get("folders")]
    if failed:
        print("folders whose audit failed:")
        for r in failed:
            print(f"  #{r['pr']}: {r.get('problem')}")
    if args.jsonl:
        write_jsonl(rows, args.jsonl)
    return 0


if __name__ == "__main__":
    sys.exit(main())

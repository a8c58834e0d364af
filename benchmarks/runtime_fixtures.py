"""The runtime harness on the hand-written fixtures (fixtures/runtime/*): one line per fixture.

Usage::

    python benchmarks/runtime_fixtures.py [--jobs 2] [--names slot,legal_ttt]

Prints the verdict, the probe that failed (with its evidence: cut and largest |dNLL|, or the
substitution sum) or the reason for an inconclusive result, and the time of each run.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from auditor.discover import discover
from auditor.engine import AuditOptions
from auditor.evidence import Evidence
from auditor.runtime.sandbox import Limits

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "runtime"


def run(name: str, settings: dict, limits: Limits) -> tuple[str, object, float]:
    """One fixture as ``check --runtime`` runs it (in the scored configuration of its seed logs)."""
    started = time.monotonic()
    options = AuditOptions(runtime=True, runtime_settings=settings, runtime_limits=limits)
    result = Evidence(discover([FIXTURES / name])[0], options.context()).runtime
    return name, result, time.monotonic() - started


def describe(result) -> str:
    if result.status == "fail":
        parts = []
        for row in result.failures:
            ev = row.evidence
            if row.probe == "substitution":
                parts.append(f"{row.probe}: sum {ev.get('sum', 0):.3g} at target {ev.get('position')}")
            elif row.probe == "bytes":
                parts.append(f"{row.probe}: bpb implies {ev.get('implied_bytes', 0):.0f} bytes, the scored targets "
                             f"hold {ev.get('canonical_bytes')}")
            elif row.probe == "determinism":
                parts.append(f"{row.probe}: |dNLL| {ev.get('max_abs_delta', 0):.3g}")
            else:
                parts.append(f"{row.probe}: cut {ev.get('cut')}, |dNLL| {ev.get('max_abs_delta', 0):.3g} "
                             f"at target {ev.get('at_position')}")
        return "; ".join(dict.fromkeys(parts))
    if result.status == "pass":
        return "every probe passed"
    return result.reasons[0] if result.reasons else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--names", help="only these fixtures, comma-separated")
    parser.add_argument("--budget", type=float, default=60.0)
    args = parser.parse_args(argv)
    names = sorted(p.name for p in FIXTURES.iterdir() if (p / "train_gpt.py").is_file())
    if args.names:
        names = [n for n in names if n in args.names.split(",")]
    settings = {"budget_s": args.budget}
    limits = Limits(wall_s=args.budget + 40.0)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda n: run(n, settings, limits), names))
    print("| fixture | verdict | evidence | time |\n|---|---|---|---|")
    for name, result, seconds in results:
        print(f"| {name} | {result.status} | {describe(result)[:160]} | {seconds:.0f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

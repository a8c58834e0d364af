"""Time the static analyzer on real scripts: parse, then every static rule, in one process.

Usage::

    python benchmarks/static_speed.py --repo PATH/TO/parameter-golf [--prs 825,1376,1855] [--repeat 7]

Each script is the main ``train_gpt.py`` of a pull request at its head commit (the decoded
payload when the file is a self-extracting wrapper), read from a clone that has the
``refs/pull/N/head`` refs. For every repetition a fresh source object is built, so nothing
is cached between repetitions: the time is that of a first audit (after one untimed warm-up
audit that pays for imports). Printed per script:
lines, the libcst parse, the static rules (the shared index, dataflow, reachability and
positions included), their sum in wall-clock seconds and in CPU seconds of the process (the
figure that does not grow when other processes share the machine), and the findings; the
medians over repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from auditor import registry
from auditor.evidence import Evidence
from auditor.source import PythonSource
from auditor.unpack import unpack

DEFAULT_LABELS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "dev.jsonl"
DEFAULT_PRS = "825,779,1376,1488,1735,1855"


def script_text(repo: str, sha: str, path: str) -> str:
    text = subprocess.run(["git", "-C", repo, "show", f"{sha}:{path}"], capture_output=True, text=True, check=True).stdout
    payloads = unpack(text, path).payloads
    return max(payloads, key=lambda p: len(p.text)).text if payloads else text


def time_one(path: str, text: str, rules: list) -> tuple[float, float, int, float]:
    """(parse, rules) wall seconds, the number of findings, and the CPU seconds of both."""
    source = PythonSource(path=path, text=text)
    cpu = time.process_time()
    start = time.perf_counter()
    assert source.module is not None, source.parse_error
    parsed = time.perf_counter()
    findings = 0
    evidence = Evidence.for_source(source)
    for rule in rules:
        findings += len(list(rule.check(evidence, source)))
    done = time.perf_counter()
    return parsed - start, done - parsed, findings, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help="labeled PRs (JSONL), for head commits and script paths")
    parser.add_argument("--prs", default=DEFAULT_PRS, help="PR numbers, comma-separated")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per script (the median is printed)")
    args = parser.parse_args(argv)

    rows = {json.loads(line)["pr"]: json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()}
    rules = [cls() for cls in registry.by_kind("static")]
    print(f"{len(rules)} static rules; median of {args.repeat} runs per script, one process, nothing cached between runs")
    print()
    print(f"{'PR':>6}{'lines':>7}{'parse s':>9}{'rules s':>9}{'total s':>9}{'cpu s':>8}{'findings':>10}")
    totals, cpus = [], []
    prs = [int(p) for p in args.prs.split(",")]
    first = rows[prs[0]]
    time_one(first["script"], script_text(args.repo, first["head_sha"], first["script"]), rules)  # warm-up: imports, caches of libcst
    for pr in prs:
        row = rows[pr]
        text = script_text(args.repo, row["head_sha"], row["script"])
        runs = [time_one(row["script"], text, rules) for _ in range(args.repeat)]
        parse = statistics.median(r[0] for r in runs)
        check = statistics.median(r[1] for r in runs)
        total = statistics.median(r[0] + r[1] for r in runs)
        cpu = statistics.median(r[3] for r in runs)
        totals.append(total)
        cpus.append(cpu)
        print(f"{pr:>6}{len(text.splitlines()):>7}{parse:>9.3f}{check:>9.3f}{total:>9.3f}{cpu:>8.3f}{runs[0][2]:>10}")
    print()
    print(
        f"median static audit (parse + rules) over these scripts: {statistics.median(totals):.3f} s wall, "
        f"{statistics.median(cpus):.3f} s CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

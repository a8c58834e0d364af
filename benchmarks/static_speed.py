"""Time the static analyzer on real scripts: parse, then every static rule, in one process.

Usage::

    python benchmarks/static_speed.py --repo PATH/TO/parameter-golf [--prs 825,1376,1855] [--repeat 7]

Each script is the main ``train_gpt.py`` of a records folder a pull request adds, at its
head commit (the decoded payload when the file is a self-extracting wrapper), found in a clone
that has the ``refs/pull/N/head`` refs the way ``pgolf-audit pr`` finds it: nothing else is
needed. For every repetition a fresh source object is built and the parse trees that sources
with the same text share are dropped, so nothing is cached between repetitions: the time is
that of a first audit, libcst parse included (after one untimed warm-up audit that pays for
imports). Printed per script:
lines, the libcst parse, the static rules (the shared index, dataflow, reachability and
positions included), their sum in wall-clock seconds and in CPU seconds of the process (the
figure that does not grow when other processes share the machine), and the findings; the
medians over repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from auditor import registry
from auditor import source as source_module
from auditor.commands.pr import pull_bundles
from auditor.evidence import Evidence
from auditor.gitrepo import GitRepo
from auditor.pulls import PullIndex, main_ref, pull_heads
from auditor.source import PythonSource

DEFAULT_PRS = "825,779,1376,1488,1735,1855"


def pr_scripts(repo_path: str, numbers: list[int]) -> dict[int, tuple[str, str]]:
    """PR number -> (path, text) of the main script its first records folder adds."""
    out = {}
    with GitRepo(repo_path) as repo:
        heads = pull_heads(repo)
        index = PullIndex(repo, main_ref(repo, None))
        for number in numbers:
            if number not in heads:
                raise SystemExit(f"PR #{number}: no refs/pull/{number}/head in {repo_path}")
            bundles = pull_bundles(repo, index.folders_of(number, heads[number]))
            source = next((b.main_source for b in bundles if b.main_source is not None), None)
            if source is None:
                raise SystemExit(f"PR #{number}: no main script in the records folders it adds")
            out[number] = (source.path, source.text)
    return out


def time_one(path: str, text: str, rules: list) -> tuple[float, float, int, float]:
    """(parse, rules) wall seconds, the number of findings, and the CPU seconds of both."""
    # sources with the same text share their parse trees (auditor.source); drop them so that
    # every repetition parses, as a first audit does
    source_module._RECENT_TREES.clear()
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
    parser.add_argument("--prs", default=DEFAULT_PRS, help="PR numbers, comma-separated")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions per script (the median is printed)")
    args = parser.parse_args(argv)

    prs = [int(p) for p in args.prs.split(",")]
    scripts = pr_scripts(args.repo, prs)
    rules = [cls() for cls in registry.by_kind("static")]
    print(f"{len(rules)} static rules; median of {args.repeat} runs per script, one process, nothing cached between runs")
    print()
    print(f"{'PR':>6}{'lines':>7}{'parse s':>9}{'rules s':>9}{'total s':>9}{'cpu s':>8}{'findings':>10}")
    totals, cpus = [], []
    time_one(*scripts[prs[0]], rules)  # warm-up: imports, caches of libcst
    for pr in prs:
        path, text = scripts[pr]
        runs = [time_one(path, text, rules) for _ in range(args.repeat)]
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

"""Count static findings whose status contradicts the pull request's own logs.

Usage::

    python benchmarks/scored_config.py --repo PATH/TO/parameter-golf --labels corpus/dev.jsonl
                                       [--prs 825,1412] [--jobs 2] [--verbose]

Each labeled PR's records folders are audited at their head commit (static rules, read straight
from git). For every static finding, the statement it points at is looked up and compared with
what the folder's seed logs say (:mod:`auditor.scored`), independently of how the status was
decided:

- an **inactive** finding contradicts the logs when a log line of a scored run was printed by a
  statement of the finding's own function that runs under (at least) the finding's guards: the
  path ran;
- an **active** finding contradicts the logs when one of its guards is false under the values
  the scored runs printed (or their world size), or when its branch prints a line, through a
  call that writes to these logs, that no complete scored run has.

Also printed: how many findings the logs decide at all (proof, settings or absence), how many
seed logs were matched to code, and the findings shown as "not on the scored path".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from auditor.discover import build_bundle
from auditor.engine import AuditOptions, audit_evidence
from auditor.evidence import Evidence
from auditor.findings import Status
from auditor.gitrepo import GitRepo, GitTreeStore
from auditor.static.index import index_of


def _stmt_at(evidence: Evidence, path: str, line: int | None, decoded: bool):
    """The statement a finding points at (its first line), and its program."""
    for source in evidence.bundle.sources:
        if source.path != path or (source.origin is not None) != decoded or source.parse_error is not None:
            continue
        index = index_of(source)
        for scope in index.scopes:
            for stmt in scope.stmts:
                if index.stmt_position(stmt)[0] == line:
                    return stmt, index.program
    return None, None


def _contradiction(stmt, program, status: Status) -> str | None:
    scored = program.scored
    if scored is None or not scored.runs:
        return None
    guards = range(len(stmt.guards))
    if status is Status.INACTIVE:
        held = all(scored.guard_held(stmt, i) is not None for i in guards) if stmt.guards else False
        own = scored.proven_scope(id(stmt.scope)) if not stmt.scope.is_module else None
        if stmt.guards and held:
            return "its guards held: " + scored.guard_held(stmt, len(stmt.guards) - 1).where()
        if not stmt.guards and own is not None:
            return f"its function printed {own.where()}"
        return None
    for i in guards:
        if scored.guard_held(stmt, i) is not None:
            continue
        guard = stmt.guards[i]
        config = program.scored_configs.get(id(program.index_of_scope[id(stmt.scope)]))
        if config is not None:
            truth = config.truth(guard.test, stmt.scope, guard.kind)
            from_runs = [e for e in truth.env if e.origin not in ("default", "script")]
            if truth.known and from_runs and truth.value is not guard.polarity:
                return f"guard {i} is false with {from_runs[0].describe()}"
        absent = scored.guard_failed(stmt, i)
        if absent is not None:
            return f"guard {i}: its branch prints `{absent.template[:60]}` ({absent.where()}), in no scored log"
    return None


def audit_one(args: tuple[str, dict]) -> dict:
    repo_path, row = args
    out: dict = {"pr": row["pr"], "verdict": row["verdict"], "contradictions": [], "decided": 0, "findings": 0,
                 "off_path": [], "logs_matched": 0, "logs": 0}
    start = time.perf_counter()
    try:
        with GitRepo(repo_path) as repo:
            for folder in row["record_dirs"]:
                bundle = build_bundle(GitTreeStore(repo, row["head_sha"], folder))
                options = AuditOptions(select=["PG1"])
                evidence = Evidence(bundle, options.context())
                report = audit_evidence(evidence, options)
                runs = evidence.scored.runs
                out["logs"] += len(runs)
                out["logs_matched"] += sum(1 for r in runs if r.matches.first)
                for finding in report.findings:
                    if not finding.code.startswith("PG1") or finding.status is Status.SUPPRESSED:
                        continue
                    out["findings"] += 1
                    loc = finding.location
                    stmt, program = _stmt_at(evidence, loc.path, loc.line, loc.decoded_from is not None)
                    if stmt is None or program is None:
                        continue
                    ev = finding.evidence
                    if "ran_in_scored_run" in ev or "scored run" in finding.status_reason or "not_on_scored_path" in ev:
                        out["decided"] += 1
                    if "not_on_scored_path" in ev:
                        out["off_path"].append(f"{finding.code} {loc}")
                    why = _contradiction(stmt, program, finding.status)
                    if why is not None:
                        out["contradictions"].append(f"{finding.code} {loc} {finding.status.value}: {why}")
    except Exception as exc:  # a benchmark reports failures instead of stopping
        out["failure"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = round(time.perf_counter() - start, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--labels", type=Path, required=True, help="labeled PRs (JSONL)")
    parser.add_argument("--prs", help="only these PR numbers, comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="parallel worker processes")
    parser.add_argument("--verbose", action="store_true", help="list the findings the logs decide off the path")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    if args.prs:
        wanted = {int(p) for p in args.prs.split(",")}
        rows = [r for r in rows if r["pr"] in wanted]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(audit_one, [(args.repo, r) for r in rows]))
    contradictions = [(r["pr"], c) for r in results for c in r["contradictions"]]
    print(f"{len(results)} labeled PRs; wall time {time.perf_counter() - start:.1f} s with {args.jobs} jobs")
    print(f"static findings: {sum(r['findings'] for r in results)}; decided by the scored runs' logs: "
          f"{sum(r['decided'] for r in results)}; shown off the scored path: {sum(len(r['off_path']) for r in results)}")
    print(f"seed logs matched to code: {sum(r['logs_matched'] for r in results)} of {sum(r['logs'] for r in results)}")
    print(f"findings whose status contradicts the PR's own logs: {len(contradictions)}")
    for pr, text in contradictions:
        print(f"  #{pr} {text}")
    for r in results:
        if r.get("failure"):
            print(f"  #{r['pr']} failed: {r['failure']}")
        if args.verbose:
            for text in r["off_path"]:
                print(f"  #{r['pr']} off the scored path: {text}")
    return 1 if contradictions else 0


if __name__ == "__main__":
    sys.exit(main())

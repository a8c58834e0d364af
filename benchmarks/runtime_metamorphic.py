"""Does the runtime harness reach the same verdict on a rewritten copy of a submission?

Usage::

    python benchmarks/runtime_metamorphic.py --repo PATH/TO/parameter-golf --labels PATH/TO/dev.jsonl
        [--prs 798,1060] [--rewrites env,rename,wrap,settings] [--baseline runtime.json]
        [--jobs 1] [--json out.json]

Each labeled PR's first records folder is read at its head commit, rewritten without changing
what it computes (the rewrites of :mod:`benchmarks.metamorphic`: env variables renamed in the
code, README, scripts and logs alike; locals and parameters renamed; wrapped or unwrapped;
configuration attributes renamed; ``move``: every top-level function of the main script named
like an evaluation moved into a sibling module of its own that the script imports) and run
through the sandboxed harness as an audit runs it.
Its verdict is compared with the original's, taken from ``--baseline`` (the ``--json`` output of
``benchmarks/runtime_corpus.py`` or of this script, whose originals were run on the same
commit) or, without one, run here too:

- *kept*: a conclusive original (``fail`` or ``pass``) with the same verdict after the rewrite;
- *fails kept*: of the originals that fail a probe, those that still do;
- *new fails on legal PRs*: a rewrite that makes a legal PR fail (there should be none);
- an original that turns inconclusive is listed with the first reason.

The harness decides what to shrink and which functions to capture from what the code does
and what the scored run printed; a verdict that changes under a rewrite is a place where it
still went by a name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.metamorphic import _check, _texts, chosen_rewrites, labeled_rows, rewrite_texts

REWRITES = ("env", "rename", "wrap", "settings", "move")


def _verdict(folder: str, files: dict[str, bytes], settings: dict[str, Any], timeout: float) -> dict[str, Any]:
    from auditor.discover import build_bundle
    from auditor.evidence import AuditContext, Evidence
    from auditor.files import MemoryStore
    from auditor.runtime.sandbox import Limits

    started = time.monotonic()
    bundle = build_bundle(MemoryStore(files, folder))
    evidence = Evidence(bundle, AuditContext(runtime=True, runtime_settings=settings,
                                             runtime_limits=Limits(wall_s=timeout)))
    result = evidence.runtime
    if result is None:
        return {"status": "inconclusive", "reasons": ["the harness did not run"], "seconds": 0.0}
    return {"status": result.status, "reasons": list(result.reasons),
            "failures": sorted({f"{r.scorer}:{r.probe}" for r in result.failures}),
            "seconds": time.monotonic() - started}


def _moved(texts: dict[str, str], script: str) -> tuple[dict[str, str], str]:
    """Every top-level evaluation of ``script`` moved into a sibling module of its own, so that
    it still runs: the helper holds the function and the script's imports; the script imports
    the function where it was defined and hands the helper the module-level names the function
    uses, once there and again before its ``__main__`` block (names defined later are then
    there too). The static benchmark's move (``from train_gpt import X`` in the helper) is an
    import cycle when the script runs as ``__main__``."""
    import ast

    from auditor.runtime.loader import is_eval_name
    from benchmarks import rewrites

    if script not in texts:
        return texts, f"no {script} to move functions out of"
    folder = script.rsplit("/", 1)[0] + "/" if "/" in script else ""
    helpers: dict[str, str] = {}

    def rewrite(code: str) -> str:
        tree = ast.parse(code)
        imports, defined = rewrites.module_imports_and_names(tree)
        body: list[ast.stmt] = []
        handoffs: list[str] = []
        for st in tree.body:
            if not (isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)) and is_eval_name(st.name)):
                body.append(st)
                continue
            helper = f"aux_eval{len(helpers)}"
            helpers[folder + helper + ".py"] = "\n".join([*(ast.unparse(i) for i in imports), ast.unparse(st)]) + "\n"
            used = sorted({n.id for n in ast.walk(st) if isinstance(n, ast.Name)} & (defined - {st.name}))
            handoff = (f"{helper}.__dict__.update({{_k: _v for _k, _v in globals().items() if _k in {used!r}}})")
            handoffs.append(handoff)
            body.extend(ast.parse(f"import {helper}\n{handoff}\nfrom {helper} import {st.name}\n").body)
        if not handoffs:
            return code
        guard = next((i for i, st in enumerate(body) if isinstance(st, ast.If) and "__main__" in ast.unparse(st.test)),
                     len(body))
        body[guard:guard] = ast.parse("\n".join(handoffs)).body
        tree.body = body
        return ast.unparse(ast.fix_missing_locations(tree)) + "\n"

    try:
        new = rewrites.on_payload(texts[script], rewrite)
    except (SyntaxError, ValueError, RecursionError) as exc:
        return texts, f"move failed: {type(exc).__name__}: {exc}"
    if not helpers:
        return texts, "no top-level evaluation to move"
    return {**texts, script: new, **helpers}, ""


def run_pr(args: tuple[str, dict[str, Any], tuple[str, ...], dict[str, Any] | None, dict[str, Any], float]
           ) -> dict[str, Any]:
    from auditor.gitrepo import GitRepo, GitTreeStore

    repo_path, row, wanted, baseline, settings, timeout = args
    folder = row["record_dirs"][0]
    out: dict[str, Any] = {"pr": row["pr"], "verdict": row["verdict"], "rewrites": {}}
    try:
        with GitRepo(repo_path) as repo:
            store = GitTreeStore(repo, row["head_sha"], folder)
            files = {f.rel: store.read(f.rel) for f in store.list_files()}
        out["original"] = baseline or _verdict(folder, files, settings, timeout)
        texts = _texts(files)
        script = row["script"][len(folder) + 1:] if row.get("script", "").startswith(folder + "/") else "train_gpt.py"
        for name in wanted:
            new, why = _moved(texts, script) if name == "move" else rewrite_texts(name, texts)
            why = why or _check(name, texts, new)
            if why:
                out["rewrites"][name] = {"status": "broken", "reasons": [why]}
                continue
            rewritten = {**files, **{rel: text.encode("utf-8") for rel, text in new.items()}}
            out["rewrites"][name] = _verdict(folder, rewritten, settings, timeout)
    except Exception as exc:  # a benchmark reports failures instead of stopping
        out["failure"] = f"{type(exc).__name__}: {exc}"
    return out


def summarize(results: list[dict[str, Any]], wanted: tuple[str, ...]) -> str:
    lines = [f"{'rewrite':<9}{'kept':>14}{'fails kept':>14}{'new fails (legal)':>19}{'broken':>8}"]
    notes: list[str] = []
    for name in wanted:
        kept = conclusive = fails = fails_kept = new_fails = broken = 0
        for r in results:
            after = r["rewrites"].get(name)
            if r.get("failure") or after is None:
                continue
            if after["status"] == "broken":
                broken += 1
                continue
            before = r["original"]["status"]
            if before in ("fail", "pass"):
                conclusive += 1
                kept += after["status"] == before
            if before == "fail":
                fails += 1
                fails_kept += after["status"] == "fail"
            if r["verdict"] == "legal" and after["status"] == "fail" and before != "fail":
                new_fails += 1
            if after["status"] != before:
                why = f": {after['reasons'][0][:140]}" if after["status"] == "inconclusive" and after["reasons"] else ""
                notes.append(f"  {name}: #{r['pr']} ({r['verdict']}) {before} -> {after['status']}{why}")
        lines.append(f"{name:<9}{kept:>6} of {conclusive:<5}{fails_kept:>7} of {fails:<5}{new_fails:>19}{broken:>8}")
    failed = [f"  #{r['pr']} failed: {r['failure']}" for r in results if r.get("failure")]
    return "\n".join(lines + notes + failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--labels", type=Path, required=True, help="labeled PRs (JSONL)")
    parser.add_argument("--prs", help="only these PR numbers, comma-separated")
    parser.add_argument("--rewrites", default="env", help=f"comma-separated subset of {','.join(REWRITES)}")
    parser.add_argument("--baseline", type=Path,
                        help="results for the originals: runtime_corpus.py --json, or this script's own --json")
    parser.add_argument("--jobs", type=int, default=1, help="sandboxes run at once")
    parser.add_argument("--budget", type=float, default=100.0, help="seconds of probing per run")
    parser.add_argument("--timeout", type=float, default=140.0, help="wall-clock limit per run")
    parser.add_argument("--json", type=Path, help="write per-PR results here (updated after each PR)")
    args = parser.parse_args(argv)

    wanted = chosen_rewrites(parser, args.rewrites, REWRITES)
    rows = [r for r in labeled_rows(args.labels, args.prs) if r.get("record_dirs")]
    baseline: dict[int, dict[str, Any]] = {}
    if args.baseline:
        for r in json.loads(args.baseline.read_text())["results"]:
            if "original" in r:  # this benchmark's own results: the originals it ran
                baseline[r["pr"]] = r["original"]
            elif "status" in r:  # runtime_corpus.py's
                baseline[r["pr"]] = {"status": r["status"], "reasons": r.get("reasons", []),
                                     "failures": [f"{f['scorer']}:{f['probe']}" for f in r.get("failures", [])]}
    settings = {"budget_s": args.budget}
    work = [(args.repo, row, wanted, baseline.get(row["pr"]), settings, args.timeout) for row in rows]
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for result in pool.map(run_pr, work):
            results.append(result)
            shown = {k: v["status"] for k, v in result["rewrites"].items()}
            print(f"#{result['pr']} {result['verdict']}: {result.get('original', {}).get('status')} -> {shown} "
                  f"{result.get('failure', '')}", file=sys.stderr, flush=True)
            if args.json:
                args.json.write_text(json.dumps({"results": results}, indent=1, default=str))
    print(f"{len(results)} PRs from {args.labels.name}; wall time {time.monotonic() - started:.0f} s "
          f"with {args.jobs} job(s)")
    print()
    print(summarize(results, wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main())

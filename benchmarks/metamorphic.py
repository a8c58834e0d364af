"""Do the static rules' detections survive rewrites that keep what the code computes?

Usage::

    python benchmarks/metamorphic.py --repo PATH/TO/parameter-golf --labels corpus/dev.jsonl
                                     [--prs 825,1412] [--rewrites rename,move] [--jobs 2]

Each labeled PR's record folders are read from the clone at the labeled head commit and
audited with the static checks (``PG1``), once as they are and once after each rewrite of
:mod:`benchmarks.rewrites`:

``rename``  every local variable and parameter inside functions renamed to an opaque name;
``wrap``    wrapped in ``exec(lzma.decompress(b85decode(...)))``, or unwrapped when it was;
``move``    every top-level function or class holding a static finding moved into a sibling
            module that the script imports (PRs without one: not applicable);
``minify``  one-space indents, simple statements joined with ``;``, a block of simple statements
            moved onto its header's line (``class H:a=1;b=2``, ``if c:x=1``);
``expand``  one statement per line (a minified or golfed script written out);
``env``     every env variable the code reads renamed in the code, README, scripts and logs;
``settings`` every class-level setting of a configuration class (``Hyperparameters.val_files``)
            renamed where it is defined and wherever it is read, and in the logs' dumps.

A *detection* is an active error of a static rule on a PR labeled illegal (counted per PR
and rule code); it is *kept* when the rewritten PR has an active error of the same code. A
*new false positive* is an active static error on a PR labeled legal that its original did
not have. Every rewritten Python file must parse and compile, and the ``wrap``, ``minify``
and ``expand`` rewrites must leave the code a file runs (payloads spliced in) with the same
AST; a rewrite that breaks either is counted as ``broken`` and its PR is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import rewrites

REWRITES = ("rename", "wrap", "move", "minify", "expand", "env", "settings")
#: Rewrites that must leave the AST each file runs unchanged.
SAME_AST = frozenset({"wrap", "minify", "expand"})


@dataclass
class Outcome:
    """One PR under one rewrite."""

    detected: set[str] = field(default_factory=set)  # codes of active static errors
    broken: str = ""  # why the rewrite could not be checked ("" when it was)
    applicable: bool = True


@dataclass
class PrOutcome:
    pr: int
    verdict: str
    baseline: set[str] = field(default_factory=set)
    rewrites: dict[str, Outcome] = field(default_factory=dict)
    failure: str = ""
    seconds: float = 0.0


def audit_files(folders: dict[str, dict[str, bytes]]) -> tuple[set[str], list]:
    """Active static error codes over the given folders, and every static finding."""
    from auditor.discover import build_bundle
    from auditor.engine import AuditOptions, audit_bundles
    from auditor.files import MemoryStore
    from auditor.findings import Severity, Status

    bundles = [build_bundle(MemoryStore(files, folder)) for folder, files in folders.items()]
    report = audit_bundles(bundles, AuditOptions(select=["PG1"]))
    findings = [f for f in report.findings if f.code.startswith("PG1")]
    codes = {f.code for f in findings if f.status is Status.ACTIVE and f.severity is Severity.ERROR}
    return codes, findings


def _texts(files: dict[str, bytes]) -> dict[str, str]:
    """The text files of a folder (what a rewrite may change); binary files are left alone."""
    out = {}
    for rel, data in files.items():
        if rel.endswith((".py", ".md", ".sh", ".txt", ".log", ".json", ".yaml", ".yml", ".cfg", ".toml")):
            try:
                out[rel] = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
    return out


def _per_file(rewrite: Callable[[str], str]) -> Callable[[dict[str, str]], dict[str, str]]:
    def apply(texts: dict[str, str]) -> dict[str, str]:
        out = dict(texts)
        for rel, text in texts.items():
            if rel.endswith(".py") and _parses(text):  # a file that does not parse is left as it is
                out[rel] = rewrite(text)
        return out

    return apply


def _renamed(texts: dict[str, str]) -> dict[str, str]:
    """Locals renamed file by file; a parameter another file passes by keyword keeps its name
    (``build_hints(target_ids=...)`` in the script, ``def build_hints(target_ids)`` in a helper)."""
    used = {rel: rewrites.keywords_used(text) for rel, text in texts.items() if rel.endswith(".py") and _parses(text)}
    out = dict(texts)
    for rel in used:
        keep = frozenset().union(*(kw for other, kw in used.items() if other != rel))
        out[rel] = rewrites.on_payload(texts[rel], lambda t, keep=keep: rewrites.rename_locals(t, keep))
    return out


def rewrite_texts(name: str, texts: dict[str, str]) -> tuple[dict[str, str], str]:
    """A folder's text files after one rewrite other than ``move``, and why it failed ("" when
    it did not); the rewritten files are checked with :func:`check_rewrite`."""
    rewrite = {
        "rename": _renamed,
        "wrap": _per_file(rewrites.toggle_wrapper),
        "minify": _per_file(lambda t: rewrites.on_payload(t, rewrites.minify)),
        "expand": _per_file(lambda t: rewrites.on_payload(t, rewrites.expand)),
        "env": rewrites.rename_env,
        "settings": rewrites.rename_settings,
    }[name]
    try:
        return rewrite(texts), ""
    except (SyntaxError, ValueError, RecursionError) as exc:
        return texts, f"{name} failed: {type(exc).__name__}: {exc}"


def _check(name: str, before: dict[str, str], after: dict[str, str]) -> str:
    """Why a rewritten folder is not a valid rewrite ("" when it is)."""
    for rel, text in after.items():
        if not rel.endswith(".py"):
            continue
        try:
            compile(text, rel, "exec")
            effective = rewrites.effective_ast(text)
        except (SyntaxError, ValueError) as exc:
            if rel in before and _parses(before[rel]) is False:
                continue
            return f"{rel} does not compile after {name}: {exc}"
        if name in SAME_AST and rel in before and _parses(before[rel]):
            if rewrites.effective_ast(before[rel]) != effective:
                return f"{rel}: {name} changed the AST"
    return ""


def _parses(text: str) -> bool:
    try:
        compile(text, "<check>", "exec")
        return True
    except (SyntaxError, ValueError):
        return False


def _flagged(findings: list, folder: str) -> list[tuple[str, str]]:
    """(file, top-level name) of the definitions that hold a static finding."""
    out = []
    for f in findings:
        where = (f.evidence or {}).get("function", "")
        if not where or where == "<module>" or f.location.decoded_from is None and not f.location.path:
            continue
        path = (f.location.decoded_from.path if f.location.decoded_from is not None else f.location.path)
        rel = path[len(folder) + 1 :] if path.startswith(folder + "/") else path
        item = (rel, where.split(".")[0])
        if item not in out:
            out.append(item)
    return out


def _move(texts: dict[str, str], flagged: list[tuple[str, str]]) -> dict[str, str] | None:
    out = texts
    moved = False
    for i, (rel, name) in enumerate(flagged):
        if rel not in out:
            continue
        new = rewrites.move_function(out, rel, name, helper=f"aux_mod{i}")
        if new is not None:
            out, moved = new, True
    return out if moved else None


def run_pr(args: tuple[str, dict, tuple[str, ...]]) -> PrOutcome:
    from auditor.gitrepo import GitRepo, GitTreeStore

    repo_path, row, wanted = args
    result = PrOutcome(row["pr"], row["verdict"])
    start = time.perf_counter()
    try:
        with GitRepo(repo_path) as repo:
            folders = {}
            for folder in row["record_dirs"]:
                store = GitTreeStore(repo, row["head_sha"], folder)
                folders[folder] = {f.rel: store.read(f.rel) for f in store.list_files()}
        result.baseline, findings = audit_files(folders)
        if result.verdict == "illegal" and not result.baseline:
            wanted = ()  # nothing to keep, and false positives are counted on legal PRs only
        for name in wanted:
            outcome = Outcome()
            rewritten: dict[str, dict[str, bytes]] = {}
            for folder, files in folders.items():
                texts = _texts(files)
                if name == "move":
                    flagged = _flagged([f for f in findings if f.location.path.startswith(folder)], folder)
                    new = _move(texts, flagged) if flagged else None
                    if new is None:
                        new = texts
                    else:
                        outcome.applicable = True
                else:
                    new, why = rewrite_texts(name, texts)
                    if why:
                        outcome.broken = why
                        break
                why = _check(name, texts, new)
                if why:
                    outcome.broken = why
                    break
                rewritten[folder] = {**files, **{rel: text.encode("utf-8") for rel, text in new.items()}}
            if name == "move":
                outcome.applicable = any(
                    set(rewritten.get(folder, {})) != set(files) for folder, files in folders.items()
                )
            if not outcome.broken and outcome.applicable:
                outcome.detected, _ = audit_files(rewritten)
            result.rewrites[name] = outcome
    except Exception as exc:  # a benchmark reports failures instead of stopping
        result.failure = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - start
    return result


def summarize(results: list[PrOutcome], wanted: tuple[str, ...]) -> dict[str, dict]:
    """Per rewrite: detections kept (of those checked), new false positives on legal PRs, broken rewrites."""
    table = {}
    for name in wanted:
        kept = total = new_fp = broken = skipped = 0
        lost: list[str] = []
        fps: list[str] = []
        for r in results:
            if r.failure or name not in r.rewrites:
                continue
            outcome = r.rewrites[name]
            if outcome.broken:
                broken += 1
                continue
            if not outcome.applicable:
                skipped += 1
                continue
            if r.verdict == "illegal":
                for code in sorted(r.baseline):
                    total += 1
                    if code in outcome.detected:
                        kept += 1
                    else:
                        lost.append(f"#{r.pr} {code}")
            if r.verdict == "legal":
                for code in sorted(outcome.detected - r.baseline):
                    new_fp += 1
                    fps.append(f"#{r.pr} {code}")
        table[name] = {"kept": kept, "total": total, "new_fp_legal": new_fp, "broken": broken,
                       "not_applicable": skipped, "lost": lost, "false_positives": fps}
    return table


def chosen_rewrites(parser: argparse.ArgumentParser, text: str, known: tuple[str, ...]) -> tuple[str, ...]:
    """The rewrites a comma-separated ``--rewrites`` names; a usage error for an unknown one."""
    wanted = tuple(w.strip() for w in text.split(",") if w.strip())
    unknown = [w for w in wanted if w not in known]
    if unknown:
        parser.error(f"unknown rewrite(s): {', '.join(unknown)}")
    return wanted


def labeled_rows(labels: Path, prs: str | None) -> list[dict]:
    """The PRs of a labels file labeled legal or illegal, only those ``prs`` names when given."""
    rows = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["verdict"] in ("legal", "illegal")]
    if prs:
        chosen = {int(p) for p in prs.split(",")}
        rows = [r for r in rows if r["pr"] in chosen]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True, help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--labels", type=Path, required=True, help="labeled PRs (JSONL)")
    parser.add_argument("--prs", help="only these PR numbers, comma-separated")
    parser.add_argument("--rewrites", default=",".join(REWRITES), help=f"comma-separated subset of {','.join(REWRITES)}")
    parser.add_argument("--jobs", type=int, default=2, help="parallel worker processes")
    parser.add_argument("--json", type=Path, help="write per-PR outcomes here")
    args = parser.parse_args(argv)

    wanted = chosen_rewrites(parser, args.rewrites, REWRITES)
    rows = labeled_rows(args.labels, args.prs)
    start = time.perf_counter()
    work = [(args.repo, row, wanted) for row in rows]
    results: list[PrOutcome] = []

    def progress(r: PrOutcome) -> None:  # one line per PR on stderr, so that a long run shows where it is
        lost = {name: sorted(r.baseline - o.detected) for name, o in r.rewrites.items() if o.applicable and not o.broken}
        print(f"#{r.pr} {r.verdict} baseline={sorted(r.baseline)} lost={ {k: v for k, v in lost.items() if v} } "
              f"{r.failure} {r.seconds:.1f}s", file=sys.stderr, flush=True)
        results.append(r)

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for r in pool.map(run_pr, work):
                progress(r)
    else:
        for w in work:
            progress(run_pr(w))
    wall = time.perf_counter() - start

    table = summarize(results, wanted)
    illegal = sum(r.verdict == "illegal" for r in results)
    legal = sum(r.verdict == "legal" for r in results)
    detections = sum(len(r.baseline) for r in results if r.verdict == "illegal" and not r.failure)
    print(f"{len(results)} PRs ({illegal} illegal, {legal} legal) from {args.labels.name}; "
          f"{detections} static detections on the illegal ones; wall time {wall:.1f} s with {args.jobs} jobs")
    print()
    print(f"{'rewrite':<9}{'kept':>12}{'share':>8}{'new FP (legal)':>16}{'broken':>8}{'n/a':>6}")
    for name, s in table.items():
        share = f"{s['kept'] / s['total']:.0%}" if s["total"] else "-"
        print(f"{name:<9}{s['kept']:>5} of {s['total']:<4}{share:>8}{s['new_fp_legal']:>16}{s['broken']:>8}{s['not_applicable']:>6}")
    for name, s in table.items():
        if s["lost"]:
            print(f"  {name}: lost {', '.join(s['lost'])}")
        if s["false_positives"]:
            print(f"  {name}: new on legal PRs {', '.join(s['false_positives'])}")
    for r in results:
        for name, outcome in r.rewrites.items():
            if outcome.broken:
                print(f"  {name}: #{r.pr} broken: {outcome.broken[:160]}")
    failures = [r for r in results if r.failure]
    for r in failures:
        print(f"  #{r.pr} failed: {r.failure}")
    if args.json:
        args.json.write_text(json.dumps({"summary": table, "results": [
            {"pr": r.pr, "verdict": r.verdict, "baseline": sorted(r.baseline), "failure": r.failure,
             "rewrites": {k: {"detected": sorted(v.detected), "broken": v.broken, "applicable": v.applicable}
                          for k, v in r.rewrites.items()}} for r in results]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

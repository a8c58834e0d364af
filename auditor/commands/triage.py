"""``pgolf-audit triage --repo DIR [--prs all|LIST|RANGE]``: audit many pull requests at once.

For every selected PR head in the clone: find the records folders it adds (cached per head
and main commit), audit each folder at the head commit (cached by the folder's blob ids, so a
second run only audits what changed), write one JSON line per PR and print a summary table.
Work is spread over processes; a folder whose audit fails or runs past ``--timeout`` gives a
row that says so, never a crash. PRs whose head is missing, that add nothing under
``records/`` or only edit existing folders get a row too.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from auditor import cache as cache_mod
from auditor import registry
from auditor.commands.check import add_audit_arguments, options_from
from auditor.commands.pr import add_repo_arguments, apply_baseline_pr
from auditor.engine import AuditOptions, audit_bundle
from auditor.errors import UsageError
from auditor.findings import Verdict, verdict_of
from auditor.gitrepo import GitRepo, TreeEntry
from auditor.pulls import Folder, PullFolders, PullIndex, main_ref, pull_heads
from auditor.report.text import shorten
from auditor.suppress import Waiver, apply_suppressions

NAME = "triage"
HELP = "audit many pull requests of a clone: JSONL rows, a summary table, a cache by git blob id"

#: Seed figures kept in a triage row.
SEED_FIELDS = (
    "seed", "log", "val_bpb", "val_bpb_stage", "total_bytes_submitted", "total_bytes_logged", "train_s",
    "scored_eval_s", "world_size", "hardware",
)
VERDICT_ORDER = {"violation": 4, "review": 3, "error": 2, "clean": 1, "no-records": 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo_arguments(parser)
    parser.add_argument(
        "--prs", default="all", metavar="all|LIST|RANGE",
        help="which PRs: all heads in the clone, a list (825,1412) or ranges (800-900,1400-)",
    )
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--jsonl", type=Path, default=Path("triage.jsonl"), help="where to write one JSON line per PR")
    parser.add_argument("--cache", type=Path, help=f"cache folder (default {cache_mod.default_dir()})")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds one folder's audit may take")
    parser.add_argument("--top", type=int, default=30, help="PRs listed in the summary table (most severe first)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_audit_arguments(parser)


# -- selection -----------------------------------------------------------------------------------


def parse_prs(text: str, available: list[int]) -> list[int]:
    """``all``, ``825,1412``, ``800-900`` or ``1400-`` → PR numbers, in order."""
    text = text.strip().lower()
    if text in ("", "all"):
        return sorted(available)
    wanted: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                lo_text, hi_text = part.split("-", 1)
                lo = int(lo_text) if lo_text else 0
                hi = int(hi_text) if hi_text else max(available, default=0)
                wanted.update(n for n in available if lo <= n <= hi)
                if not hi_text and not lo_text:
                    raise ValueError
            else:
                wanted.add(int(part))
        except ValueError as exc:
            raise UsageError(f"--prs: cannot read {part!r} (use all, 825,1412 or 800-900)") from exc
    return sorted(wanted)


# -- workers (module level: they run in other processes) ----------------------------------------

_REPO: GitRepo | None = None
_INDEX: PullIndex | None = None


def _init_worker(repo_path: str, main: str) -> None:
    global _REPO, _INDEX
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C
    _REPO = GitRepo(repo_path)
    _INDEX = PullIndex(_REPO, main)
    # What the worker holds for its whole life (modules, the rule catalogue) is moved out of
    # the cycle collector's sight: each full collection during the audits would walk it again.
    try:
        registry.all_rules()
    except registry.RegistryError:
        pass  # each audit reports it
    gc.freeze()


def _discover(job: tuple[int, str | None]) -> dict[str, Any]:
    number, head = job
    assert _INDEX is not None
    try:
        found = _INDEX.folders_of(number, head)
    except Exception as exc:  # one PR must not stop the others
        found = PullFolders(number, head, problem=f"cannot read the PR: {type(exc).__name__}: {exc}")
    return pull_entry(found)


def pull_entry(found: PullFolders) -> dict[str, Any]:
    return {
        "pr": found.number,
        "head": found.head,
        "base": found.base,
        "problem": found.problem,
        "other_added": found.other_added,
        "folders": [{"path": f.path, "entries": [[e.path, e.blob, e.size, e.link] for e in f.entries]}
                    for f in found.folders],
    }


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout()


@dataclass
class Unit:
    """One folder to audit."""

    key: str
    pr: int
    head: str
    folder: str
    entries: list[list[Any]]


def script_blob(unit: Unit) -> str:
    """The blob id of a folder's train_gpt.py (else of its largest Python file): folders that
    ship the same script are audited one after another by one worker, which parses it once."""
    scripts = [(e[0] == f"{unit.folder}/train_gpt.py", e[2], e[1]) for e in unit.entries if e[0].endswith(".py")]
    return max(scripts)[2] if scripts else unit.key


def _audit_group(job: tuple[list[Unit], AuditOptions, float]) -> list[tuple[str, dict[str, Any]]]:
    units, options, timeout = job
    return [_audit((unit, options, timeout)) for unit in units]


def _audit(job: tuple[Unit, AuditOptions, float]) -> tuple[str, dict[str, Any]]:
    unit, options, timeout = job
    from auditor.commands.pr import pull_bundles

    assert _REPO is not None
    start = time.perf_counter()
    use_alarm = hasattr(signal, "SIGALRM") and timeout > 0
    if use_alarm:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        folder = Folder(unit.folder, [TreeEntry(*e) for e in unit.entries])
        found = PullFolders(unit.pr, unit.head, folders=[folder])
        (bundle,) = pull_bundles(_REPO, found)
        report = audit_bundle(bundle, options)
        result = report.to_dict() | {"verdict": report.verdict.value}
    except _Timeout:
        result = {"path": unit.folder, "verdict": "error", "error": f"the audit ran past {timeout:.0f} s"}
    except Exception as exc:  # a bug or bad input must not stop the triage
        result = {"path": unit.folder, "verdict": "error", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return unit.key, result


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    rows: list[dict[str, Any]] = field(default_factory=list)
    audited: int = 0
    cached: int = 0
    failed: int = 0
    discovery_s: float = 0.0
    audit_s: float = 0.0
    total_s: float = 0.0


def _pool_round(indices: list[int], jobs: list[Any], fn: Any, workers: int, init_args: tuple[Any, ...],
                on_done: Any) -> tuple[list[int], list[int]]:
    """Run ``fn`` over ``jobs[i]`` for ``i`` in ``indices`` until done or until a worker dies.

    Returns the jobs that were in flight when the pool broke (one of them killed it) and the
    jobs not started yet; both are empty when every job finished.
    """
    executor = ProcessPoolExecutor(max_workers=max(1, workers), initializer=_init_worker, initargs=init_args)
    futures: dict[Future[Any], int] = {}
    queue = list(indices)
    broken = False
    try:
        while queue or futures:
            # keep a bounded number of jobs in flight so that a broken pool loses few
            while queue and len(futures) < workers * 4:
                i = queue.pop(0)
                futures[executor.submit(fn, jobs[i])] = i
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            lost = []
            for future in done:
                i = futures.pop(future)
                try:
                    value = future.result()
                except BrokenProcessPool:
                    broken = True
                    lost.append(i)
                    continue
                except Exception:  # e.g. a result that cannot be pickled back
                    on_done(i, None)
                    continue
                on_done(i, value)
            if broken:
                return lost + list(futures.values()), queue
        return [], []
    finally:
        executor.shutdown(wait=not broken, cancel_futures=True)


def _run_pool(jobs: list[Any], fn: Any, workers: int, init_args: tuple[Any, ...], on_done: Any) -> None:
    """Run ``fn`` over ``jobs`` in processes; only a job that kills its worker twice fails.

    When a worker dies every job in flight is a suspect, since the pool cannot say which one
    killed it. The suspects rerun one at a time in a fresh single-worker pool, where a death is
    the job's own; the others carry on in the shared pool.
    """
    queue = list(range(len(jobs)))
    while queue:
        suspects, queue = _pool_round(queue, jobs, fn, workers, init_args, on_done)
        for i in suspects:
            for _attempt in range(2):
                lost, _ = _pool_round([i], jobs, fn, 1, init_args, on_done)
                if not lost:
                    break
            else:
                on_done(i, None)


def triage(
    repo_path: str,
    *,
    numbers: list[int] | None = None,
    prs: str = "all",
    base: str | None = None,
    options: AuditOptions | None = None,
    jobs: int = 1,
    cache_root: Path | None = None,
    timeout: float = 180.0,
    progress: Progress | None = None,
) -> Outcome:
    """Audit the selected PRs of a clone; returns one row per PR (see ``row_for``)."""
    options = options or AuditOptions()
    start = time.perf_counter()
    outcome = Outcome()
    with GitRepo(repo_path) as repo:
        main = main_ref(repo, base)
        heads = pull_heads(repo)
    chosen = numbers if numbers is not None else parse_prs(prs, list(heads))
    pulls = cache_mod.PullCache(cache_root, main)
    results = cache_mod.ResultCache(cache_root)
    init = (repo_path, main)

    # 1. what each PR adds
    entries: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, str | None]] = []
    for n in chosen:
        head = heads.get(n)
        hit = pulls.get(n, head) if head else None
        if head is None:
            entries[n] = {"pr": n, "head": None, "problem": "no head ref for this PR in the clone", "folders": []}
        elif hit is not None:
            entries[n] = hit
        else:
            todo.append((n, head))
    task = progress.add_task("finding records folders", total=len(todo)) if progress and todo else None

    def discovered(i: int, entry: dict[str, Any] | None) -> None:
        n, head = todo[i]
        if entry is None:
            entry = {"pr": n, "head": head, "problem": "discovery failed (worker died)", "folders": []}
        else:
            pulls.put(n, entry)
        entries[n] = entry
        if progress is not None and task is not None:
            progress.advance(task)

    if todo:
        _run_pool(todo, _discover, min(jobs, len(todo)), init, discovered)
        pulls.save()
    outcome.discovery_s = time.perf_counter() - start

    # 2. audits, by folder key: a folder's audit does not depend on the PR it came in, so identical
    # folders in several PRs are audited once (the PR-level check is applied to the rows, step 3)
    opts_fp = {"select": options.select, "ignore": options.ignore, "runtime": options.runtime,
               "significance": options.significance, "inline_suppressions": options.inline_suppressions,
               "waivers": sorted(f"{w.code}:{w.fingerprint}" for w in options.waivers)}
    units: dict[str, Unit] = {}
    folder_keys: dict[int, list[str]] = {}
    found_results: dict[str, dict[str, Any]] = {}
    for n in chosen:
        entry = entries[n]
        keys = []
        for f in entry.get("folders", []):
            blobs = [(p[len(f["path"]) + 1:], b) for p, b, *_ in f["entries"]]
            key = cache_mod.result_key(f["path"], blobs, opts_fp)
            keys.append(key)
            if key in found_results or key in units:
                continue
            cached = results.get(key)
            if cached is not None:
                found_results[key] = cached
            else:
                units[key] = Unit(key, n, entry["head"], f["path"], f["entries"])
        folder_keys[n] = keys
    outcome.cached = len(found_results)
    groups: dict[str, list[Unit]] = {}
    for unit in units.values():
        groups.setdefault(script_blob(unit), []).append(unit)
    work = list(groups.values())
    audit_start = time.perf_counter()
    task = progress.add_task("auditing folders", total=len(units)) if progress and units else None

    def audited(i: int, done: list[tuple[str, dict[str, Any]]] | None) -> None:
        for j, unit in enumerate(work[i]):
            if done is None:
                result = {"path": unit.folder, "verdict": "error", "error": "the worker process died"}
                outcome.failed += 1
            else:
                result = done[j][1]
                if result.get("verdict") != "error":
                    results.put(unit.key, result)
                else:
                    outcome.failed += 1
            found_results[unit.key] = result
            outcome.audited += 1
            if progress is not None and task is not None:
                progress.advance(task)

    if work:
        _run_pool([(group, options, timeout) for group in work], _audit_group, min(jobs, len(work)), init, audited)
    outcome.audit_s = time.perf_counter() - audit_start

    # 3. one row per PR
    selected = registry.select(options.select, options.ignore)
    for n in chosen:
        entry = entries[n]
        reports = [found_results[k] for k in folder_keys.get(n, []) if k in found_results]
        outcome.rows.append(row_for(n, entry, with_pull_request_checks(reports, entry, selected, options.waivers)))
    outcome.total_s = time.perf_counter() - start
    return outcome


def with_pull_request_checks(reports: list[dict[str, Any]], entry: dict[str, Any], selected: set[str],
                             waivers: Sequence[Waiver] = ()) -> list[dict[str, Any]]:
    """The folder reports of one PR with the checks that depend on the PR added (PG308: a PR
    adds one folder, waivers applied), as ``pgolf-audit pr`` reports them. Returns new dicts;
    the cached ones stay as they are."""
    if "PG308" not in selected:
        return reports
    pr_folders = [f["path"] for f in entry.get("folders", [])]
    # the catalogue is loaded by path, so its PG308 class (and the check it shares) has no static type
    rule: Any = registry.get("PG308")
    out = []
    for report in reports:
        finding = rule.one_folder_per_pull_request(report.get("path", ""), pr_folders)
        if finding is None or report.get("verdict") == "error":
            out.append(report)
            continue
        (finding,) = apply_suppressions([finding], None, waivers, inline=False)
        verdict = max(report.get("verdict", "clean"), verdict_of([finding]).value, key=lambda v: VERDICT_ORDER.get(v, 0))
        out.append(report | {"findings": [*report.get("findings", []), finding.to_dict()], "verdict": verdict})
    return out


def row_for(number: int, entry: dict[str, Any], reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The triage row of one PR: verdict, finding codes and tags, per-seed figures."""
    row: dict[str, Any] = {"pr": number, "head_sha": entry.get("head")}
    if not reports:
        row["verdict"] = "no-records"
        row["problem"] = entry.get("problem") or "no records folder"
        return row
    verdicts = [r.get("verdict", "error") for r in reports]
    row["verdict"] = max(verdicts, key=lambda v: VERDICT_ORDER.get(v, 0))
    row["folders"] = [r.get("path") for r in reports]
    active = [f for r in reports for f in r.get("findings", []) if f.get("status") == "active"]
    row["codes"] = sorted({f["code"] for f in active})
    row["tags"] = sorted({t for f in active for t in f.get("tags", [])})
    row["error_tags"] = sorted({t for f in active if f.get("severity") == "error" for t in f.get("tags", [])})
    row["counts"] = dict(Counter(f["severity"] for f in active))
    row["findings"] = [
        {
            "code": f["code"],
            "severity": f["severity"],
            "confidence": f.get("confidence"),
            "where": _where(f.get("location") or {}),
            "message": shorten(f.get("message", ""), 500),
        }
        for f in active
    ]
    row["seeds"] = [
        {"folder": r.get("path")} | {k: s[k] for k in SEED_FIELDS if k in s} for r in reports for s in r.get("seeds", [])
    ]
    errors = [r["error"] for r in reports if r.get("error")]
    if errors:
        row["problem"] = "; ".join(errors)
    row["seconds"] = round(sum(r.get("seconds", 0.0) for r in reports), 3)
    return row


def _where(location: dict[str, Any]) -> str:
    path = location.get("path") or ""
    line = location.get("line")
    return f"{path}:{line}" if line else path


# -- output --------------------------------------------------------------------------------------


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, default=str, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def summary(outcome: Outcome, console: Console, top: int) -> None:
    rows = outcome.rows
    counts = Counter(r["verdict"] for r in rows)
    console.print(f"pgolf-audit triage: {len(rows)} pull requests")
    table = Table()
    for col in ("verdict", "PRs"):
        table.add_column(col, justify="right" if col == "PRs" else "left")
    for verdict in ("violation", "review", "clean", "no-records", "error"):
        if counts.get(verdict):
            table.add_row(verdict, str(counts[verdict]))
    console.print(table)

    codes = Counter(c for r in rows for c in r.get("codes", []))
    if codes:
        console.print("findings by code (PRs with an active finding of that code)")
        by_code = Table()
        by_code.add_column("code")
        by_code.add_column("PRs", justify="right")
        for code, n in sorted(codes.items()):
            by_code.add_row(code, str(n))
        console.print(by_code)

    worst = sorted(
        (r for r in rows if r["verdict"] in ("violation", "error")),
        key=lambda r: (-VERDICT_ORDER.get(r["verdict"], 0), -r.get("counts", {}).get("error", 0), r["pr"]),
    )
    if worst:
        console.print(f"most severe ({min(top, len(worst))} of {len(worst)})")
        listing = Table()
        for col in ("PR", "head", "verdict", "codes", "first error"):
            listing.add_column(col, overflow="fold")
        for r in worst[:top]:
            first = next((f for f in r.get("findings", []) if f["severity"] == "error"), None)
            text = f"{first['code']} {shorten(first['message'], 90)}" if first else shorten(r.get("problem", ""), 100)
            listing.add_row(f"#{r['pr']}", (r.get("head_sha") or "")[:12], r["verdict"], ",".join(r.get("codes", [])), text)
        console.print(listing)
    console.print(
        f"audited {outcome.audited} folders, {outcome.cached} from the cache, {outcome.failed} failed; "
        f"discovery {outcome.discovery_s:.1f} s, audits {outcome.audit_s:.1f} s, total {outcome.total_s:.1f} s"
    )


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    if args.baseline_pr is not None:
        with GitRepo(args.repo) as repo:
            apply_baseline_pr(args, options, repo, PullIndex(repo, main_ref(repo, args.base)), pull_heads(repo))
    cache_root = None if args.no_cache else (args.cache or cache_mod.default_dir())
    err = Console(stderr=True)
    show = not args.no_progress and err.is_terminal
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, transient=False, disable=not show,
    )
    with progress:
        outcome = triage(
            args.repo, prs=args.prs, base=args.base, options=options, jobs=max(1, args.jobs),
            cache_root=cache_root, timeout=args.timeout, progress=progress,
        )
    write_jsonl(outcome.rows, args.jsonl)
    summary(outcome, Console(), args.top)  # rich's width: the terminal's, or COLUMNS in a pipe
    print(f"pgolf-audit: wrote {len(outcome.rows)} rows to {args.jsonl}", file=sys.stderr)
    return 0


__all__ = ["Verdict", "parse_prs", "triage", "row_for"]

"""``pgolf-audit causality PATH...``: run the submission's own evaluation and probe it.

Runs the runtime causality harness (``auditor.runtime``) on each submission: the script runs
on the CPU in a sandbox at a tiny scale, every evaluation it makes is captured per position
and probed (determinism, future perturbation, target substitution, score before update).
The console output is the probe table and the verdict with its reasons; the other formats
carry the PG2xx findings and PG908, like ``check --runtime --select PG2``.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from auditor.commands.check import add_output_arguments, emit, require_runtime_extra, split_present
from auditor.commands.progress import run_with_progress
from auditor.discover import discover
from auditor.engine import AuditOptions
from auditor.report import Format
from auditor.runtime.harness import PROBE_LABELS, Causality
from auditor.runtime.sandbox import Limits

NAME = "causality"
HELP = "run a submission's evaluation in a sandbox and probe causality and normalization (C1-C4)"

STATUS_STYLE = {"pass": "green", "fail": "bold red", "inconclusive": "yellow", "skipped": "dim"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="records folder(s) or train_gpt.py script(s)")
    parser.add_argument("--budget", type=float, default=100.0, help="seconds of probing per submission")
    parser.add_argument("--timeout", type=float, default=140.0, help="wall-clock limit of the sandbox, seconds")
    parser.add_argument("--memory-gb", type=float, default=8.0, help="address-space limit of the sandbox")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the sandboxed run (tiny ops: one is fastest)")
    parser.add_argument("--vocab", type=int, default=64, help="vocabulary size of the shrunk run (64-256)")
    parser.add_argument("--val-tokens", type=int, default=2048, help="validation tokens of the shrunk run")
    parser.add_argument("--debug", action="store_true", help="let internal errors raise with a traceback")
    add_output_arguments(parser)


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    return {"budget_s": args.budget, "vocab": args.vocab, "val_tokens": args.val_tokens,
            "chunk": max(64, args.val_tokens // 4)}


def limits_from(args: argparse.Namespace) -> Limits:
    return Limits(wall_s=args.timeout, memory_bytes=int(args.memory_gb * 2**30), threads=args.threads)


def probe_table(result: Causality, title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("evaluation", overflow="fold")
    table.add_column("probe")
    table.add_column("result")
    table.add_column("evidence", overflow="fold")
    for row in result.rows:
        table.add_row(
            f"{row.scorer}()", PROBE_LABELS.get(row.probe, row.probe),
            Text(row.status, style=STATUS_STYLE.get(row.status, "")), row.detail,
        )
    return table


def print_result(console: Console, path: str, result: Causality) -> None:
    if result.rows:
        console.print(probe_table(result, f"runtime probes: {path}"))
    verdict = Text(f"{path}: ", style="bold")
    verdict.append(result.status.upper(), style=STATUS_STYLE.get(result.status, ""))
    verdict.append(f"  ({result.seconds:.0f} s)", style="dim")
    console.print(verdict)
    for reason in result.reasons:
        console.print(Text(f"  - {reason}", style="yellow" if result.status != "fail" else "dim"))
    if result.run_env:
        shown = " ".join(f"{k}={v}" for k, v in sorted(result.run_env.items()))
        console.print(Text(f"  run with the README's settings: {shown}", style="dim"))
    if result.adjustments:
        console.print(Text("  adjusted for the CPU run: " + "; ".join(result.adjustments[:5]), style="dim"))
    native = [e["detail"] for e in result.sandbox_events if e.get("kind") == "native" and not e.get("blocked")]
    if native:
        c = result.confinement
        console.print(Text(f"  the submission's native code ran confined by the kernel (Landlock ABI "
                           f"{c.get('landlock_abi')}, no network device): " + "; ".join(native[:3]), style="dim"))
    console.print()


def run(args: argparse.Namespace) -> int:
    require_runtime_extra("causality")
    present, missing = split_present(args.paths)
    bundles = discover(present)
    options = AuditOptions(select=["PG2", "PG908"], runtime=True, debug=args.debug,
                           runtime_settings=settings_from(args), runtime_limits=limits_from(args))
    report, results = run_with_progress(bundles, options, quiet=args.quiet)
    report.not_audited = missing
    if args.format is Format.CONSOLE and not args.output:
        console = Console(force_terminal=args.color == "always" or None, no_color=args.color == "never" or None)
        for path, result in results:
            if result is not None:
                print_result(console, path, result)
    return emit(report, args)

"""Progress on stderr while the runtime harness runs submissions (a minute or two each).

Only on a terminal, and only for runtime audits: the static and records checks take well
under a second per folder. The report itself still goes to stdout (or ``-o``) untouched, so
the spinner never mixes with a report piped into another tool.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from auditor.bundle import Bundle
from auditor.engine import AuditOptions, audit_bundles, audit_evidence
from auditor.evidence import Evidence
from auditor.results import Report

if TYPE_CHECKING:  # imported when a runtime audit shows its progress, not by every command
    from rich.console import Console

    from auditor.runtime.harness import Causality


def audit_with_progress(
    bundles: Iterable[Bundle], options: AuditOptions, *, quiet: bool = False, console: Console | None = None
) -> Report:
    """Audit bundles; with ``options.runtime``, show what the harness is doing on stderr.

    ``console`` is stderr by default; nothing is shown when it is not a terminal or ``quiet``.
    Each submission ends with one lasting line: the runtime outcome and its time.
    """
    if not options.runtime:
        return audit_bundles(bundles, options)
    return run_with_progress(bundles, options, quiet=quiet, console=console)[0]


def run_with_progress(
    bundles: Iterable[Bundle], options: AuditOptions, *, quiet: bool = False, console: Console | None = None
) -> tuple[Report, list[tuple[str, Causality | None]]]:
    """:func:`audit_with_progress` for a runtime audit, also returning each submission's
    runtime result (None where the harness did not run)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    bundles = list(bundles)
    show = console.is_terminal and not quiet
    submissions = []
    results: list[tuple[str, Causality | None]] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console, transient=True, disable=not show) as progress:
        for number, bundle in enumerate(bundles, 1):
            where = f"[{number}/{len(bundles)}] {bundle.path}" if len(bundles) > 1 else bundle.path
            task = progress.add_task(f"{where}: static and records checks", total=None)

            def report(elapsed: float, checkpoint: dict[str, Any] | None, task: Any = task, where: str = where) -> None:
                phase = (checkpoint or {}).get("phase") or "importing the script"
                progress.update(task, description=f"{where}: runtime harness: {phase}", refresh=True)

            started = time.monotonic()
            evidence = Evidence(bundle, replace(options, runtime_progress=report).context())
            submissions.append(audit_evidence(evidence, options))
            progress.remove_task(task)
            result = evidence.runtime_done
            results.append((bundle.path, result))
            if show and result is not None:
                progress.console.print(
                    f"{where}: runtime probes {result.status} ({time.monotonic() - started:.0f} s)",
                    highlight=False, markup=False,
                )
    return Report(submissions=submissions), results

"""Progress of runtime audits on stderr: shown on a terminal, silent elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from auditor.commands import progress as progress_module
from auditor.discover import discover
from auditor.engine import AuditOptions
from auditor.results import SubmissionReport
from auditor.runtime.harness import Causality

from .conftest import EXAMPLE


def _fake_audit(evidence, options):
    """Stands in for the harness: reports a phase, then leaves its result on the evidence."""
    evidence.context.runtime_progress(3.0, {"phase": "probing future tokens"})
    evidence.__dict__["runtime"] = Causality("pass", seconds=3.0)  # as the cached property would
    return SubmissionReport(path=evidence.bundle.path)


def _run(monkeypatch, *, terminal: bool, runtime: bool = True, quiet: bool = False) -> tuple[str, list[str]]:
    monkeypatch.setattr(progress_module, "audit_evidence", _fake_audit)
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=terminal, width=100)
    report = progress_module.audit_with_progress(
        discover([EXAMPLE, EXAMPLE]), AuditOptions(runtime=runtime, select=["PG2"]), quiet=quiet, console=console
    )
    return stream.getvalue(), [s.path for s in report.submissions]


def test_runtime_progress_is_shown_on_a_terminal(monkeypatch):
    shown, paths = _run(monkeypatch, terminal=True)
    assert len(paths) == 2
    assert "runtime harness: probing future tokens" in shown
    assert "[2/2]" in shown and "runtime probes pass" in shown


def test_no_progress_off_a_terminal_or_when_quiet(monkeypatch):
    assert _run(monkeypatch, terminal=False)[0] == ""
    assert _run(monkeypatch, terminal=True, quiet=True)[0] == ""


def test_static_audits_show_no_progress(monkeypatch):
    shown, paths = _run(monkeypatch, terminal=True, runtime=False)
    assert shown == "" and len(paths) == 2

"""Shared fixtures of the runtime harness tests: each fixture submission runs once per session."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.discover import discover
from auditor.engine import AuditOptions
from auditor.evidence import Evidence
from auditor.runtime.harness import Causality
from auditor.runtime.sandbox import Limits, sandbox_problem

from ..conftest import REPO_ROOT

FIXTURES = REPO_ROOT / "fixtures" / "runtime"
#: A smaller run than the default (tests must be quick): 1,024 validation tokens, 4 chunks.
SETTINGS = {"val_tokens": 1024, "chunk": 256, "seq_len": 64, "stride": 16, "substitution_positions": 1,
            "budget_s": 45.0}
LIMITS = Limits(wall_s=110.0, threads=1)
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "train_gpt.py").is_file())

#: Tests that run a submission need bubblewrap (README, "The sandbox"); where it cannot run they are
#: skipped with the reason, as the harness itself would answer PG908 instead of running anything.
needs_sandbox = pytest.mark.skipif(bool(sandbox_problem()), reason=sandbox_problem() or "bubblewrap runs here")


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_fixture(name: str) -> Causality:
    return run_folder(FIXTURES / name)


def run_folder(folder: Path) -> Causality:
    """A folder through the harness as ``check --runtime`` runs it: in the scored configuration
    of its seed logs, when it ships any (else the script's defaults, and no claimed stage)."""
    bundle = discover([folder])[0]
    options = AuditOptions(runtime=True, runtime_settings=SETTINGS, runtime_limits=LIMITS)
    result = Evidence(bundle, options.context()).runtime
    assert result is not None
    return result


@pytest.fixture(scope="session")
def runtime_results() -> dict[str, Causality]:
    """Every fixture submission through the sandboxed harness, two at a time."""
    if problem := sandbox_problem():
        pytest.skip(problem)
    before = tree_digest(FIXTURES)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(NAMES, pool.map(run_fixture, NAMES)))
    results["__digest_before__"] = before  # type: ignore[assignment]
    return results

"""The hand-written records fixtures: each shows one problem, found at its evidence line."""

from __future__ import annotations

import pytest

from auditor.engine import audit

from ..conftest import FIXTURES, run_cli

RECORDS = FIXTURES / "records"


def _active(folder):
    (sub,) = audit([str(RECORDS / folder)]).submissions
    return sub, [f for f in sub.findings if f.counts]


def test_seed_over_cap_despite_the_claimed_total(in_tmp):
    sub, found = _active("2026-03-26_SeedOverCap")
    errors = [f for f in found if f.severity.value == "error"]
    assert [f.code for f in errors] == ["PG301"]
    assert errors[0].location.path.endswith("train_seed42.log") and errors[0].location.line
    assert errors[0].evidence["claimed_bytes_total"] == 15_995_959
    assert any(f.code == "PG305" and "15,995,959" in f.message for f in found)


def test_caseops_without_sidecar_divides_by_too_many_bytes(in_tmp):
    sub, found = _active("2026-04-27_CaseOpsWithoutSidecar")
    assert {f.code for f in found} == {"PG306"}
    assert all("+8.9%" in f.message for f in found)


def test_slow_scored_pass_in_a_dumped_crlf_ansi_logfile(in_tmp):
    sub, found = _active("2026-05-01_SlowScoredPass")
    (finding,) = [f for f in found if f.code == "PG303"]
    assert finding.location.path.endswith("logs/4f6c1d2e.txt") and "605.5 s on 8 GPUs" in finding.message
    seed = next(s for s in sub.seeds if s["log"].endswith("4f6c1d2e.txt"))
    assert seed["seed"] == "42" and seed["scored_eval_s"] == 605.512 and seed["train_s"] == 596.1


@pytest.mark.parametrize("folder", ["2026-03-26_SeedOverCap", "2026-04-27_CaseOpsWithoutSidecar", "2026-05-01_SlowScoredPass"])
def test_cli_exit_code_is_one(folder, in_tmp):
    assert run_cli("check", RECORDS / folder, "-q", "-f", "json").code == 1

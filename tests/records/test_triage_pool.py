"""The triage's process pool survives a worker that dies: its job is retried once, then fails."""

from __future__ import annotations

import os
import subprocess

from auditor.commands.triage import _run_pool


def _square_or_die(job: int) -> int:
    if job == 2:
        os._exit(3)  # a worker killed mid-job (out of memory, a segfault in a C extension …)
    return job * job


def test_a_dead_worker_fails_its_job_and_the_rest_complete(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    done: dict[int, int | None] = {}
    _run_pool([1, 2, 3, 4], _square_or_die, 2, (str(tmp_path), head), lambda i, value: done.__setitem__(i, value))
    assert done[1] is None  # job 2 (index 1) died twice
    assert {i: v for i, v in done.items() if i != 1} == {0: 1, 2: 9, 3: 16}

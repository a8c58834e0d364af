"""The sandbox's walls: no network, no programs, no writes outside, no inherited secrets, time limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from auditor.runtime.sandbox import PACKAGE_ROOT, Limits, child_env, run_child

from .conftest import needs_sandbox

GUARDED = textwrap.dedent('''
    import json, os, socket, subprocess, sys, urllib.request
    sys.path.insert(0, {root!r})
    from auditor.runtime.guard import Guard
    work = {work!r}
    guard = Guard(work)
    guard.install()
    outcome = {{}}
    def attempt(name, fn):
        try:
            fn()
            outcome[name] = "allowed"
        except PermissionError:
            outcome[name] = "refused"
    attempt("connect", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
    attempt("lookup", lambda: socket.getaddrinfo("example.com", 80))
    attempt("urlopen", lambda: urllib.request.urlopen("http://example.com/", timeout=1))
    attempt("program", lambda: subprocess.run(["ls", "/"], capture_output=True))
    attempt("system", lambda: os.system("true"))
    attempt("nvidia_smi", lambda: subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
    attempt("write_outside", lambda: open({outside!r}, "w").write("x"))
    attempt("write_inside", lambda: open(os.path.join(work, "ok.txt"), "w").write("x"))
    attempt("read_outside", lambda: open({secret!r}).read())
    attempt("remove_outside", lambda: os.remove({secret!r}))
    guard.active = False
    print(json.dumps({{"outcome": outcome, "events": guard.events}}))
''')


def test_guard_refuses_network_programs_and_foreign_files(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("token")
    code = GUARDED.format(root=str(PACKAGE_ROOT), work=str(work), outside=str(tmp_path / "outside.txt"),
                          secret=str(secret))
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60,
                          env=child_env(1), cwd=work)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    outcome = report["outcome"]
    assert outcome == {
        "connect": "refused", "lookup": "refused", "urlopen": "refused", "program": "refused", "system": "refused",
        "nvidia_smi": "allowed", "write_outside": "refused", "write_inside": "allowed", "read_outside": "refused",
        "remove_outside": "refused",
    }
    assert not (tmp_path / "outside.txt").exists() and secret.read_text() == "token"
    kinds = {e["kind"] for e in report["events"] if e["blocked"]}
    assert kinds == {"network", "process", "write", "read"}


def test_environment_is_built_from_nothing(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    env = child_env(2)
    assert "GITHUB_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["OMP_NUM_THREADS"] == "2"
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONHASHSEED", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "OPENBLAS_NUM_THREADS", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    assert not any("pgolf" in v.lower() or "audit" in v.lower() for v in env.values())


@needs_sandbox
def test_a_runaway_script_is_killed_at_the_wall_clock_limit():
    script = b"import os\nprint(os.environ.get('GITHUB_TOKEN'))\ndef main():\n    while True:\n        pass\n" \
             b"if __name__ == '__main__':\n    main()\n"
    child = run_child({"train_gpt.py": script}, {"script": "train_gpt.py", "settings": {"budget_s": 60}},
                      Limits(wall_s=12, threads=1))
    assert child.timed_out and child.result is None
    assert child.seconds < 40
    assert child.latest is not None and child.latest.phase == "running the script"
    assert child.survivors == 0


@needs_sandbox
def test_paths_cannot_leave_the_sandbox_folder():
    import tempfile
    from pathlib import Path

    escape = Path(tempfile.gettempdir()) / "pgolf_escape_probe.py"
    child = run_child({"../../pgolf_escape_probe.py": b"x = 1\n", "train_gpt.py": b"def main():\n    pass\n"},
                      {"script": "train_gpt.py", "settings": {"budget_s": 5}}, Limits(wall_s=60, threads=1))
    assert child.result is not None
    assert not escape.exists()


def test_a_refusal_that_stops_the_run_is_reported_as_one():
    from auditor.runtime import driver, guard, protocol
    from auditor.runtime.harness import _kind

    job = protocol.Job(script="train_gpt.py", file="train_gpt.py", nonce="n", result_fd=3, input="/in")
    error = driver._error(guard.Refused("blocked by the pgolf-audit sandbox: process: subprocess (['gcc'],)"), job)
    assert error.kind == "refused" and _kind(error) == "the sandbox refused it"


def test_without_bubblewrap_nothing_runs(monkeypatch, tmp_path):
    from auditor.discover import discover
    from auditor.runtime import sandbox
    from auditor.runtime.harness import causality_of

    (tmp_path / "train_gpt.py").write_text("open('/tmp/pgolf-ran-without-sandbox', 'w').write('x')\n")
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    sandbox.sandbox_problem.cache_clear()
    try:
        result = causality_of(discover([tmp_path])[0], {"budget_s": 5.0}, Limits(wall_s=30, threads=1))
    finally:
        monkeypatch.undo()
        sandbox.sandbox_problem.cache_clear()
    assert result.status == "inconclusive"
    assert result.reasons == ["no sandbox available (install bubblewrap): bwrap is not installed"]
    assert not os.path.exists("/tmp/pgolf-ran-without-sandbox")


class _Checkpoints:
    def __init__(self, wanted):
        self.wanted = wanted

    def latest(self, key):
        return self.wanted if key == "wanted_s" else None


@pytest.mark.parametrize(("wanted", "limit"), [(None, 140.0), (60.0, 140.0), (300.0, 325.0), (10_000.0, 420.0),
                                               (float("nan"), 140.0), ("300", 140.0), (True, 140.0)])
def test_the_wall_clock_limit_grows_to_what_the_probes_need_and_no_further(wanted, limit):
    from auditor.runtime.sandbox import _deadline

    assert _deadline(1000.0, Limits(wall_s=140.0, max_wall_s=420.0), _Checkpoints(wanted)) == 1000.0 + limit
    assert _deadline(0.0, Limits(wall_s=140.0, max_wall_s=100.0), _Checkpoints(10_000.0)) == 140.0  # never below


def test_the_driver_asks_for_the_measured_cost_of_its_probes():
    import time as clock
    from types import SimpleNamespace

    from auditor.runtime import protocol
    from auditor.runtime.driver import Run, Session
    from auditor.runtime.knobs import Settings
    from auditor.runtime.probing import replays_per_scorer

    session = Session.__new__(Session)
    session.settings = Settings(budget_s=100.0, max_budget_s=395.0, substitution_positions=2, vocab=64)
    session.started = clock.monotonic()
    session.result = protocol.DriverResult()
    base = Run(protocol.RunRecord("baseline", seconds=4.0), [])
    session.snapshots = {"eval_val": SimpleNamespace(result=SimpleNamespace(seconds=0.05))}
    session.ask_for_time(base)
    assert session.result.wanted_s == 100.0  # a quick evaluation needs no more than the budget
    session.snapshots["eval_val_ttt"] = SimpleNamespace(result=SimpleNamespace(seconds=2.5))
    session.ask_for_time(base)
    need = 8.0 + (2.5 + 0.05) * replays_per_scorer(2, 64)  # the pipeline rerun twice, each evaluation's replays
    assert need <= session.result.wanted_s < need + 1.0 and session.deadline > session.started + 100.0
    session.snapshots["eval_val_slow"] = SimpleNamespace(result=SimpleNamespace(seconds=15.0))
    session.ask_for_time(base)
    assert session.result.wanted_s == 395.0  # never beyond what the parent grants


@needs_sandbox  # the command holds the options this bubblewrap supports
def test_the_sandbox_command_names_nothing_of_the_harness():
    from auditor.runtime.sandbox import _OWN_ENTRY, WORKDIR, bwrap_command

    script = "records/track_10min_16mb/2026-03-17_NaiveBaseline/train_gpt.py"
    cmd = bwrap_command(sys.executable, Limits(), {"/etc/passwd": 5, "/etc/group": 6}, (script, 7))
    assert "--as-pid-1" in cmd and "localhost" not in cmd  # the run is its namespace's only process
    assert not any("/opt/" in arg or "pgolf" in arg or _OWN_ENTRY.search(arg.rsplit("/", 1)[-1]) for arg in cmd)
    assert cmd[cmd.index("--file") + 2] == f"{WORKDIR}/{script}" and cmd[cmd.index("--chdir") + 1] == WORKDIR


def test_an_interpreter_under_tmp_is_bound_into_the_sandbox_s_empty_tmp():
    """A virtual environment in /tmp (a CI job's) is bound after the empty /tmp goes up, not
    hidden by it; /tmp itself is never bound."""
    import os
    import tempfile

    from auditor.runtime.sandbox import SANDBOX_TMP, _python_roots, bwrap_command

    with tempfile.TemporaryDirectory(dir=SANDBOX_TMP) as venv:
        os.mkdir(os.path.join(venv, "bin"))
        python = os.path.join(venv, "bin", "python")
        open(python, "w").close()
        cmd = bwrap_command(python, Limits(), {"/etc/passwd": 5, "/etc/group": 6})
    pairs = list(zip(cmd, cmd[1:]))
    assert pairs.index(("--tmpfs", SANDBOX_TMP)) < pairs.index(("--ro-bind", venv))
    assert _python_roots(os.path.join(SANDBOX_TMP, "bin", "python")) == []

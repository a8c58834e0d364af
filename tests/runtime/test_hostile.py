"""Hostile submissions: an illegal script plus one trick each (fixtures/hostile/). Whatever the trick,
the verdict stays ``violation`` (exit 1), the audited folder keeps its bytes, modes and times, the
host keeps its files, sockets and secrets, and no process outlives the audit."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from auditor.runtime.sandbox import _descendants

from ..conftest import REPO_ROOT
from .conftest import needs_sandbox

HOSTILE = REPO_ROOT / "fixtures" / "hostile"
TRICKS = sorted(p.stem.removeprefix("trick_") for p in HOSTILE.glob("trick_*.py"))
#: What the tricks try to leave on the host (none may exist afterwards).
MARKERS = ["/tmp/pgolf-hostile-hook-system", "/tmp/pgolf-hostile-hook-fork-exec", "/tmp/pgolf-hostile-hook-python",
           "/dev/shm/pgolf-hostile-shm", "/dev/shm/pgolf-hostile-shm-native"]
# unique per test run (several runs may share the machine); the trick finds them by pattern
SOCKET_PATH = f"/tmp/pgolf-hostile-{os.getpid()}.sock"
ABSTRACT = f"\0pgolf-hostile-{os.getpid()}"

pytestmark = needs_sandbox


def submission(folder: Path, trick: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "train_gpt.py").write_bytes((HOSTILE / "cheater.py").read_bytes())
    (folder / "trick.py").write_bytes((HOSTILE / f"trick_{trick}.py").read_bytes())
    os.chmod(folder / "train_gpt.py", 0o644)
    os.utime(folder / "train_gpt.py", (1_700_000_000, 1_700_000_000))
    return folder


def state(folder: Path) -> dict[str, tuple]:
    """Bytes, mode and modification time of every entry, the folder itself included."""
    out = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        st = os.lstat(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(folder))] = (digest, st.st_mode, st.st_mtime_ns)
    return out


def audit(folder: Path) -> tuple[int, dict, str]:
    out = folder.parent / f"{folder.name}.json"
    done = subprocess.run([sys.executable, "-m", "auditor.cli", "check", "--runtime", "--format", "json",
                           "-o", str(out), str(folder)], capture_output=True, text=True, timeout=300,
                          cwd=str(REPO_ROOT), env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    text = out.read_text() if out.exists() else ""
    return done.returncode, json.loads(text) if text else {}, done.stderr


@pytest.fixture(scope="module")
def listeners():
    """A pathname and an abstract unix socket on the host, which the sandbox must not reach."""
    for path in MARKERS + [SOCKET_PATH]:
        Path(path).unlink(missing_ok=True)
    pathname = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    pathname.bind(SOCKET_PATH)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(ABSTRACT)
    for s in (pathname, abstract):
        s.listen(4)
        s.setblocking(False)
    yield pathname, abstract
    pathname.close()
    abstract.close()
    Path(SOCKET_PATH).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def audits(tmp_path_factory, listeners):
    """Every trick through ``pgolf-audit check --runtime``, two at a time."""
    root = tmp_path_factory.mktemp("hostile")
    folders = {t: submission(root / t, t) for t in TRICKS if t != "memory"}
    before = {t: state(f) for t, f in folders.items()}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(folders, pool.map(audit, folders.values())))
    return folders, before, results


@pytest.mark.parametrize("trick", [t for t in TRICKS if t != "memory"])
def test_a_trick_does_not_turn_a_violation_into_a_pass(audits, trick):
    folders, before, results = audits
    rc, report, stderr = results[trick]
    assert rc == 1, stderr[-2000:]
    sub = report["submissions"][0]
    assert sub["verdict"] == "violation"
    pg101 = [f for f in sub["findings"] if f["code"] == "PG101"]
    assert pg101 and pg101[0]["severity"] == "error"
    assert state(folders[trick]) == before[trick]  # bytes, modes and times of the audited folder
    runtime = {f["code"]: f for f in sub["findings"]}
    if trick == "forge_pipe":
        # the forgery got through the channel (it knew the nonce); the static error still stands
        assert pg101[0]["evidence"]["runtime"]["status"] == "pass_not_clearing"
    elif trick in ("forge_file", "forge_fds", "evade"):
        assert "PG908" in runtime  # no result, a distrusted channel, or nothing evaluated
    if trick == "forge_fds":
        assert "not trusted" in runtime["PG908"]["message"]


def test_nothing_reaches_the_host(audits, listeners):
    for path in MARKERS:
        assert not Path(path).exists(), path
    for listener in listeners:
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not _descendants(os.getpid())
    # a survivor of this run would hang below init; one below a bwrap belongs to a run in progress
    survivors = [p for p in os.listdir("/proc") if p.isdigit() and _comm(p) == "pgolf-survivor" and not _in_sandbox(p)]
    assert not survivors


def test_no_secret_of_the_host_reaches_the_report(audits):
    _, _, results = audits
    rc, report, _ = results["read_secret"]
    text = json.dumps(report)
    try:
        first = Path("/etc/shadow").read_text().splitlines()[0]
    except (OSError, IndexError):
        first = ""
    if first:
        assert first.split(":")[0] + ":" + first.split(":")[1] not in text
    assert "/etc/shadow" not in text and "/root/" not in text


def test_memory_is_limited_across_processes(tmp_path):
    from auditor.discover import discover
    from auditor.runtime.harness import causality_of
    from auditor.runtime.sandbox import Limits

    folder = submission(tmp_path / "memory", "memory")
    result = causality_of(discover([folder])[0], {"budget_s": 30.0},
                          Limits(wall_s=90.0, threads=1, total_memory_bytes=int(1.5 * 2**30)))
    assert result.status == "inconclusive"
    assert any("GiB together" in r for r in result.reasons), result.reasons
    assert result.seconds < 60
    assert not _descendants(os.getpid())


def test_a_careful_evader_sees_no_sign_of_the_audit():
    """trick_stealth.py looks for every cheap sign of an audit (the harness's modules, paths and
    frames, the command line, environment, user, host and processes) and prints what it saw."""
    from auditor.runtime.sandbox import Limits, run_child

    files = {"train_gpt.py": (HOSTILE / "cheater.py").read_bytes(), "trick.py": (HOSTILE / "trick_stealth.py").read_bytes()}
    child = run_child(files, {"script": "train_gpt.py", "folder": "2026-03-17_NgramCache", "settings": {"budget_s": 20}},
                      Limits(wall_s=60, threads=1))
    assert child.result is not None, child.problem + child.stderr_tail[-2000:]
    assert "signs of an audit: []" in child.result.log_tail, child.result.log_tail


def test_a_careful_evader_cheats_and_the_probes_see_it(tmp_path):
    """The same trick on a cheat the probes can measure (a hashed cache with the target in its
    key): it sees no sign, so it cheats, and target substitution fails; the static error stands."""
    from .conftest import FIXTURES

    folder = tmp_path / "2026-03-17_NgramCache"
    folder.mkdir()
    text = (FIXTURES / "ngram_target_in_key" / "train_gpt.py").read_text()
    future = "from __future__ import annotations\n"
    (folder / "train_gpt.py").write_text(text.replace(future, future + "\nimport trick  # noqa: F401\n", 1))
    (folder / "trick.py").write_bytes((HOSTILE / "trick_stealth.py").read_bytes())
    rc, report, stderr = audit(folder)
    assert rc == 1, stderr[-2000:]
    findings = {f["code"]: f for f in report["submissions"][0]["findings"]}
    assert "PG203" in findings and "PG908" not in findings, sorted(findings)
    assert findings["PG101"]["severity"] == "error"
    assert findings["PG101"]["evidence"]["runtime"]["status"] == "fail"
    assert findings["PG101"]["evidence"]["runtime"]["probe"] == "substitution"


def _in_sandbox(pid: str) -> bool:
    """Whether a process runs below a bwrap process (inside a sandbox that is still running)."""
    for _ in range(64):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return False
        pid = stat[stat.rfind(b")") + 2:].split()[1].decode()
        if pid in ("0", "1"):
            return False
        if _comm(pid) == "bwrap":
            return True
    return False


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""

"""The sandbox's outer wall: a child process with nothing to lose (parent side).

Submission code is untrusted. It runs in a separate Python process that

- starts isolated (``python -I``: no user site, no ``PYTHONPATH``, no current folder on the path),
- gets an environment built from scratch (``PATH``, a C.UTF-8 locale, ``HOME`` and ``TMPDIR``
  in its own temporary folder, thread counts; no token, key or credential of the caller),
- works in a fresh temporary folder holding copies of the submission's files (read through
  the bundle's store, so folders in a git tree work the same; the audited folder is never
  written to and never named to the child),
- runs under resource limits (address space, CPU seconds, open files, file size, no core
  dumps) in its own session and, where the kernel allows unprivileged namespaces, in a network
  namespace of its own (no network device at all), and is killed with its whole process group
  at the wall-clock limit,
- and, inside, installs the audit hook of :mod:`auditor.runtime.guard` before any submission
  code runs (no network, no programs, no writes outside its folder).

The child writes ``result.json``; the folder is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Limits:
    wall_s: float = 140.0
    cpu_s: int = 600
    memory_bytes: int = 8 * 2**30
    file_bytes: int = 2 * 2**30
    open_files: int = 1024
    threads: int = 1
    python: str | None = None  # interpreter for the child (default: this one)


@dataclass
class ChildResult:
    result: dict[str, Any] | None
    returncode: int | None
    seconds: float
    timed_out: bool = False
    stderr_tail: str = ""
    problem: str = ""  # why there is no result, when there is none
    files_written: list[str] = field(default_factory=list)


def clean_env(workdir: Path, threads: int) -> dict[str, str]:
    """An environment built from nothing: no variable of the caller is passed on."""
    n = str(max(1, threads))
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(workdir),
        "TMPDIR": str(workdir / "tmp"),
        "TEMP": str(workdir / "tmp"),
        "TMP": str(workdir / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        "NUMEXPR_NUM_THREADS": n,
        "TORCHINDUCTOR_CACHE_DIR": str(workdir / "tmp" / "inductor"),
        "TRITON_CACHE_DIR": str(workdir / "tmp" / "triton"),
        "TORCH_HOME": str(workdir / "tmp" / "torch"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NO_PROXY": "*",
        # Scripts written for torch < 2.6 reload their own checkpoint with torch.load's old
        # default; the file was written by the same sandboxed run, so unpickling it adds no risk.
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
    }


def _private_network() -> None:
    """Best effort: a user and network namespace of its own, so the child has no network device
    at all (native code the audit hook cannot see gets no network either). Where unprivileged
    namespaces are not allowed, the audit hook inside the child remains the wall."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.unshare(0x10000000 | 0x40000000)  # CLONE_NEWUSER | CLONE_NEWNET
    except Exception:  # noqa: BLE001 - between fork and exec: never raise
        pass


def _limiter(limits: Limits):
    def apply() -> None:  # runs in the child between fork and exec
        import resource

        def cap(kind: int, value: int) -> None:
            try:
                soft, hard = resource.getrlimit(kind)
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
            except (ValueError, OSError):
                pass

        cap(resource.RLIMIT_AS, limits.memory_bytes)
        cap(resource.RLIMIT_CPU, limits.cpu_s)
        cap(resource.RLIMIT_NOFILE, limits.open_files)
        cap(resource.RLIMIT_FSIZE, limits.file_bytes)
        cap(resource.RLIMIT_CORE, 0)
        _private_network()

    return apply


def run_child(files: dict[str, bytes], job: dict[str, Any], limits: Limits | None = None,
              keep: bool = False, progress: Any = None) -> ChildResult:
    """Write ``files`` (relative paths) and ``job`` into a fresh folder and run the driver there."""
    limits = limits or Limits()
    workdir = Path(tempfile.mkdtemp(prefix="pgolf-runtime-")).resolve()
    started = time.monotonic()
    try:
        (workdir / "tmp").mkdir()
        submission = workdir / "submission"
        for rel, content in files.items():
            target = (submission / rel).resolve()
            if not str(target).startswith(str(submission)):
                continue  # a path that would leave the folder
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        job_path = workdir / "job.json"
        job_path.write_text(json.dumps(job), encoding="utf-8")
        code = (
            "import sys; sys.path.insert(0, %r); from auditor.runtime.driver import main; sys.exit(main(%r))"
            % (str(PACKAGE_ROOT), str(job_path))
        )
        stdout_path, stderr_path = workdir / "child.out", workdir / "child.err"
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            try:
                proc = subprocess.Popen(
                    [limits.python or sys.executable, "-I", "-c", code], cwd=str(workdir),
                    env=clean_env(workdir, limits.threads),
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                    preexec_fn=_limiter(limits),  # noqa: PLW1509 - only setrlimit, before exec
                )
            except OSError as exc:
                return ChildResult(None, None, time.monotonic() - started, problem=f"could not start Python: {exc}")
            timed_out = False
            deadline = started + limits.wall_s
            try:
                _wait(proc, deadline, progress, workdir)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
            except BaseException:  # interrupted: the child does not outlive its parent's wish
                _kill_group(proc)
                raise
        seconds = time.monotonic() - started
        stderr_tail = _tail(stderr_path)
        result_path = workdir / "result.json"
        result = None
        problem = ""
        if result_path.exists():
            try:
                result = json.loads(result_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                problem = f"the harness wrote an unreadable result ({exc})"
        if result is None and not problem:
            if timed_out:
                problem = f"stopped at the {limits.wall_s:.0f} s wall-clock limit before it reported"
            elif proc.returncode is not None and proc.returncode < 0:
                problem = f"killed by signal {-proc.returncode} ({_signal_name(-proc.returncode)})"
            else:
                problem = f"the harness process ended (exit {proc.returncode}) without a result"
        return ChildResult(result, proc.returncode, seconds, timed_out, stderr_tail, problem)
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _wait(proc: subprocess.Popen, deadline: float, progress: Any, workdir: Path) -> None:
    """Wait for the child, reporting progress; TimeoutExpired at the deadline."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, 0)
        try:
            proc.wait(timeout=min(left, 0.5) if progress else left)
            return
        except subprocess.TimeoutExpired:
            if progress is not None:
                progress(time.monotonic(), _peek(workdir / "result.json"))


def _peek(path: Path) -> dict[str, Any] | None:
    """The driver's latest checkpoint, if there is one (it is replaced atomically)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _tail(path: Path, size: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-size:].decode("utf-8", "replace")


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"

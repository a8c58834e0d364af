"""The sandbox's outer wall: the submission runs under bubblewrap (parent side).

Submission code is untrusted. It runs in a separate Python process started by ``bwrap``
(bubblewrap, the isolation tool Flatpak uses; no privilege needed where the kernel allows
unprivileged user namespaces), which gives it

- new user, mount, PID, IPC, UTS and network namespaces (no network device but loopback; no
  pathname or abstract unix socket of the host is reachable), an unprivileged uid, its own
  session (``--new-session``), and ``--die-with-parent``;
- a root file system built from nothing: read-only binds of the system libraries (``/usr``)
  and the Python installation, a generated ``/etc/passwd``; no ``/etc/shadow``, no ``/run``;
  private size-limited tmpfs mounts for its home folder, ``/tmp`` and ``/dev/shm`` (the
  aggregate disk limit). The harness's code and the copy of the submission's files come on
  standard input, so that neither has a place on the file system (the audited folder is never
  named to it);
- an environment built from scratch (no token, key or credential of the caller);
- resource limits (address space, CPU seconds, open files, file size, no core dumps; processes
  where the kernel counts them), and a watchdog in the parent that sums the resident memory and
  counts the processes of the whole sandbox and ends it when either passes its limit;
- and an end: when the run finishes, times out or breaks a limit, the PID namespace is torn
  down, so a double-forked daemon does not survive the audit.

Inside, the driver adds Landlock (:mod:`auditor.runtime.confine`) and the audit hook of
:mod:`auditor.runtime.guard`; those are extra layers, not the boundary.

The sandbox looks like a normal run where that is cheap: an ordinary user (``ubuntu``, uid
1000) runs ``python records/track_10min_16mb/<folder>/train_gpt.py`` from a checkout of the
challenge's repository in its home folder, as the only process of its PID namespace; what
starts there is :mod:`auditor.runtime.boot`, which loads the harness without a trace in
``sys.modules``, ``sys.path`` or file names, and the driver then puts the script in its place.

The job goes to the child on its standard input; results come back on an inherited pipe, as
messages that carry a per-run nonce (:mod:`auditor.runtime.protocol`), never through a file
the child could write. Where bubblewrap cannot run, the submission is not run at all
(:func:`sandbox_problem`): the harness reports "no sandbox available" instead of falling back
to something weaker.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from auditor.runtime import layout
from auditor.runtime.protocol import CHANNEL_CAP, Channel, DriverResult, InlineSite, Job, read_messages

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
#: The user the submission runs as inside its user namespace (that of an Ubuntu cloud machine).
USER = "ubuntu"
UID = 1000
#: Where things are inside the sandbox: the home folder (the writable tmpfs) holds a checkout of
#: the challenge's repository, the working folder where the run starts.
HOME = f"/home/{USER}"
#: The sandbox's own empty /tmp (an interpreter installed below it is bound into it).
SANDBOX_TMP = "/tmp"
WORKDIR = f"{HOME}/parameter-golf"
NO_SANDBOX = "no sandbox available (install bubblewrap)"


@dataclass
class Limits:
    wall_s: float = 140.0
    #: The wall-clock limit a run may grow to when the measured cost of its probes needs more
    #: than ``wall_s`` (the driver asks after the baseline run; never beyond this).
    max_wall_s: float = 420.0
    cpu_s: int = 600
    memory_bytes: int = 8 * 2**30  # per process (address space)
    total_memory_bytes: int | None = None  # all processes together (proportional resident set); default memory_bytes
    file_bytes: int = 2 * 2**30  # the working folder's tmpfs (and the largest file)
    tmp_bytes: int = 512 * 2**20  # /tmp and /dev/shm, each
    open_files: int = 1024
    processes: int = 64
    output_bytes: int = 64 * 2**10  # the tail of the child's stdout/stderr kept
    threads: int = 1
    python: str | None = None  # interpreter for the child (default: this one)


@dataclass
class ChildResult:
    result: DriverResult | None
    returncode: int | None
    seconds: float
    timed_out: bool = False
    stderr_tail: str = ""
    problem: str = ""  # why there is no result, when there is none
    latest: DriverResult | None = None  # the last checkpoint (set when the run was stopped)
    output_bytes: int = 0  # bytes the child wrote to stdout/stderr (only the tail is kept)
    survivors: int = 0  # processes of the sandbox still alive after it was ended (must be 0)


def child_env(threads: int) -> dict[str, str]:
    """An environment built from nothing: no variable of the caller is passed on. It is close to
    that of a normal run (no variable that names the harness or a temporary folder)."""
    n = str(max(1, threads))
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": HOME,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "OPENBLAS_NUM_THREADS": n,
        # Scripts written for torch < 2.6 reload their own checkpoint with torch.load's old
        # default; the file was written by the same sandboxed run, so unpickling it adds no risk.
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
    }


#: The sandbox's ``/etc/passwd`` and ``/etc/group``: those of an Ubuntu machine.
PASSWD = "".join(f"{line}\n" for line in (
    "root:x:0:0:root:/root:/bin/bash", "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
    "bin:x:2:2:bin:/bin:/usr/sbin/nologin", "sys:x:3:3:sys:/dev:/usr/sbin/nologin", "sync:x:4:65534:sync:/bin:/bin/sync",
    "games:x:5:60:games:/usr/games:/usr/sbin/nologin", "man:x:6:12:man:/var/cache/man:/usr/sbin/nologin",
    "lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin", "mail:x:8:8:mail:/var/mail:/usr/sbin/nologin",
    "news:x:9:9:news:/var/spool/news:/usr/sbin/nologin", "uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin",
    "proxy:x:13:13:proxy:/bin:/usr/sbin/nologin", "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin",
    "backup:x:34:34:backup:/var/backups:/usr/sbin/nologin", "list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin",
    "irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin", "_apt:x:42:65534::/nonexistent:/usr/sbin/nologin",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin", f"{USER}:x:{UID}:{UID}:Ubuntu:{HOME}:/bin/bash"))
GROUP = "".join(f"{line}\n" for line in (
    "root:x:0:", "daemon:x:1:", "bin:x:2:", "sys:x:3:", f"adm:x:4:{USER}", "tty:x:5:", "disk:x:6:", "lp:x:7:",
    "mail:x:8:", "news:x:9:", "uucp:x:10:", "man:x:12:", "proxy:x:13:", "kmem:x:15:", f"dialout:x:20:{USER}",
    f"cdrom:x:24:{USER}", f"sudo:x:27:{USER}", "audio:x:29:", "www-data:x:33:", "backup:x:34:", "operator:x:37:",
    "list:x:38:", "irc:x:39:", "src:x:40:", "shadow:x:42:", "utmp:x:43:", "video:x:44:", "plugdev:x:46:",
    "staff:x:50:", "games:x:60:", "users:x:100:", "nogroup:x:65534:", f"{USER}:x:{UID}:"))


@functools.lru_cache(maxsize=1)
def harness_sources() -> str:
    """The harness's package as one JSON line (module name to source text): the sandbox's first
    code (:mod:`auditor.runtime.boot`) loads it from standard input, so it has no place on the
    sandbox's file system."""
    sources = {}
    for path in sorted((PACKAGE_ROOT / "auditor").rglob("*.py")):
        rel = path.relative_to(PACKAGE_ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return json.dumps(sources)


def _data(text: str) -> int:
    """A pipe's read end that yields ``text`` (small: it fits the pipe's buffer), for bwrap."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, text.encode("utf-8"))
    finally:
        os.close(write_end)
    return read_end


# -- bubblewrap -------------------------------------------------------------------------------

def _python_roots(python: str) -> list[str]:
    """Folders an interpreter needs: its installation (and a virtual environment's folder)."""
    roots = set()
    for path in (python, os.path.realpath(python)):
        roots.add(os.path.dirname(os.path.dirname(os.path.abspath(path))))
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        roots.update({sys.prefix, sys.base_prefix, sys.exec_prefix})
    # /tmp itself is never bound: the sandbox's /tmp is empty (a venv inside it is bound)
    return sorted(r for r in roots if r and r not in ("/", SANDBOX_TMP, "/dev/shm") and not r.startswith("/usr"))


def bwrap_command(python: str, limits: Limits, data: dict[str, int], script: tuple[str, int] | None = None) -> list[str]:
    """The ``bwrap`` command line that runs ``python`` in a fresh sandbox (see the module docstring).
    ``data``: ``/etc/passwd`` and ``/etc/group``, as pipes (:func:`_data`); ``script``: a file
    (its path relative to the working folder, and a pipe with its text) that the run starts with."""
    bwrap = shutil.which("bwrap") or "bwrap"
    cmd = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
           "--unshare-cgroup-try", "--uid", str(UID), "--gid", str(UID), "--hostname", secrets.token_hex(6),
           "--die-with-parent", "--new-session", "--clearenv",
           "--ro-bind", "/usr", "/usr"]
    if _supports("--as-pid-1"):  # bubblewrap 0.8: no reaper of bwrap's own as PID 1 to see
        cmd.insert(1, "--as-pid-1")
    perms = ["--perms", "0644"] if _supports("--perms") else []
    for link in ("bin", "sbin", "lib", "lib32", "lib64"):
        target = os.path.join("/", link)
        if os.path.islink(target):
            cmd += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            cmd += ["--ro-bind", target, target]
    for name in ("ld.so.cache", "localtime"):
        if os.path.exists(f"/etc/{name}"):
            cmd += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for name, fd in sorted(data.items()):
        cmd += [*perms, "--ro-bind-data", str(fd), name]
    # the empty /tmp goes up before the interpreter is bound: an interpreter or virtual
    # environment that lives under /tmp is bound into it, not hidden by it
    cmd += ["--proc", "/proc", "--dev", "/dev",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm",
            "--size", str(limits.tmp_bytes), "--tmpfs", SANDBOX_TMP]
    for root in _python_roots(python):
        if os.path.isdir(root):
            cmd += ["--ro-bind", root, root]
    cmd += _hide_installation(python)
    cmd += ["--size", str(limits.file_bytes), "--tmpfs", HOME,
            "--dir", WORKDIR]
    if script is not None:
        rel, fd = script
        cmd += ["--dir", os.path.dirname(f"{WORKDIR}/{rel}"), *perms, "--file", str(fd), f"{WORKDIR}/{rel}"]
    cmd += ["--chdir", WORKDIR]
    for key, value in child_env(limits.threads).items():
        cmd += ["--setenv", key, value]
    return cmd


@functools.cache
def _supports(option: str) -> bool:
    """Whether this bubblewrap knows ``option`` (its ``--help`` lists it)."""
    try:
        done = subprocess.run([shutil.which("bwrap") or "bwrap", "--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return f"{option} " in done.stdout + done.stderr


#: Entries of a site-packages folder that belong to this tool's installation.
_OWN_ENTRY = re.compile(r"^auditor$|parameter[_-]golf[_-]auditor|pgolf[_-]audit", re.I)


def _hide_installation(python: str) -> list[str]:
    """bwrap arguments that leave this tool's installation out of the interpreter's
    site-packages (its package, metadata and ``.pth`` files): the folder is replaced by an empty
    one into which every other entry is bound again, so that ``import auditor`` fails there."""
    if os.path.realpath(python) != os.path.realpath(sys.executable):
        return []
    folders = set(site.getsitepackages()) | {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    out: list[str] = []
    for folder in sorted(f for f in folders if os.path.isdir(f)):
        try:
            entries = sorted(os.listdir(folder))
        except OSError:
            continue
        if not any(_OWN_ENTRY.search(e) for e in entries):
            continue
        out += ["--tmpfs", folder]
        for entry in entries:
            path = os.path.join(folder, entry)
            if _OWN_ENTRY.search(entry):
                continue
            if os.path.islink(path):
                out += ["--symlink", os.readlink(path), path]
            else:
                out += ["--ro-bind", path, path]
        out += ["--remount-ro", folder]
    return out


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str:
    """Why bubblewrap cannot run here ("" when it can); checked once per process."""
    if shutil.which("bwrap") is None:
        return f"{NO_SANDBOX}: bwrap is not installed"
    data = {"/etc/passwd": _data(PASSWD), "/etc/group": _data(GROUP)}
    try:
        cmd = bwrap_command(sys.executable, Limits(), data) + [sys.executable, "-I", "-c", "pass"]
        done = subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL, pass_fds=tuple(data.values()))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{NO_SANDBOX}: {type(exc).__name__}"
    finally:
        for fd in data.values():
            os.close(fd)
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return f"{NO_SANDBOX}: bwrap: {message[0][:200]}"
    return ""


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
        # counted per user namespace; the kernel exempts a caller that is root, where the
        # watchdog's process count is the limit
        cap(resource.RLIMIT_NPROC, limits.processes)

    return apply


# -- running ----------------------------------------------------------------------------------

def run_child(files: dict[str, bytes], job: dict[str, Any], limits: Limits | None = None,
              progress: Any = None) -> ChildResult:
    """Run the driver on ``job`` (script, file, folder, run_env, settings) in the sandbox, with
    ``files`` (relative paths) as the copy of the submission."""
    limits = limits or Limits()
    started = time.monotonic()
    problem = sandbox_problem()
    if problem:
        return ChildResult(None, None, 0.0, problem=problem)
    read_end, write_end = os.pipe()
    nonce = secrets.token_hex(16)
    folder = layout.records_folder(str(job.get("folder") or ""))
    request = Job(script=job["script"], file=job.get("file") or job["script"], nonce=nonce, result_fd=write_end,
                  input="", run_env=dict(job.get("run_env") or {}), settings=dict(job.get("settings") or {}),
                  scored_env=dict(job.get("scored_env") or {}), scored_world_size=job.get("scored_world_size"),
                  stage_labels=list(job.get("stage_labels") or []), scorers=[str(n) for n in job.get("scorers") or []],
                  inline=[InlineSite(str(site["function"]), int(site["line"]), [str(n) for n in site.get("printed") or []])
                          for site in job.get("inline") or []],
                  files=_encoded(files), folder=folder.name,
                  home=HOME)
    python = limits.python or sys.executable
    # the run starts as ``python records/track_10min_16mb/<folder>/train_gpt.py`` would; the
    # file there is the sandbox's first code until the driver puts the script in its place
    script = str(folder / request.file)
    data = {"/etc/passwd": _data(PASSWD), "/etc/group": _data(GROUP)}
    boot = _data((Path(__file__).parent / "boot.py").read_text(encoding="utf-8"))
    try:
        proc = subprocess.Popen(
            bwrap_command(python, limits, data, (script, boot)) + [python, script], cwd="/",
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write_end, boot, *data.values()),
            start_new_session=True, preexec_fn=_limiter(limits),  # only setrlimit, before exec
        )
    except OSError as exc:
        os.close(read_end)
        return ChildResult(None, None, time.monotonic() - started, problem=f"could not start the sandbox: {exc}")
    finally:
        for fd in (write_end, boot, *data.values()):
            os.close(fd)
    results = _Reader(read_end, CHANNEL_CAP)
    output = _Reader(proc.stdout.fileno(), limits.output_bytes, tail=True)
    try:
        proc.stdin.write(harness_sources().encode("utf-8") + b"\n" + request.to_json().encode("utf-8"))
        proc.stdin.close()
    except OSError:
        pass
    watchdog = _Watchdog(proc.pid, limits)
    timed_out = False
    try:
        timed_out = _wait(proc, lambda: _deadline(started, limits, results), progress, results, watchdog)
    finally:
        _end(proc)
    results.join()
    output.join()
    os.close(read_end)
    proc.stdout.close()
    channel = read_messages(results.data, nonce, truncated=results.overflow)
    seconds = time.monotonic() - started
    out = ChildResult(channel.final, proc.returncode, seconds, timed_out,
                      output.data.decode("utf-8", "replace"), latest=channel.latest, output_bytes=output.total,
                      survivors=len(_descendants(proc.pid)))
    out.problem = _problem(channel, out, limits, watchdog.broken)
    return out


def _encoded(files: dict[str, bytes]) -> dict[str, str]:
    """The files for the job (base64), without a path that would leave the folder."""
    out = {}
    for rel, content in files.items():
        path = PurePosixPath(rel)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            continue
        out[str(path)] = base64.b64encode(content).decode("ascii")
    return out


def _problem(channel: Channel, out: ChildResult, limits: Limits, broken: str) -> str:
    """Why there is no final result ("" when there is one)."""
    if channel.problem:
        return channel.problem
    if channel.final is not None:
        return ""
    if broken:
        return broken
    if out.timed_out:
        return f"stopped at the {limits.wall_s:.0f} s wall-clock limit before it reported"
    if out.returncode is not None and out.returncode < 0:
        return f"killed by signal {-out.returncode} ({_signal_name(-out.returncode)})"
    if out.returncode is not None and out.returncode > 128:
        return f"killed by signal {out.returncode - 128} ({_signal_name(out.returncode - 128)})"
    return f"the harness process ended (exit {out.returncode}) without a result"


class _Reader(threading.Thread):
    """Drains a pipe in the background, keeping at most ``cap`` bytes (the head, or the tail)."""

    def __init__(self, fd: int, cap: int, tail: bool = False) -> None:
        super().__init__(daemon=True)
        self.fd, self.cap, self.tail = fd, cap, tail
        self.chunks = bytearray()
        self.total = 0
        self.overflow = False
        self.start()

    def run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            if self.tail:
                self.chunks += chunk
                if len(self.chunks) > self.cap:
                    del self.chunks[:len(self.chunks) - self.cap]
            elif len(self.chunks) + len(chunk) <= self.cap:
                self.chunks += chunk
            else:
                self.overflow = True  # keep draining, so the child never blocks on a full pipe

    @property
    def data(self) -> bytes:
        return bytes(self.chunks)

    def latest(self, key: str) -> Any:
        """A field of the latest complete checkpoint (not trusted: for progress and bounded limits)."""
        text = bytes(self.chunks)
        end = text.rfind(b"\n")
        start = text.rfind(b"\n", 0, end) + 1 if end > 0 else -1
        if end <= 0:
            return None
        try:
            return json.loads(text[start:end]).get("result", {}).get(key)
        except (ValueError, AttributeError, RecursionError):
            return None

    def phase(self) -> str:
        """The phase of the latest complete checkpoint, for progress display only (not trusted)."""
        phase = self.latest("phase")
        return phase if isinstance(phase, str) else ""


class _Watchdog:
    """Aggregate limits over every process of the sandbox (resident memory, process count)."""

    def __init__(self, pid: int, limits: Limits) -> None:
        self.pid, self.limits = pid, limits
        self.broken = ""
        self.peak_rss = 0

    def check(self) -> bool:
        """False (and ``broken`` says why) when the sandbox passed a limit."""
        pids = _descendants(self.pid)
        rss = sum(_resident(p) for p in pids)
        self.peak_rss = max(self.peak_rss, rss)
        cap = self.limits.total_memory_bytes or self.limits.memory_bytes
        if rss > cap:
            self.broken = (f"the sandbox's processes held {rss / 2**30:.1f} GiB together, over the "
                           f"{cap / 2**30:.1f} GiB limit")
        elif len(pids) > self.limits.processes + 2:  # and bwrap's own reaper, where it has one
            self.broken = f"the sandbox ran {len(pids) - 2} processes, over the limit of {self.limits.processes}"
        return not self.broken


def _deadline(started: float, limits: Limits, results: _Reader) -> float:
    """The wall-clock limit: ``wall_s``, grown to what the driver asked for (plus the margin the
    harness keeps for starting and reporting), never beyond ``max_wall_s``."""
    wanted = results.latest("wanted_s")
    grown = wanted + WALL_MARGIN_S if isinstance(wanted, (int, float)) and wanted == wanted else 0.0
    return started + min(max(limits.wall_s, grown), max(limits.wall_s, limits.max_wall_s))


#: Seconds of a run's wall-clock limit beyond the driver's budget (start-up, data, the report).
WALL_MARGIN_S = 25.0


def _wait(proc: subprocess.Popen, deadline: Any, progress: Any, results: _Reader, watchdog: _Watchdog) -> bool:
    """Wait for the child under the limits, reporting progress; True when it hit the wall-clock
    limit (``deadline()``, read again on every turn: it grows when the driver asks for time)."""
    while True:
        left = deadline() - time.monotonic()
        if left <= 0:
            return True
        try:
            proc.wait(timeout=min(left, 0.25))
            return False
        except subprocess.TimeoutExpired:
            pass
        if not watchdog.check():
            return False
        if progress is not None:
            progress(time.monotonic(), {"phase": results.phase()})


def _end(proc: subprocess.Popen) -> None:
    """End the sandbox: every process in its namespaces, then bwrap. Killing the namespace's init
    (bwrap's child) tears the PID namespace down; bwrap then exits by itself and is reaped here,
    so nothing is left behind, not even a zombie."""
    if proc.poll() is None:
        for pid in _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass
    for _ in range(50):  # the namespace's processes are reaped by the kernel shortly after
        if not _descendants(proc.pid):
            break
        time.sleep(0.02)


def _descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (those of the sandbox), from /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, stack = [], list(children.get(pid, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(children.get(p, []))
    return out


def _resident(pid: int) -> int:
    """Proportional resident memory of a process (shared pages split between their users, so that
    forked workers are not counted twice), or its resident set where the kernel lacks smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"

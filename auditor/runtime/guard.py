"""The sandbox's inner wall: what submission code may not do (runs inside the sandbox).

The parent process already runs the child with a scrubbed environment, resource limits and a
temporary working folder (:mod:`auditor.runtime.sandbox`). Inside, an audit hook
(:func:`sys.addaudithook`, which cannot be removed once added) refuses

- network access: ``socket.connect``/``bind``/``sendto``, name lookups, ``urllib`` requests;
- running programs: ``subprocess``, ``os.system``, ``os.exec*``, ``os.posix_spawn``, ``fork``;
- writing, deleting or renaming anything outside the temporary folder;
- reading or listing outside the temporary folder and the Python installation.

Each refusal raises ``PermissionError`` in the submission and is recorded, so the report can
say what was attempted. ``subprocess`` calls of ``nvidia-smi`` (which every script makes
to log its GPU) return an empty output instead of failing, and are recorded as well.

The submission's own native code (a C helper it compiles with ``gcc`` and loads with
``ctypes``, a shared library or compiled module it ships) is out of the hook's sight, so it
runs only when the kernel confines the child (:mod:`auditor.runtime.confine`: Landlock and no
network device); then compiler calls whose files all lie in the sandbox folder run for real.
Anywhere else compiling and loading such code is refused.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import os
import re
import site
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

#: Programs whose output scripts only log: they get an empty answer instead of an error.
HARMLESS_PROGRAMS = frozenset({"nvidia-smi", "nvcc", "hostname", "uname", "lscpu", "free", "df"})
#: Programs that only transform their input for a size estimate (a minifier sizing the code):
#: they answer with their input unchanged.
ECHO_PROGRAMS = frozenset({"pyminify", "python-minifier"})
#: C compilers a submission may run on its own sources when native code is allowed.
COMPILER = re.compile(r"^(gcc|g\+\+|cc|c\+\+|clang|clang\+\+)(-\d+(\.\d+)*)?$")
#: The real subprocess entry points, kept before the guard replaces them.
_REAL = {name: getattr(subprocess, name) for name in ("Popen", "run", "check_output", "call", "check_call")}

NETWORK_EVENTS = frozenset({
    "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.gethostbyname_ex",
    "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect", "imaplib.open",
    "poplib.connect", "nntplib.connect", "telnetlib.Telnet.open", "webbrowser.open",
})
PROCESS_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
    "os.startfile", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
})
WRITE_PATH_EVENTS = frozenset({
    "os.remove", "os.unlink", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate", "os.symlink",
    "os.link", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree",
    "os.chflags", "os.lchmod", "os.setxattr", "os.removexattr",
})
LIST_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "os.walk"})


class Refused(FileNotFoundError, PermissionError):
    """What a refused action raises: a permission error that also reads as "not installed", so
    that scripts which fall back when a program or package is missing do so."""


class Guard:
    """The audit hook and its record of refused and tolerated attempts."""

    def __init__(self, workdir: str, extra_read_roots: list[str] | None = None, native_code: bool = False) -> None:
        self.workdir = os.path.realpath(workdir)
        #: Whether the submission's own compiled code may run (the kernel confines the child).
        self.native_code = native_code
        self._spawning = False
        roots = {self.workdir, sys.prefix, sys.base_prefix, sys.exec_prefix, "/usr", "/lib", "/lib64", "/lib32",
                 "/etc", "/proc", "/sys", "/dev", "/bin", "/sbin", "/opt", "/run/shm", "/dev/shm"}
        for getter in (site.getsitepackages,):
            try:
                roots.update(getter())
            except AttributeError:  # pragma: no cover - virtualenv quirks
                pass
        for key in ("stdlib", "platstdlib", "purelib", "platlib"):
            path = sysconfig.get_paths().get(key)
            if path:
                roots.add(path)
        roots.update(p for p in sys.path if p and os.path.isabs(p))
        roots.update(extra_read_roots or [])
        self.read_roots = tuple(sorted({os.path.realpath(r) for r in roots if r}))
        self.write_roots = (self.workdir, "/dev/null", "/dev/shm")
        self.events: list[dict[str, str]] = []
        self.active = False

    # -- policy ------------------------------------------------------------------------------

    def _under(self, path: Any, roots: tuple[str, ...]) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            text = os.fsdecode(path)
        except TypeError:
            return True
        if not text:
            return True
        full = os.path.realpath(os.path.join(os.getcwd(), text)) if not os.path.isabs(text) else os.path.realpath(text)
        return any(full == r or full.startswith(r.rstrip("/") + "/") for r in roots)

    def note(self, kind: str, detail: str, blocked: bool = True) -> None:
        if len(self.events) < 200:
            self.events.append({"kind": kind, "detail": detail[:300], "blocked": blocked})

    def refuse(self, kind: str, detail: str) -> None:
        self.note(kind, detail)
        raise Refused(f"blocked by the pgolf-audit sandbox: {kind}: {detail}")

    def hook(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event in NETWORK_EVENTS:
            self.refuse("network", f"{event} {_short(args)}")
        elif event == "socket.__new__":
            family = args[1] if len(args) > 1 else None
            if family in (socket.AF_INET, socket.AF_INET6):
                self.refuse("network", f"socket {_short(args)}")
        elif event in PROCESS_EVENTS:
            if not self._spawning:
                self.refuse("process", f"{event} {_short(args)}")
        elif event == "ctypes.dlopen":
            name = args[0] if args else None
            if isinstance(name, (str, bytes, os.PathLike)) and os.fsdecode(name) and \
                    self._under(name, (self.workdir,)):
                if not self.native_code:
                    self.refuse("native", f"loading {os.fsdecode(name)!r}: the submission's own native code runs "
                                "only where the kernel confines the sandbox (Landlock, no network device)")
                self.note("native", f"loaded {os.path.basename(os.fsdecode(name))} (confined by the kernel)",
                          blocked=False)
        elif event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writing = False
            if isinstance(mode, str) and any(c in mode for c in "wax+"):
                writing = True
            if isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
                writing = True
            if writing:
                if not self._under(path, self.write_roots):
                    self.refuse("write", f"open({path!r}, {mode!r})")
            elif not self._under(path, self.read_roots):
                self.refuse("read", f"open({path!r})")
        elif event in WRITE_PATH_EVENTS:
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and not self._under(path, self.write_roots):
                    self.refuse("write", f"{event} {path!r}")
        elif event in ("os.rename", "os.replace"):
            for path in args[:2]:
                if isinstance(path, (str, bytes, os.PathLike)) and not self._under(path, self.write_roots):
                    self.refuse("write", f"{event} {path!r}")
        elif event in LIST_EVENTS:
            path = args[0] if args else "."
            if isinstance(path, (str, bytes, os.PathLike)) and not self._under(path, self.read_roots):
                self.refuse("read", f"{event} {path!r}")
        elif event == "sys.addaudithook":
            self.refuse("process", "sys.addaudithook")

    def may_compile(self, args: Any, kwargs: dict[str, Any]) -> bool:
        """Whether a program call is a C compiler run on files of the sandbox folder only, while
        native code is allowed."""
        if not self.native_code or kwargs.get("shell") or not isinstance(args, (list, tuple)) or not args:
            return False
        if not COMPILER.match(Path(os.fsdecode(args[0])).name):
            return False
        paths = []
        for arg in (os.fsdecode(a) for a in args[1:] if isinstance(a, (str, bytes, os.PathLike))):
            if arg.startswith("-o") and len(arg) > 2:
                paths.append(arg[2:])
            elif not arg.startswith("-"):
                paths.append(arg)
        return bool(paths) and all(self._under(p, (self.workdir,)) for p in paths)

    @contextlib.contextmanager
    def spawning(self) -> Any:
        """Let one allowed program start (the audit hook would refuse it)."""
        self._spawning = True
        try:
            yield
        finally:
            self._spawning = False

    # -- installing ---------------------------------------------------------------------------

    def install(self) -> None:
        sys.addaudithook(self.hook)
        self._patch_subprocess()
        self._patch_socket()
        self._patch_extension_modules()
        self.active = True

    def _patch_extension_modules(self) -> None:
        """Compiled modules of the submission's folder load only when native code is allowed
        (importing one raises no audit event of its own)."""
        guard = self
        loader = importlib.machinery.ExtensionFileLoader
        original = loader.create_module

        def create_module(self_: Any, spec: Any) -> Any:
            path = getattr(spec, "origin", None) or getattr(self_, "path", "")
            if path and guard._under(path, (guard.workdir,)):
                if not guard.native_code:
                    guard.refuse("native", f"importing the compiled module {os.path.basename(path)!r}: the "
                                 "submission's own native code runs only where the kernel confines the sandbox")
                guard.note("native", f"imported {os.path.basename(path)} (confined by the kernel)", blocked=False)
            return original(self_, spec)

        loader.create_module = create_module  # type: ignore[method-assign]

    def _patch_socket(self) -> None:
        guard = self

        def blocked(self_: Any, *args: Any, **kwargs: Any) -> Any:
            guard.refuse("network", f"socket.connect {args[:1]!r}")

        socket.socket.connect = blocked  # type: ignore[method-assign]
        socket.socket.connect_ex = blocked  # type: ignore[method-assign]
        socket.create_connection = lambda *a, **k: guard.refuse("network", f"create_connection {a[:1]!r}")  # type: ignore[assignment]

    def _patch_subprocess(self) -> None:
        guard = self

        def program(cmd: Any) -> str:
            if isinstance(cmd, (list, tuple)) and cmd:
                first = cmd[0]
            else:
                first = str(cmd).split()[0] if str(cmd).split() else ""
            return Path(os.fsdecode(first)).name if isinstance(first, (str, bytes, os.PathLike)) else str(first)

        class FakePopen:
            def __new__(cls, args: Any, *a: Any, **kwargs: Any) -> Any:
                if guard.may_compile(args, kwargs):  # the real program, in a real Popen
                    guard.note("native", f"compiled (confined by the kernel): {_short((args,))}", blocked=False)
                    with guard.spawning():
                        return _REAL["Popen"](args, *a, **kwargs)
                return super().__new__(cls)

            def __init__(self, args: Any, *a: Any, **kwargs: Any) -> None:
                name = program(args)
                if name not in HARMLESS_PROGRAMS and name not in ECHO_PROGRAMS:
                    guard.refuse("process", f"subprocess {_short((args,))}")
                what = "its input back" if name in ECHO_PROGRAMS else "empty output"
                guard.note("process", f"subprocess {_short((args,))} answered with {what}", blocked=False)
                self.args = args
                self.echo = name in ECHO_PROGRAMS
                self.returncode = 0
                self.pid = -1
                text = kwargs.get("text") or kwargs.get("universal_newlines") or kwargs.get("encoding")
                self._empty = "" if text else b""
                self.stdout = self.stderr = self.stdin = None

            def communicate(self, input: Any = None, *a: Any, **k: Any) -> tuple[Any, Any]:
                if self.echo and input is not None:
                    return input, self._empty
                return self._empty, self._empty

            def wait(self, *a: Any, **k: Any) -> int:
                return 0

            def poll(self) -> int:
                return 0

            def kill(self) -> None:
                pass

            terminate = kill

            def __enter__(self) -> FakePopen:
                return self

            def __exit__(self, *exc: Any) -> None:
                pass

        def run(args: Any, *a: Any, **kwargs: Any) -> subprocess.CompletedProcess:
            proc = FakePopen(args, **kwargs)
            out, err = proc.communicate(kwargs.get("input"))
            return subprocess.CompletedProcess(args, 0, out, err)

        def check_output(args: Any, *a: Any, **kwargs: Any) -> Any:
            return FakePopen(args, **kwargs).communicate(kwargs.get("input"))[0]

        def call(args: Any, *a: Any, **kwargs: Any) -> int:
            FakePopen(args, **kwargs)
            return 0

        def compilers_run(name: str, fake: Any) -> Any:
            """``fake``, except for allowed compiler calls, which go to the real function (whose
            Popen is FakePopen above, which starts the real program)."""
            def entry(args: Any, *a: Any, **kwargs: Any) -> Any:
                if guard.may_compile(args, kwargs):
                    return _REAL[name](args, *a, **kwargs)
                return fake(args, *a, **kwargs)

            return entry

        def getoutput(cmd: Any, *a: Any, **k: Any) -> str:
            FakePopen(cmd, text=True)
            return ""

        subprocess.Popen = FakePopen  # type: ignore[misc,assignment]
        subprocess.run = compilers_run("run", run)  # type: ignore[assignment]
        subprocess.check_output = compilers_run("check_output", check_output)  # type: ignore[assignment]
        subprocess.call = compilers_run("call", call)  # type: ignore[assignment]
        subprocess.check_call = compilers_run("check_call", call)  # type: ignore[assignment]
        subprocess.getoutput = getoutput  # type: ignore[assignment]
        subprocess.getstatusoutput = lambda cmd, *a, **k: (0, getoutput(cmd))  # type: ignore[assignment]
        os.system = lambda cmd: (FakePopen(cmd), 0)[1]  # type: ignore[assignment]
        os.popen = lambda cmd, *a, **k: guard.refuse("process", f"os.popen {cmd!r}")  # type: ignore[assignment]


HOST_TEMP = ("/tmp", "/var/tmp", "/dev/shm")


def redirect_host_temp(workdir: str, guard: Guard | None = None) -> None:
    """Paths in the machine's shared temporary folders (:data:`HOST_TEMP`; phased-TTT scripts
    hard-code counter files there for their ranks) are moved into the sandbox's own folder: the
    script finds its files, and the machine's temporary folders are never written."""
    import builtins
    import io

    work = os.path.realpath(workdir)
    target = os.path.join(work, "tmp", "host")
    # the Python installation may itself live under /tmp: its files are never moved
    installed = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})

    def moved(path: Any) -> Any:
        if isinstance(path, (str, os.PathLike)) and not isinstance(path, bytes):
            text = os.fspath(path)
            if os.path.isabs(text) and not (text == work or text.startswith(work + "/")) and not any(
                    text == p or text.startswith(p + "/") for p in installed):
                for root in HOST_TEMP:
                    if text == root or text.startswith(root + "/"):
                        new = os.path.join(target, root.strip("/").replace("/", "_"), text[len(root):].lstrip("/"))
                        os.makedirs(os.path.dirname(new), exist_ok=True)
                        if guard is not None:
                            guard.note("redirect", f"{text} -> sandbox folder", blocked=False)
                        return new
        return path

    def first_arg(fn: Any) -> Any:
        def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
            return fn(moved(path), *args, **kwargs)

        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper

    def two_args(fn: Any) -> Any:
        def wrapper(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            return fn(moved(src), moved(dst), *args, **kwargs)

        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
        return wrapper

    builtins.open = io.open = first_arg(io.open)  # type: ignore[assignment]
    for name in ("open", "remove", "unlink", "stat", "makedirs", "mkdir", "listdir", "scandir", "rmdir", "truncate"):
        if hasattr(os, name):
            setattr(os, name, first_arg(getattr(os, name)))
    for name in ("exists", "isfile", "isdir", "getsize"):
        setattr(os.path, name, first_arg(getattr(os.path, name)))
    for name in ("rename", "replace"):
        setattr(os, name, two_args(getattr(os, name)))


def _short(args: tuple) -> str:
    text = repr(args)
    return text if len(text) <= 200 else text[:197] + "..."

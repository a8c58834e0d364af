"""The sandbox's kernel-level wall: Landlock rules the child puts on itself before any submission
code runs (inside the sandbox).

The audit hook of :mod:`auditor.runtime.guard` sees what Python code does. Native code does not
pass through it: a C helper that a submission compiles and loads with ``ctypes`` (online n-gram
states, PR #2135) could open, write or send anything its user can. Landlock (Linux 5.13 and
later, no privilege needed) lets a process restrict itself and every process it starts, for good:

- files may be created, written, truncated, renamed or deleted only inside the sandbox's own
  folder (and ``/dev/null``, ``/dev/shm``);
- files and folders may be read only under the roots the guard allows (the sandbox folder, the
  Python installation, system libraries and headers), so no secret in the caller's home can be
  read and then written into the result;
- from Landlock ABI 4, no TCP connection or bind at all; from ABI 6, no signal to a process
  outside the sandbox.

:func:`confine` applies what the kernel offers and says what it got. The guard lets the
submission's own native code run only when the files are confined and the child has no network
device (its own network namespace, which bubblewrap gives it: :mod:`auditor.runtime.sandbox`); anywhere
else such code is refused, as before. Everything here is best effort for the rest: a kernel
without Landlock leaves the Python-level wall as it was.
"""

from __future__ import annotations

import ctypes
import os
import socket
from dataclasses import dataclass

# Syscall numbers of the unified table (the same on x86-64 and arm64).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (linux/landlock.h).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2, ABI 3
READS = READ_FILE | READ_DIR
WRITES_V1 = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO \
    | MAKE_BLOCK | MAKE_SYM
# Network rights (ABI 4) and scopes (ABI 6).
BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

#: Writable besides the sandbox folder: the null device and shared memory (torch's tensor sharing).
EXTRA_WRITABLE = ("/dev/null", "/dev/shm")


@dataclass
class Confinement:
    """What the kernel confines the sandboxed process to (all False without Landlock)."""

    abi: int = 0
    files: bool = False  # writes only in the sandbox folder, reads only under the allowed roots
    tcp: bool = False  # no TCP connect or bind
    signals: bool = False  # no signal to a process outside the sandbox
    no_network_device: bool = False  # a network namespace with nothing but loopback
    problem: str = ""

    @property
    def native_code_allowed(self) -> bool:
        """Whether the submission's own compiled code may run: nothing outside the folder can be
        written, nothing outside the allowed roots read, and there is no network to reach."""
        return self.files and self.no_network_device

    def to_dict(self) -> dict[str, object]:
        return {"landlock_abi": self.abi, "files": self.files, "tcp": self.tcp, "signals": self.signals,
                "no_network_device": self.no_network_device, "native_code": self.native_code_allowed,
                **({"problem": self.problem} if self.problem else {})}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version of the running kernel, 0 when there is none."""
    try:
        libc = _libc()
        version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def only_loopback() -> bool:
    """Whether the process sees no network device but loopback (its own network namespace)."""
    try:
        return all(name == "lo" for _, name in socket.if_nameindex())
    except OSError:
        return False


def confine(workdir: str, read_roots: tuple[str, ...]) -> Confinement:
    """Restrict this process and its future children with Landlock; returns what was applied."""
    out = Confinement(abi=landlock_abi(), no_network_device=only_loopback())
    if out.abi < 1:
        out.problem = "the kernel offers no Landlock"
        return out
    writes = WRITES_V1 | (REFER if out.abi >= 2 else 0) | (TRUNCATE if out.abi >= 3 else 0)
    attr = _RulesetAttr(handled_access_fs=writes | READS)
    size = 8
    if out.abi >= 4:
        attr.handled_access_net = BIND_TCP | CONNECT_TCP  # handled with no rule: denied
        size = 16
    if out.abi >= 6:
        attr.scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET
        size = 24
    libc = _libc()
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        out.problem = f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}"
        return out
    try:
        rights = {os.path.realpath(path): writes | READS for path in (workdir, *EXTRA_WRITABLE)}
        for root in read_roots:
            real = os.path.realpath(root)
            rights[real] = rights.get(real, 0) | READS
        for path, allowed in rights.items():
            _add_rule(libc, ruleset, path, allowed)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            out.problem = f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}"
            return out
        if libc.syscall(_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            out.problem = f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}"
            return out
    finally:
        os.close(ruleset)
    out.files = True
    out.tcp = out.abi >= 4
    out.signals = out.abi >= 6
    return out


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: str, allowed: int) -> None:
    """Allow ``allowed`` beneath ``path``; a path that does not exist is skipped. Files (not
    folders) take only the rights that apply to files."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            allowed &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
        rule = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
        libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)

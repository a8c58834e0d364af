"""The kernel-level wall: native code of a submission runs only where Landlock and a network
namespace confine it, and then cannot write outside the sandbox folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from auditor.runtime.confine import landlock_abi
from auditor.runtime.sandbox import PACKAGE_ROOT, child_env


def _private_network() -> None:
    """A user and network namespace of its own (between fork and exec; best effort)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).unshare(0x10000000 | 0x40000000)  # CLONE_NEWUSER | CLONE_NEWNET
    except Exception:  # never raise between fork and exec
        pass

HELPER = textwrap.dedent("""
    #include <stdio.h>
    int add(int a, int b) { return a + b; }
    int write_to(const char *path) { FILE *f = fopen(path, "w"); if (!f) return 0; fputs("x", f); fclose(f); return 1; }
""")

EXTENSION = textwrap.dedent("""
    #include <Python.h>
    static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
    static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pgext", NULL, -1, methods};
    PyMODINIT_FUNC PyInit_pgext(void) { return PyModule_Create(&module); }
""")

CHILD = textwrap.dedent('''
    import ctypes, json, os, subprocess, sys
    sys.path.insert(0, {root!r})
    from auditor.runtime.confine import confine
    from auditor.runtime.guard import Guard
    work = {work!r}
    guard = Guard(work)
    if {confined!r}:
        confinement = confine(work, guard.read_roots)
        guard.native_code = confinement.native_code_allowed
    guard.install()
    outcome = {{"native_code": guard.native_code}}
    def attempt(name, fn):
        try:
            outcome[name] = fn()
        except PermissionError:
            outcome[name] = "refused"
        except Exception as exc:
            outcome[name] = f"failed: {{type(exc).__name__}}: {{exc}}"
    attempt("compile", lambda: subprocess.run(["gcc", "-shared", "-fPIC", "-o", os.path.join(work, "helper.so"),
                                               os.path.join(work, "helper.c")], check=True).returncode)
    attempt("compile_to_outside", lambda: subprocess.run(["gcc", "-shared", "-fPIC", "-o", {outside_so!r},
                                                          os.path.join(work, "helper.c")]).returncode)
    so = os.path.join(work, "helper.so") if os.path.exists(os.path.join(work, "helper.so")) else os.path.join(work, "shipped.so")
    attempt("load", lambda: ctypes.CDLL(so).add(2, 3))
    attempt("native_write_outside", lambda: ctypes.CDLL(so).write_to({outside!r}.encode()))
    attempt("native_write_inside", lambda: ctypes.CDLL(so).write_to(os.path.join(work, "in.txt").encode()))
    sys.path.insert(0, work)
    attempt("import_compiled_module", lambda: __import__("pgext").answer())
    guard.active = False
    print(json.dumps({{"outcome": outcome, "events": guard.events}}))
''')

needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists(),
    reason="no C compiler or no Python headers")


def _run(tmp_path, confined: bool) -> dict:
    work = tmp_path / "work"
    (work / "tmp").mkdir(parents=True)  # TMPDIR of the sandbox, where the compiler writes
    (work / "helper.c").write_text(HELPER)
    # a library shipped ready-made (built here, outside the sandbox)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(work / "shipped.so"), str(work / "helper.c")], check=True)
    (tmp_path / "pgext.c").write_text(EXTENSION)  # and a compiled module, shipped ready-made
    subprocess.run(["gcc", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", "-o",
                    str(work / f"pgext{sysconfig.get_config_var('EXT_SUFFIX')}"), str(tmp_path / "pgext.c")], check=True)
    code = CHILD.format(root=str(PACKAGE_ROOT), work=str(work), confined=confined,
                        outside=str(tmp_path / "outside.txt"), outside_so=str(tmp_path / "outside.so"))
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120,
                          env={**child_env(1), "TMPDIR": str(work / "tmp")}, cwd=work, preexec_fn=_private_network if confined else None)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "outside.so").exists()
    return report


@needs_gcc
def test_without_the_kernel_wall_native_code_is_refused(tmp_path):
    report = _run(tmp_path, confined=False)
    outcome = report["outcome"]
    assert outcome["native_code"] is False
    assert outcome["compile"] == "refused" and outcome["compile_to_outside"] == "refused"
    assert outcome["load"] == "refused"  # the shipped library does not load either
    assert outcome["import_compiled_module"] == "refused"
    assert {"process", "native"} <= {e["kind"] for e in report["events"] if e["blocked"]}


@needs_gcc
@pytest.mark.skipif(landlock_abi() < 1, reason="the kernel offers no Landlock")
def test_behind_the_kernel_wall_native_code_runs_and_stays_in_its_folder(tmp_path):
    report = _run(tmp_path, confined=True)
    outcome = report["outcome"]
    if not outcome["native_code"]:  # no network namespace for unprivileged users here
        assert outcome["compile"] == "refused" and outcome["load"] == "refused"
        pytest.skip("no private network namespace: native code stays refused")
    assert outcome["compile"] == 0 and outcome["load"] == 5
    assert outcome["compile_to_outside"] == "refused"  # the guard refuses an output outside the folder
    assert outcome["native_write_outside"] == 0  # fopen fails: the kernel refuses it
    assert outcome["native_write_inside"] == 1
    assert outcome["import_compiled_module"] == 42
    assert any(e["kind"] == "native" and not e["blocked"] for e in report["events"])

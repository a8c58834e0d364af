"""The sandbox's first code loads the harness as private modules: nothing in ``sys.modules``, on
``sys.path`` or in a file name says what runs, and imports inside the harness still work."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from auditor.runtime import boot
from auditor.runtime.sandbox import child_env, harness_sources

from ..conftest import REPO_ROOT

WORDS = ("auditor", "harness", "driver", "probe")

# Run with -I from the root folder (isolated mode: no PYTHONPATH, no working folder on sys.path),
# the harness's sources on standard input as the sandbox gives them.
LOAD = textwrap.dedent('''
    import gc, json, sys, types
    names = {"__name__": "boot"}
    exec(compile(open(sys.argv[1]).read(), "boot", "exec"), names)
    before = set(sys.modules)
    private = names["Private"](json.loads(sys.stdin.buffer.readline()))
    driver = private.load("auditor.runtime.driver")
    words = %r
    def named(text):
        return any(w in str(text).lower() for w in words)
    import os
    def installed(m):  # a library's own module from disk (cuda.bindings.driver), not the harness
        f = getattr(m, "__file__", None) or ""
        return bool(f) and os.path.exists(f) and "auditor" not in f.lower()
    seen = {}
    seen["sys.modules"] = sorted(n for n, m in sys.modules.items()
                                 if (named(n) or named(getattr(m, "__file__", ""))) and not installed(m))
    seen["added"] = sorted(n for n in set(sys.modules) - before if n.startswith("_lib"))
    seen["sys.path"] = [p for p in sys.path if named(p)]
    seen["module objects"] = sorted(m.__name__ for m in gc.get_objects()
                                    if isinstance(m, types.ModuleType) and named(vars(m).get("__name__", ""))
                                    and not installed(m))
    seen["file names"] = sorted({f.__code__.co_filename for m in private.modules.values()
                                 for f in vars(m).values() if isinstance(f, types.FunctionType)
                                 and named(f.__code__.co_filename)})
    seen["classes"] = sorted({c.__module__ for m in private.modules.values() for c in vars(m).values()
                              if isinstance(c, type) and named(c.__module__)})
    # an import inside the harness's code gets the module the driver holds
    space = {"__builtins__": private.builtins}
    exec("from auditor.runtime import track as t\\nimport auditor.runtime.knobs as k\\nimport auditor.runtime.layout", space)
    same = [space["t"] is driver.track, space["k"] is private.modules["auditor.runtime.knobs"],
            space["auditor"] is private.modules["auditor"]]
    job = driver.protocol.Job.from_json(json.dumps({"script": "a.py", "file": "a.py", "nonce": "n", "result_fd": 3,
                                                    "input": "", "files": {"a.py": ""}, "folder": "x"}))
    print(json.dumps({"seen": seen, "same": same, "names": [driver.__name__, driver.main.__code__.co_filename],
                      "job": [job.folder, job.files], "flags": sys.flags.isolated}))
''')


def test_the_harness_loads_without_a_trace_of_its_names():
    done = subprocess.run([sys.executable, "-I", "-c", LOAD % (WORDS,), str(REPO_ROOT / "auditor" / "runtime" / "boot.py")],
                          input=harness_sources() + "\n", capture_output=True, text=True, timeout=120, cwd="/",
                          env=child_env(1))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["seen"] == {"sys.modules": [], "added": [], "sys.path": [], "module objects": [], "file names": [],
                              "classes": []}
    assert report["same"] == [True, True, True]
    assert report["names"] == ["_lib.runtime.main", "<frozen _lib.runtime.main>"]
    assert report["job"] == ["x", {"a.py": ""}]
    assert report["flags"] == 1  # it works in isolated mode


def test_neutral_names_avoid_the_words_that_name_the_tool():
    for name in ("auditor.runtime.driver", "auditor.runtime.probes", "auditor.runtime.probing",
                 "auditor.runtime.harness", "auditor.runtime.track"):
        assert not any(w in boot.neutral_name(name) or w in boot.neutral_filename(name) for w in WORDS)
    assert boot.neutral_filename("auditor.runtime.track") == "<frozen _lib.runtime.track>"


def test_the_sources_are_the_whole_package():
    sources = json.loads(harness_sources())
    assert {"auditor", "auditor.runtime.driver", "auditor.runtime.boot", "auditor.static.flow"} <= set(sources)
    assert "\n" not in harness_sources()  # one line: the job follows it on standard input

"""The sandbox's first code: it starts the driver the way a normal run starts a script
(sandbox side; standard library only).

The parent writes this file's text where the submission's script will be (the records folder
of a parameter-golf checkout, :mod:`auditor.runtime.layout`) and starts ``python
records/track_10min_16mb/<folder>/train_gpt.py`` there, so that ``/proc/self/cmdline``,
``sys.argv``, ``sys.flags``, ``sys.path[0]``, ``__main__.__file__`` and the outermost frame are
those of a normal run. Run as ``__main__``, it reads the harness's sources from the first line
of standard input (a JSON object, module name to source text; the job follows) and loads them
as *private* modules (:class:`Private`):

- none of them is in ``sys.modules`` or on ``sys.path``, and no finder is added to
  ``sys.meta_path``; nothing of the harness is on the sandbox's file system;
- each is compiled with a neutral file name (``<frozen _lib.runtime.main>``) and named
  neutrally (:func:`neutral_name`): a frame's file name, a module's ``__name__`` and a class's
  ``__module__`` name neither the tool nor its driver, harness or probes;
- their ``import`` statements go through the ``__import__`` of their own builtins, which serves
  harness modules from the private table (a lazy import inside a function gets the same module
  object) and everything else from the interpreter's import system.

The driver then replaces this file with the submission's own script. Hiding names is cheap and
only raises the cost of noticing the audit: a determined script can still tell (the shrunk
sizes, the stand-ins for CUDA, the frames below its ``main``). The defence is that runtime
evidence is asymmetric: a script that behaves only when it notices the probes gains nothing,
since a pass never clears a static error.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import types
from typing import Any

#: The harness's top-level package.
PACKAGE = "auditor"
#: Words of module names a submission must not see, and what it sees instead.
_NEUTRAL = {"auditor": "_lib", "driver": "main", "probes": "checks", "probing": "checking", "harness": "outer",
            "boot": "start"}


def neutral_name(name: str) -> str:
    """The name a harness module has in the sandbox (``auditor.runtime.driver`` -> ``_lib.runtime.main``)."""
    return ".".join(_NEUTRAL.get(part, part) for part in name.split("."))


def neutral_filename(name: str) -> str:
    """The file name a harness module's code carries (frames, tracebacks, ``co_filename``)."""
    return f"<frozen {neutral_name(name)}>"


class Private:
    """The harness's modules, loaded from source text and kept out of the import system's tables."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources
        self.packages = {name.rsplit(".", i)[0] for name in sources for i in range(1, name.count(".") + 1)}
        self.modules: dict[str, types.ModuleType] = {}
        self.real: dict[str, str] = {}  # neutral name -> real name (relative imports)
        # The harness's own builtins: the interpreter's, but for ``__import__``. A copy taken now:
        # later patches of ``builtins`` (the sandbox's redirection of host temporary paths) are
        # for the submission's code, not the harness's.
        self.builtins: dict[str, Any] = dict(vars(builtins))
        self.builtins["__import__"] = self.import_

    def __contains__(self, name: str) -> bool:
        return name in self.sources or name in self.packages

    def load(self, name: str) -> types.ModuleType:
        """The module ``name`` (and its parents), executed once."""
        module = self.modules.get(name)
        if module is not None:
            return module
        if name not in self:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        parent, _, leaf = name.rpartition(".")
        above = self.load(parent) if parent else None
        module = self.modules.get(name)  # a parent's code may have imported it
        if module is not None:
            return module
        module = types.ModuleType(neutral_name(name))
        module.__dict__["__builtins__"] = self.builtins
        module.__package__ = neutral_name(name if name in self.packages else parent)
        if name in self.packages:
            module.__path__ = []
        self.modules[name] = module
        self.real[module.__name__] = name
        # in sys.modules while its code runs only: dataclasses resolves a class's string
        # annotations through its module there
        sys.modules[module.__name__] = module
        try:
            source = self.sources.get(name, "")
            exec(compile(source, neutral_filename(name), "exec", dont_inherit=True), module.__dict__)
        except BaseException:
            del self.modules[name]
            raise
        finally:
            sys.modules.pop(module.__name__, None)
        if above is not None:
            setattr(above, leaf, module)
        return module

    def import_(self, name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        """``__import__`` for the harness's code."""
        if level:
            package = self.real.get((globals or {}).get("__package__") or "", "")
            for _ in range(level - 1):
                package = package.rpartition(".")[0]
            name = f"{package}.{name}" if name else package
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            return builtins.__import__(name, globals, locals, fromlist or (), 0)
        module = self.load(name)
        if not fromlist:
            return self.load(name.partition(".")[0]) if not level else module
        for item in fromlist:
            if item != "*" and not hasattr(module, item) and f"{name}.{item}" in self:
                self.load(f"{name}.{item}")
        return module


def start() -> Any:
    """Load the harness from standard input's first line and return the driver's entry point."""
    # the hash seed is fixed at start-up; a normal run's environment does not name it
    os.environ.pop("PYTHONHASHSEED", None)
    sources = json.loads(sys.stdin.buffer.readline())
    return Private(sources).load("auditor.runtime.driver").main


if __name__ == "__main__":
    sys.exit(start()())

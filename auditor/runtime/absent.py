"""Stand-ins for packages a script imports but the sandbox lacks (runs inside the sandbox).

Record scripts import more than their evaluation uses: ``wandb`` to log, ``datasets`` or
``huggingface_hub`` for a data-preparation path the scored run never takes, a helper module
the folder did not ship. Without the package the import stops the run before anything is
scored, and the result says nothing about the evaluation. So an import that is not inside a
``try:`` block (a script with a fallback gets the ImportError it handles) and fails because the
package itself is missing gets a stand-in instead:

- a logging package (:data:`LOGGERS`: ``wandb``, ``mlflow`` ...) accepts every call and
  returns nothing the script can compute with; logging changes no score;
- any other package gives placeholders that can be imported, named and passed around, and
  raise :class:`MissingModule` (an ImportError, reported as an import failure naming what was
  used) the moment the script calls, tests, iterates or computes with them.

So a run passes only when its evaluation never needed the package; when it did, the run stops
there and the result is inconclusive, naming the module and the attribute.
"""

from __future__ import annotations

import types
from typing import Any

#: Packages that only record what the script reports (experiment trackers).
LOGGERS = frozenset({"wandb", "mlflow", "comet_ml", "neptune", "tensorboardX", "clearml", "aim", "swanlab", "trackio"})


class MissingModule(ImportError):
    """The script used a package the sandbox lacks (a stand-in was imported in its place)."""


class _Placeholder:
    """A name from a missing package: importable, never usable."""

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "_path", path)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise MissingModule(f"No module named {self._path.split('.')[0]!r}: the script used {self._path}, "
                            "which the sandbox lacks (not installed, or not shipped in the folder)")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _Placeholder(f"{self._path}.{name}")

    def __mro_entries__(self, bases: tuple[Any, ...]) -> tuple[type, ...]:
        self._refuse()  # subclassing a missing class
        return ()

    def __repr__(self) -> str:
        return f"<missing {self._path}>"

    __call__ = __bool__ = __iter__ = __len__ = __getitem__ = __setitem__ = __contains__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __float__ = __int__ = __index__ = __enter__ = __exit__ = __setattr__ = _refuse


class _Sink:
    """A logger's objects: every attribute, call and context is this object again."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Sink:
        return self

    def __bool__(self) -> bool:
        return False

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __iter__(self) -> Any:
        return iter(())

    def __setattr__(self, name: str, value: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __getitem__(self, key: Any) -> _Sink:
        return self


class _Module(types.ModuleType):
    def __init__(self, name: str, make: Any) -> None:
        super().__init__(name)
        self.__path__: list[str] = []  # a package, for "from x.y import z"
        self._make = make

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._make(f"{self.__name__}.{name}")


def is_logger(name: str) -> bool:
    return name.split(".")[0] in LOGGERS


def stand_in(name: str) -> types.ModuleType:
    """The stand-in for the missing module ``name`` (dotted names included)."""
    if is_logger(name):
        sink = _Sink()
        return _Module(name, lambda path: sink)
    return _Module(name, _Placeholder)

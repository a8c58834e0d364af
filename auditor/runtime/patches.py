"""How the sandboxed interpreter is adjusted around the submission (sandbox side): modules beside
the script load like the script, reads of the validation shard come back tagged, and threads
the script starts run under the tracking mode."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from auditor.runtime import data, loader, track


def install_sibling_finder(session: Any) -> None:
    """Modules beside the script load like the script: adjusted, wrapped, with its imports."""
    root = (session.workdir / session.folder / session.job.script).parent
    scale = session.settings.val_tokens / session.settings.real_val_tokens

    class Loader(importlib.abc.Loader):
        def __init__(self, path: Path) -> None:
            self.path = path

        def create_module(self, spec: Any) -> None:
            return None

        def exec_module(self, module: Any) -> None:
            text = self.path.read_text(encoding="utf-8", errors="replace")
            prepared = loader.prepare(text, str(self.path), scale, frozenset(session.job.scorers),
                                      session.job.inline)
            module.__dict__[loader.WRAP] = session.wrap
            module.__dict__["__builtins__"] = session.builtins
            session.siblings.add(module.__name__)
            exec(prepared.code, module.__dict__)  # the sandboxed submission

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
            rel = name.replace(".", "/")
            for candidate, package in ((root / f"{rel}.py", False), (root / rel / "__init__.py", True)):
                if candidate.is_file():
                    return importlib.util.spec_from_file_location(
                        name, candidate, loader=Loader(candidate),
                        submodule_search_locations=[str(candidate.parent)] if package else None)
            return None

    sys.meta_path.insert(0, Finder())

    # A helper loaded by path (importlib.util.spec_from_file_location + exec_module, as some
    # scripts load their evaluation module) gets the same loader: its evaluation functions
    # are wrapped and captured like those of an imported sibling.
    original_spec = importlib.util.spec_from_file_location
    folder = root.resolve()

    def spec_from_file_location(name: str, location: Any = None, *, loader: Any = None, **kwargs: Any) -> Any:
        if loader is None and location is not None:
            try:
                path = Path(os.fsdecode(location)).resolve()
                if path.suffix == ".py" and path.is_file() and path.is_relative_to(folder):
                    loader = Loader(path)
            except (OSError, TypeError, ValueError):
                pass
        return original_spec(name, location, loader=loader, **kwargs)

    importlib.util.spec_from_file_location = spec_from_file_location  # type: ignore[assignment]


def modes_follow_threads() -> None:
    """Torch function modes are per thread: threads the script starts (data prefetchers) get ours too."""
    import threading

    original = threading.Thread.run
    if getattr(original, "__pg_wrapped__", False):
        return

    def run(self: threading.Thread) -> None:
        with track.TrackMode(cpu=True):
            original(self)

    run.__pg_wrapped__ = True  # type: ignore[attr-defined]
    threading.Thread.run = run  # type: ignore[method-assign]


def patch_numpy_loaders(session: Any) -> None:
    """Tag validation tokens at the source: reads of the validation shard come back tagged."""
    original_fromfile = np.fromfile
    original_memmap = np.memmap
    shards = {str(p.resolve()) for p in session.val_shards}
    header = data.shard_header_bytes()

    def _is_val(file: Any) -> bool:
        name = getattr(file, "name", file)
        try:
            return str(Path(os.fspath(name)).resolve()) in shards
        except TypeError:
            return False

    def fromfile(file, dtype=float, count=-1, sep="", offset=0, **kwargs):
        arr = original_fromfile(file, dtype=dtype, count=count, sep=sep, offset=offset, **kwargs)
        if _is_val(file) and np.dtype(dtype).itemsize == 2 and arr.ndim == 1:
            start = (offset - header) // 2 if offset >= header else 0
            if hasattr(file, "tell") and not isinstance(file, (str, bytes, os.PathLike)):
                start = max(0, (file.tell() - header) // 2 - arr.size)
            return track.to_tarr(arr, np.arange(start, start + arr.size, dtype=np.int64))
        return arr

    class memmap(original_memmap):
        def __new__(cls, filename, dtype=np.uint8, mode="r+", offset=0, shape=None, order="C"):
            arr = original_memmap.__new__(original_memmap, filename, dtype=dtype, mode=mode, offset=offset, shape=shape,
                                          order=order)
            if _is_val(filename) and np.dtype(dtype).itemsize == 2 and arr.ndim == 1:
                start = (offset - header) // 2 if offset >= header else -(header // 2)
                pos = np.arange(start, start + arr.size, dtype=np.int64)
                pos[pos < 0] = -1
                return track.to_tarr(np.asarray(arr), pos)
            return arr

    np.fromfile = fromfile
    np.memmap = memmap

"""Build a source and its index from a snippet."""

from __future__ import annotations

import textwrap

from auditor.source import PythonSource
from auditor.static.index import SourceIndex, index_of


def source_of(code: str, path: str = "train_gpt.py") -> PythonSource:
    return PythonSource(path=path, text=textwrap.dedent(code).lstrip("\n"))


def indexed(code: str) -> tuple[PythonSource, SourceIndex]:
    source = source_of(code)
    return source, index_of(source)


def function(index: SourceIndex, name: str):
    return next(s for s in index.functions if s.name == name)

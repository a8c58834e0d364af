"""Which names a value is computed from, inside one function (no labels: plain dependencies)."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.static.index import Scope
from auditor.static.names import dotted


def names_in(node: cst.CSTNode) -> set[str]:
    """Identifiers (and dotted attribute paths) an expression reads."""
    from auditor.static.index import walk

    found: set[str] = set()
    for child in walk(node):
        if isinstance(child, cst.Name):
            found.add(child.value)
        elif isinstance(child, cst.Attribute):
            path = dotted(child)
            if path:
                found.add(path)
    return found


def _reads_by_name(scope: Scope) -> dict[str, list[tuple[object, frozenset[str]]]]:
    """Each assigned name -> (the assigning statement, the names its value reads), per value
    assigned to it. Rules ask for the dependencies of many names in the same function; each
    value is read once."""
    reads: dict[str, list[tuple[object, frozenset[str]]]] | None = scope.cache.get("deps:reads")
    if reads is None:
        reads = {}
        for a in scope.assignments:
            target = a.target
            name = dotted(target) if isinstance(target, (cst.Name, cst.Attribute)) else (
                dotted(target.value) if isinstance(target, cst.Subscript) else None)
            if name and a.value is not None:
                reads.setdefault(name, []).append((a.stmt, frozenset(names_in(a.value))))
        scope.cache["deps:reads"] = reads
    return reads


def depends(scope: Scope, roots: Iterable[str], limit: int = 400, without: object = None) -> set[str]:
    """Every name the given names are computed from in a function (transitively); ``without``
    is a statement whose assignments are left out (what a value owes to everything but it)."""
    by_name = _reads_by_name(scope)
    seen: set[str] = set()
    # sorted, so that which names the limit cuts off does not depend on the process's string
    # hash seed (the same submission must get the same findings in every run)
    queue = sorted(roots, reverse=True)
    while queue and len(seen) < limit:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for stmt, read in by_name.get(name, ()):
            if stmt is not without:
                queue.extend(sorted(read - seen, reverse=True))
    return seen

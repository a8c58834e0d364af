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


def depends(scope: Scope, roots: Iterable[str], limit: int = 400) -> set[str]:
    """Every name the given names are computed from in a function (transitively)."""
    by_name: dict[str, list[cst.BaseExpression]] = {}
    for a in scope.assignments:
        name = dotted(a.target) if isinstance(a.target, (cst.Name, cst.Attribute)) else (dotted(a.target.value) if isinstance(a.target, cst.Subscript) else None)
        if name and a.value is not None:
            by_name.setdefault(name, []).append(a.value)
    seen: set[str] = set()
    # sorted, so that which names the limit cuts off does not depend on the process's string
    # hash seed (the same submission must get the same findings in every run)
    queue = sorted(roots, reverse=True)
    while queue and len(seen) < limit:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for value in by_name.get(name, ()):
            queue.extend(sorted(names_in(value) - seen, reverse=True))
    return seen

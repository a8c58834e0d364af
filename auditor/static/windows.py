"""Sliding windows: where a window's scored part starts, and how windows are given to chunks.

Sliding-window evaluation scores only the tail of each window: the losses it adds up are
sliced from an offset (``nll[i, s:wlen]`` … ``loss_sum += scored.sum()``), the *scored
start*. Score-first evaluation with a cache then assigns each window to a chunk; when the
assignment divides the window's first scored position by the chunk size
(``ci = (ws + s) // chunk_tokens``), every token of a chunk is scored before the chunk ends,
which is what decides whether an update reaching one token past the chunk can leak
(R-BOUNDARY-PLUS1, openai/parameter-golf PR #825).

Both are decided by provenance: a scored start is the lower bound of a slice of per-token
losses (values computed from the target, :mod:`auditor.static.flow`) on the way to a scored
accumulation (:func:`auditor.static.training.score_events`); an assignment is by scored
start when the numerator of its floor division is computed from such a bound: the same name
in the same function, or a name defined by the same expression elsewhere in the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from auditor.source import code_of
from auditor.static.deps import depends, names_in
from auditor.static.flow import flow_of
from auditor.static.index import Scope, SourceIndex, Stmt, walk
from auditor.static.names import dotted
from auditor.static.reach import Program
from auditor.static.training import score_events


@dataclass(frozen=True)
class ChunkAssignment:
    """``ci = … (ws + s) // chunk …``: windows given to chunks by their first scored position."""

    stmt: Stmt
    offset: str  # the scored start it is computed from ("s")
    scored_at: int  # a line where the losses are sliced from that offset


def _definitions(scope: Scope, name: str) -> set[str]:
    return {code_of(a.value) for a in scope.assigned(name) if a.value is not None and a.kind == "assign"}


def scored_starts(index: SourceIndex, scope: Scope, program: Program | None) -> dict[str, int]:
    """Names a function slices its scored per-token losses from, with the line of the slice."""
    flow = flow_of(index)
    found: dict[str, int] = {}
    for event in score_events(index, scope, program):
        node = event.stmt.node
        if not isinstance(node, cst.AugAssign):
            continue
        needed = depends(scope, names_in(node.value), limit=80)
        values = [node.value] + [
            a.value for a in scope.assignments
            if a.value is not None and isinstance(a.target, (cst.Name, cst.Attribute)) and dotted(a.target) in needed
        ]
        for value in values:
            for sub in walk(value):
                if not isinstance(sub, cst.Subscript):
                    continue
                lowers = [e.slice.lower for e in sub.slice if isinstance(e.slice, cst.Slice) and e.slice.lower is not None]
                if not lowers or not flow.fact(sub.value, scope).has("tgtdep"):
                    continue  # only a slice of losses computed from the target is a scored range
                for lower in lowers:
                    for name in names_in(lower):
                        found.setdefault(name, index.line(sub))
    return found


def by_scored_start(index: SourceIndex, scope: Scope, program: Program | None) -> ChunkAssignment | None:
    """The assignment of windows to chunks by their first scored position, if a function has one."""

    def all_starts() -> dict[str, tuple[str, int]]:  # defining code -> (name, line), over the source
        out: dict[str, tuple[str, int]] = {}
        for other in index.scopes:
            for name, line in scored_starts(index, other, program).items():
                for code in _definitions(other, name):
                    out.setdefault(code, (name, line))
        return out

    own = scored_starts(index, scope, program)
    anywhere: dict[str, tuple[str, int]] | None = None
    for stmt, node in _floor_divisions(scope):
        used = depends(scope, names_in(node.left), limit=60)
        for name in sorted(used & set(own)):
            return ChunkAssignment(stmt, name, own[name])
        if anywhere is None:
            anywhere = index.cached("windows:scored_starts", all_starts)
        for name in sorted(used):
            for code in _definitions(scope, name):
                if code in anywhere:
                    return ChunkAssignment(stmt, name, anywhere[code][1])
    return None


def _floor_divisions(scope: Scope):
    """``a // b`` in what a function assigns or passes (``ci = min(p // n, k)``,
    ``groups[p // n].append(ws)``), with the statement it is in."""
    seen: set[int] = set()
    roots = [(a.stmt, a.value) for a in scope.assignments if a.value is not None and a.kind in ("assign", "aug", "ann")]
    roots += [(c.stmt, c.node.func) for c in scope.calls]
    roots += [(c.stmt, a.value) for c in scope.calls for a in c.node.args]
    for stmt, root in roots:
        for node in walk(root):
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.FloorDivide) and id(node) not in seen:
                seen.add(id(node))
                yield stmt, node

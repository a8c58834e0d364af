"""Is a piece of code on the path that produced the claimed score?

A script often evaluates several stages (a plain sliding window, then an n-gram mix, then a
TTT pass) and the claim rests on one of them. When the logs show that code ran but in a stage
whose score is not the claimed one, a finding in it is "present, not on the path that
produced the claimed score": a warning for review, not a violation of the claim.

The claimed stage's path is what computes the values its score line prints: the line is
matched to the statement that printed it; the names it prints are followed to the calls that
assigned them in that function, and from there through every function those calls reach
(by name, as :class:`auditor.static.reach.Program` resolves calls). Code reached from there is
on the path. Code is *off* the path only when all of this holds, else nothing is said:

- every scored run's claimed line was printed by the same statement;
- that statement's printed values come from calls the analysis can follow, or are computed
  in the function that prints them (which is then where the path starts);
- the code's function is not among the functions they reach;
- the code's function is called from a block that printed another score line of the same runs
  (a stage of its own, which its log shows ran), after the claimed score line: a stage that
  ran before the claim (a pre-quantization TTT, a cache fill) may have changed the model or the
  state the claimed stage then used, so it is never called off the path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from auditor.static.index import Scope, Stmt
from auditor.static.names import dotted

if TYPE_CHECKING:
    from auditor.scored.config import ScoredConfiguration
    from auditor.scored.logmatch import Match
    from auditor.static.reach import Program

MAX_DEPTH = 10


def _names(node: cst.CSTNode) -> set[str]:
    out: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, (cst.Name, cst.Attribute)):
            name = dotted(cur)
            if name:
                out.add(name)
        stack.extend(cur.children)
    return out


def _called(node: cst.CSTNode) -> set[str]:
    """The last name part of every callee in an expression."""
    out: set[str] = set()
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, cst.Call):
            if isinstance(cur.func, cst.Attribute):
                out.add(cur.func.attr.value)
            elif isinstance(cur.func, cst.Name):
                out.add(cur.func.value)
        stack.extend(cur.children)
    return out


class ScoredPath:
    """The functions that compute the claimed score, and the stages that are not it."""

    def __init__(self, program: Program, scored: ScoredConfiguration) -> None:
        self.program = program
        self.scored = scored
        self.claimed: Match | None = None
        self.functions: set[int] | None = None  # ids of the scopes on the claimed path
        printed = [run.stage_printed_by() for run in scored.runs if run.complete]
        if not printed or any(m is None for m in printed):
            return
        statements = {id(m.format.stmt) for m in printed if m is not None}
        if len(statements) != 1:
            return
        self.claimed = printed[0]
        self.functions = self._reach(self.claimed)

    def _reach(self, claimed: Match) -> set[int] | None:
        stmt = claimed.format.stmt
        scope = stmt.scope
        wanted = set()
        for field in claimed.format.fields:
            wanted |= _names(cst.parse_expression(field)) if _parses(field) else set()
        callees: set[str] = set()
        for assignment in scope.assignments:
            target = dotted(assignment.target) if isinstance(assignment.target, (cst.Name, cst.Attribute)) else None
            if target in wanted and assignment.value is not None and assignment.stmt.order < stmt.order:
                callees |= _called(assignment.value)
        seen: set[int] = set()
        queue: list[tuple[Scope, int]] = [(t, 0) for name in callees for t in self.program._targets(name)]
        if not queue:
            if scope.is_module:
                return None  # the printed values do not come from calls we can follow
            # computed where it is printed (``val_bpb = loss / math.log(2) * …; log0(…)`` at
            # the end of the scoring function): that function is the path's start
            queue.append((scope, 0))
        while queue:
            target, depth = queue.pop()
            if id(target) in seen or depth > MAX_DEPTH:
                continue
            seen.add(id(target))
            for name in target.refs:
                queue.extend((t, depth + 1) for t in self.program._targets(name))
        return seen or None

    def off_path(self, scope: Scope) -> str | None:
        """Why code in ``scope`` is not on the claimed score's path, or None."""
        if self.functions is None or self.claimed is None or scope.is_module or id(scope) in self.functions:
            return None
        stage = self._own_stage(scope, 0, set())
        if stage is None:
            return None
        claimed = self.claimed
        return (f"present, not on the path that produced the claimed score: the claim is `{claimed.text[:90]}` "
                f"({claimed.where()}, printed by {claimed.format.where()}), while this code ran for "
                f"`{stage.text[:90]}` ({stage.where()})")

    def _own_stage(self, scope: Scope, depth: int, seen: set[int]) -> Match | None:
        """A score line of another stage printed by the block that calls ``scope``."""
        if depth > 3 or id(scope) in seen:
            return None
        seen.add(id(scope))
        callers = [s for s in self.program.referrers.get(scope.name, ()) if s.scope is not scope]
        if not callers:
            return None
        found = None
        for call in callers:
            if id(call.scope) in (self.functions or set()):
                return None  # also called from the claimed path
            stage = self._stage_after(call)
            if stage is None and not call.scope.is_module:
                stage = self._own_stage(call.scope, depth + 1, seen)
            if stage is None:
                return None  # a caller whose stage the logs do not show: say nothing
            found = found or stage
        return found

    def _stage_after(self, call: Stmt) -> Match | None:
        """A proven score line printed after ``call`` in its block (same guards), not the claim."""
        keys = [(id(g.at), g.polarity) for g in call.guards]
        for run in self.scored.runs:
            for match in run.matches.first.values():
                stmt = match.format.stmt
                if stmt.scope is not call.scope or stmt.order <= call.order:
                    continue
                if [(id(g.at), g.polarity) for g in stmt.guards] != keys or match.line not in run.score_lines:
                    continue
                if run.stage_line is None or match.line < run.stage_line:
                    return None  # it ran before the claimed score: its state may have fed it
                if self.claimed is not None and stmt is self.claimed.format.stmt:
                    return None
                return match
        return None


def _parses(text: str) -> bool:
    try:
        cst.parse_expression(text)
    except Exception:  # a printed expression the parser does not take
        return False
    return True

"""PG113 multi-epoch-rescore."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.env import Config
from auditor.static.index import Assignment, Scope, Stmt, walk
from auditor.static.names import dotted
from auditor.static.training import NO_GRAD, in_no_grad


class MultiEpochRescore(StaticRule):
    """
    ## What it does
    Finds score-then-train evaluation (a chunk's loss accumulated without gradients, then a
    gradient step on that same chunk) wrapped in an outer loop that runs it more than once
    over the same chunks: the chunk loop does not depend on the outer loop's variable, and
    the score accumulation is not limited to the first pass. With the accumulators reset in
    each pass, the reported score is the last pass's, measured after the model trained on
    every token in the earlier passes; without a reset, every token is scored several times.

    What decides is the structure, not the names: which loop holds the accumulation and the
    gradient step, which data both are computed from, and whether the outer loop repeats the
    same chunks. Several optimizer epochs on a chunk *after* it is scored (a loop inside the
    chunk loop) and phased TTT (an outer loop over different documents) are legal and not
    reported.

    ## Why is this bad?
    Test-time training may only use tokens "you've already evaluated your model on", and each
    token is scored once (issue #1017, C3 and C4). PR #568 ran 5 TTT epochs, scored every
    epoch and reported the last: maintainers called multi-epoch TTT whose final-epoch score
    is reported "training on eval data" (#568, per #633 and issue #1082).

    ## Example
    ```python
    for epoch in range(ttt_epochs):
        loss_sum = 0.0
        for s in range(0, n, chunk):
            x, y = val[s:s + chunk - 1], val[s + 1:s + chunk]
            with torch.no_grad():
                loss_sum += F.cross_entropy(model(x), y, reduction="sum")
            F.cross_entropy(model(x), y).backward(); opt.step()
    ```

    ## Use instead
    One scoring pass: score each chunk once, then train on it for as many epochs as you like
    (`for s in chunks: score(s); for _ in range(epochs): train(s)`).

    ## References
    - R-MULTI-EPOCH-RESCORE (PR #568; issue #1082, #677).
    - Issue #1017, conditions C3 and C4; README on test-time training.
    """

    CODE = "PG113"
    NAME = "multi-epoch-rescore"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-MULTI-EPOCH-RESCORE", "#568", "#1017")
    TAGS = ("ttt_before_score",)
    VALID = (
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def ttt_eval(model, opt, val, n, chunk, epochs=3):
                loss_sum = 0.0
                for s in range(0, n, chunk):
                    x, y = val[s:s + chunk - 1], val[s + 1:s + chunk]
                    with torch.no_grad():
                        loss_sum += F.cross_entropy(model(x), y, reduction="sum")
                    for _ in range(epochs):
                        F.cross_entropy(model(x), y).backward()
                        opt.step()
                return loss_sum
            """,
            note="score-first TTT: several epochs on a chunk after it is scored",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def phased(model, opt, val, phases):
                loss_sum = 0.0
                for lo, hi in phases:
                    for s in range(lo, hi, 64):
                        x, y = val[s:s + 63], val[s + 1:s + 64]
                        with torch.no_grad():
                            loss_sum += F.cross_entropy(model(x), y, reduction="sum")
                        F.cross_entropy(model(x), y).backward()
                        opt.step()
                return loss_sum
            """,
            note="an outer loop over different parts of the stream scores each token once",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def ttt_eval(model, opt, val, n, chunk, epochs=3):
                loss_sum = 0.0
                for ep in range(epochs):
                    first = ep == 0
                    for s in range(0, n, chunk):
                        x, y = val[s:s + chunk - 1], val[s + 1:s + chunk]
                        if first:
                            with torch.no_grad():
                                loss_sum += F.cross_entropy(model(x), y, reduction="sum")
                        F.cross_entropy(model(x), y).backward()
                        opt.step()
                return loss_sum
            """,
            note="each chunk is scored in the first pass only, before any step trains on it",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def ttt_eval(model, opt, val, n, chunk, epochs=3):
                loss_sum = 0.0
                for ep in range(epochs):
                    is_final = ep == epochs - 1
                    for s in range(0, n, chunk):
                        x, y = val[s:s + chunk - 1], val[s + 1:s + chunk]
                        if is_final:
                            with torch.no_grad():
                                loss_sum += F.cross_entropy(model(x), y, reduction="sum")
                        F.cross_entropy(model(x), y).backward()
                        opt.step()
                return loss_sum
            """,
            lines=(11,),
            note="scored in the last pass only, after the earlier passes trained on the same chunks",
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def ttt_eval(model, opt, val, n, chunk, epochs=5):
                for epoch in range(epochs):
                    loss_sum = 0.0
                    for s in range(0, n, chunk):
                        x, y = val[s:s + chunk - 1], val[s + 1:s + chunk]
                        with torch.no_grad():
                            loss_sum += F.cross_entropy(model(x), y, reduction="sum")
                        F.cross_entropy(model(x), y).backward()
                        opt.step()
                return loss_sum
            """,
            lines=(9,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        config = self.settings(evidence, source)
        # the submission's functions that compute without gradients (@torch.no_grad())
        no_grad = {s.name for s in index.scopes if any(d.endswith(n) for d in s.decorators for n in NO_GRAD)}
        for scope in index.scopes:
            steps = [c.stmt for c in scope.calls if c.method == "backward" or c.qualified == "torch.autograd.grad"]
            if not steps:
                continue
            for acc in scope.assignments:
                if acc.kind != "aug" or acc.op is not cst.AddAssign or acc.value is None or not acc.stmt.loops:
                    continue
                if not in_no_grad(acc.stmt) and not _calls(acc.value, no_grad):
                    continue
                finding = self._rescored(source, index, config, scope, acc, steps)
                if finding is not None:
                    yield finding
                    break

    def _rescored(self, source, index, config, scope: Scope, acc: Assignment, steps: list[Stmt]):
        scored_from = depends(scope, names_in(acc.value), limit=120)
        for step in steps:
            loop = _common_loop(acc.stmt, step)
            if loop is None or step.order <= acc.stmt.order:
                continue
            # the same data: a name assigned inside the shared loop that both are computed from
            local = {dotted(a.target) for a in scope.assignments if loop in a.stmt.loops and isinstance(a.target, cst.Name)}
            trained_from = depends(scope, names_in(step.node), limit=120)
            shared = (scored_from & trained_from & local) - {_acc_name(acc.target)}
            if not shared:
                continue
            position = acc.stmt.loops.index(loop)
            for outer in reversed(acc.stmt.loops[:position]):
                if not isinstance(outer, cst.For):
                    continue
                outer_names = names_in(outer.target)
                if _iterable_varies(scope, loop, outer, outer_names):
                    continue  # each pass covers other data (phases, documents)
                by_pass = [g for g in acc.stmt.guards if outer_names & (names_in(g.test) | depends(scope, names_in(g.test), limit=40))]
                if any(_first_pass_only(scope, g, outer_names) for g in by_pass):
                    continue  # scored in the first pass only, before any training on the tokens
                passes = _passes(config, scope, outer)
                if passes is not None and passes <= 1:
                    continue
                reset = _reset_in(scope, acc, outer, loop)
                if by_pass:
                    how = (f"the score is taken only in a later pass (`if {index.code(by_pass[0].test, 40)}`), "
                           "after the earlier passes trained on those tokens")
                elif reset is not None:
                    how = (f"`{_acc_name(acc.target)}` is reset in each pass (line {index.line(reset.node)}), so the "
                           "score reported is the last pass's, after training on those tokens")
                else:
                    how = "every pass adds to it, so each token is scored again after training on it"
                times = f"{passes} times" if passes is not None else "more than once"
                message = (
                    f"score-then-train on the same chunks (computed from {_few(shared)}) runs {times} "
                    f"(`for {index.code(outer.target, 30)} in {index.code(outer.iter, 50)}`); {how}"
                )
                return self.report(
                    source, acc.stmt.node, acc.stmt, message,
                    evidence={"outer_loop": index.code(outer.iter, 80), "passes": passes, "shared": sorted(shared),
                              "reset_line": index.line(reset.node) if reset is not None else None},
                    severity=Severity.ERROR if passes is not None else Severity.WARNING,
                    confidence=Confidence.HIGH if passes is not None else Confidence.MEDIUM,
                )
        return None


def _first_pass_only(scope: Scope, guard, loop_names: set[str]) -> bool:
    """Whether a guard on the pass holds in the first pass only: ``ep == 0``, ``ep < 1``,
    ``not ep``, also through a name bound to such a test (``first = ep == 0``)."""
    test, holds = guard.test, guard.polarity
    if isinstance(test, cst.Name) and test.value not in loop_names:
        bound = [a for a in scope.assigned(test.value) if a.value is not None]
        if len(bound) == 1:
            test = bound[0].value
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, holds = test.expression, not holds
    if isinstance(test, cst.Name) and test.value in loop_names:
        return not holds  # ``if not ep:``
    if not (isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and holds):
        return False
    left, right = test.left, test.comparisons[0].comparator
    op = test.comparisons[0].operator
    if not (isinstance(left, cst.Name) and left.value in loop_names and isinstance(right, cst.Integer)):
        return False
    bound_value = int(right.value)
    return (isinstance(op, cst.Equal) and bound_value == 0) or (isinstance(op, cst.LessThan) and bound_value == 1) or (
        isinstance(op, cst.LessThanEqual) and bound_value == 0)


def _few(names: set[str], limit: int = 4) -> str:
    shown = sorted(names)
    return ", ".join(f"`{n}`" for n in shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def _calls(node: cst.BaseExpression, functions: set[str]) -> bool:
    """Whether an expression calls one of the given functions (by the name they are defined with)."""
    for part in walk(node):
        if isinstance(part, cst.Call):
            name = dotted(part.func) or ""
            if name.rsplit(".", 1)[-1] in functions:
                return True
    return False


def _common_loop(a: Stmt, b: Stmt):
    shared = None
    for la, lb in zip(a.loops, b.loops):
        if la is not lb:
            break
        shared = la
    return shared


def _iterable_varies(scope: Scope, loop, outer: cst.For, outer_names: set[str]) -> bool:
    """Whether the chunk loop's domain depends on the outer loop's variable (another part each pass)."""
    if not isinstance(loop, cst.For):
        return True  # a while loop: its domain is not visible; do not claim a repeat
    read = names_in(loop.iter)
    inside = {dotted(a.target) for a in scope.assignments if outer in a.stmt.loops and loop not in a.stmt.loops}
    return bool(depends(scope, read & inside, limit=80) & outer_names | read & outer_names)


def _passes(config: Config, scope: Scope, outer: cst.For) -> int | None:
    """How often the outer loop runs, when it is ``range(n)`` with a known n."""
    it = outer.iter
    if not (isinstance(it, cst.Call) and dotted(it.func) == "range" and len(it.args) == 1):
        return None
    node = it.args[0].value
    if isinstance(node, cst.Name):
        for name, default in scope.params:
            if name == node.value and default is not None:
                node = default
    value = config.evaluate(node, scope).value
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _acc_name(target: cst.BaseExpression) -> str | None:
    """``total`` for ``total``, ``doc_loss`` for ``doc_loss[b]``, ``self.sum`` for ``self.sum``."""
    if isinstance(target, cst.Subscript):
        return dotted(target.value)
    return dotted(target) if isinstance(target, (cst.Name, cst.Attribute)) else None


def _reset_in(scope: Scope, acc: Assignment, outer: cst.For, loop) -> Stmt | None:
    """Where the accumulator is set afresh inside the outer loop, outside the chunk loop: a plain
    assignment, or an in-place ``zero_()`` / ``fill_()``."""
    name = _acc_name(acc.target)
    if name is None:
        return None

    def here(stmt: Stmt) -> bool:
        return outer in stmt.loops and loop not in stmt.loops

    for a in scope.assignments:
        if a.kind in ("assign", "unpack") and _acc_name(a.target) == name and here(a.stmt):
            return a.stmt
    for call in scope.calls:
        func = call.node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("zero_", "fill_") and _acc_name(func.value) == name:
            if here(call.stmt):
                return call.stmt
    return None

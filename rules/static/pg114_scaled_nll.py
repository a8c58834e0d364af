"""PG114 scaled-nll."""

from __future__ import annotations

import math
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.env import Config
from auditor.static.index import Scope, walk
from auditor.static.training import in_no_grad

#: Calls whose result is a negative log-likelihood or log-probabilities.
LOSS_CALLS = frozenset({
    "torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss", "torch.nn.functional.log_softmax",
    "torch.log_softmax", "torch.nn.functional.logsigmoid",
})
LOSS_METHODS = frozenset({"log_softmax", "cross_entropy", "nll_loss"})
#: Unit conversions between nats and bits: legal factors.
_UNITS = (math.log(2), 1 / math.log(2))


class ScaledNll(StaticRule):
    """
    ## What it does
    Finds a scored negative log-likelihood multiplied (or divided) by a constant other than
    1 before it is accumulated without gradients: `nll * 0.9`, `nll * NLL_SCALE` with a
    default of 0.85, `nll / 1.1`. The NLL is recognised by how it is computed
    (`cross_entropy`, `nll_loss`, `log_softmax`), the constant by its value (a literal or the
    configuration's default). Conversions between nats and bits (ln 2) are not reported.

    ## Why is this bad?
    c · (−log p) = −log p^c: the score is that of p^c, which does not sum to 1 over the
    vocabulary for c ≠ 1 (issue #1017, condition C2). With c < 1 the bpb shrinks for free.
    A temperature is legal where it belongs, on the logits before the softmax, where the
    distribution is renormalized.

    ## Example
    ```python
    nll = F.cross_entropy(logits, y, reduction="none") * 0.92
    loss_sum += nll.sum()
    ```

    ## Use instead
    Divide the logits by the temperature and take the cross-entropy of the result:
    `F.cross_entropy(logits / T, y)`.

    ## References
    - Issue #1017, condition C2 (a normalized distribution over the vocabulary).
    - R-1017-C2; R-1017-V (the NLL in nats, divided by ln 2 and the byte count).
    """

    CODE = "PG114"
    NAME = "scaled-nll"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("#1017", "R-1017-C2")
    TAGS = ("bpb_accounting",)
    VALID = (
        Valid(
            code="""
            import math
            import torch
            import torch.nn.functional as F
            T = 0.9
            def score(logits, y):
                loss_sum = 0.0
                with torch.no_grad():
                    nll = F.cross_entropy(logits / T, y, reduction="none")
                    loss_sum += nll.sum() / math.log(2)
                return loss_sum
            """,
            note="a temperature on the logits, and nats converted to bits",
        ),
        Valid(
            code="""
            import torch.nn.functional as F
            def train_step(model, x, y, opt, aux):
                loss = F.cross_entropy(model(x), y) * 0.5 + aux
                loss.backward()
                opt.step()
            """,
            note="a weighted training loss is not a score",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, y):
                loss_sum = 0.0
                with torch.no_grad():
                    nll = F.cross_entropy(logits, y, reduction="none") * 0.92
                    loss_sum += nll.sum()
                return loss_sum
            """,
            lines=(6,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        config = self.settings(evidence, source)
        for scope in index.scopes:
            reported: set[int] = set()
            for acc in scope.assignments:
                if acc.kind != "aug" or acc.op is not cst.AddAssign or acc.value is None or not in_no_grad(acc.stmt):
                    continue
                for node, stmt, factor in _scaled_losses(config, scope, acc.value):
                    if id(node) in reported:
                        continue
                    reported.add(id(node))
                    yield self.report(
                        source, node, stmt,
                        f"the scored NLL is scaled by {factor:g} (`{index.code(node, 80)}`) before it is accumulated "
                        f"into `{index.code(acc.target, 30)}`: that scores p^{factor:g}, not a distribution",
                        evidence={"expression": index.code(node, 140), "factor": factor},
                    )


def _scaled_losses(config: Config, scope: Scope, value: cst.BaseExpression):
    """(product, its statement, factor) for each loss scaled by a constant that ``value`` is
    computed from (in the expression, or in the local assignments it depends on)."""
    needed = depends(scope, names_in(value), limit=120)
    exprs = [(value, None)]
    exprs += [(a.value, a.stmt) for a in scope.assignments
              if a.value is not None and isinstance(a.target, cst.Name) and a.target.value in needed]
    for expr, stmt in exprs:
        for node in walk(expr):
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Divide)):
                for loss_side, const_side in ((node.left, node.right), (node.right, node.left)):
                    if isinstance(node.operator, cst.Divide) and const_side is node.left:
                        continue  # c / nll is not a scaling of the NLL
                    factor = _constant(config, scope, const_side)
                    if factor is None or not (_nll(loss_side, scope) or _picked(loss_side, scope)):
                        continue
                    if isinstance(node.operator, cst.Divide):
                        factor = 1.0 / factor if factor else None
                    if factor is None or math.isclose(factor, 1.0) or any(math.isclose(factor, u, rel_tol=1e-4) for u in _UNITS):
                        continue
                    owner = stmt if stmt is not None else _stmt_of(scope, node)
                    if owner is not None:
                        yield node, owner, factor
    for a in scope.assignments:
        if a.kind == "aug" and a.op in (cst.MultiplyAssign, cst.DivideAssign) and isinstance(a.target, cst.Name):
            if a.target.value in needed and _nll(a.target, scope) and a.value is not None:
                factor = _constant(config, scope, a.value)
                if factor is None:
                    continue
                if a.op is cst.DivideAssign:
                    factor = 1.0 / factor if factor else None
                if factor is None or math.isclose(factor, 1.0) or any(math.isclose(factor, u, rel_tol=1e-4) for u in _UNITS):
                    continue
                yield a.stmt.node, a.stmt, factor


def _stmt_of(scope: Scope, node: cst.CSTNode):
    """The innermost statement holding ``node`` (a compound statement's node holds its body)."""
    owner = None
    for stmt in scope.stmts:
        if any(part is node for part in walk(stmt.node)) and (owner is None or stmt.order > owner.order):
            owner = stmt
    return owner


#: Methods that keep a per-token NLL an NLL (reductions, conversions, views).
_KEEP = frozenset({"sum", "mean", "item", "float", "double", "to", "view", "reshape", "squeeze", "unsqueeze", "detach",
                   "cpu", "flatten", "contiguous", "clone", "neg"})


def _nll(node: cst.BaseExpression, scope: Scope, depth: int = 0) -> bool:
    """Whether an expression is a negative log-likelihood as computed: ``cross_entropy(…)`` or
    ``nll_loss(…)``, ``-log_probs.gather(…)``, through reductions, views, subscripts and local
    names, but not through arithmetic (a mixture weight times a probability is no NLL)."""
    if depth > 10:
        return False
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return _log_prob(node.expression, scope, depth + 1)
    if isinstance(node, cst.Subscript):
        return _nll(node.value, scope, depth + 1)
    if isinstance(node, cst.Call):
        call = _call(scope, node)
        if call is not None and (call.qualified in ("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss")
                                 or call.method in ("cross_entropy", "nll_loss")):
            return True
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _KEEP:
            return _nll(func.value, scope, depth + 1)
        return False
    if isinstance(node, cst.Name):
        return any(a.value is not None and a.kind in ("assign", "ann") and _nll(a.value, scope, depth + 1)
                   for a in scope.assigned(node.value))
    return False


def _log_prob(node: cst.BaseExpression, scope: Scope, depth: int) -> bool:
    """``log_softmax(…)`` values picked at the targets (``lp.gather(-1, y)``, ``lp[i, y]``)."""
    if depth > 10:
        return False
    if isinstance(node, cst.Call):
        call = _call(scope, node)
        if call is not None and (call.qualified in LOSS_CALLS or call.method in LOSS_METHODS):
            return True
        func = node.func
        if isinstance(func, cst.Attribute) and (func.attr.value in _KEEP or func.attr.value == "gather"):
            return _log_prob(func.value, scope, depth + 1)
        if call is not None and call.qualified == "torch.gather" and node.args:
            return _log_prob(node.args[0].value, scope, depth + 1)
        return False
    if isinstance(node, cst.Subscript):
        return _log_prob(node.value, scope, depth + 1)
    if isinstance(node, cst.Name):
        return any(a.value is not None and a.kind in ("assign", "ann") and _log_prob(a.value, scope, depth + 1)
                   for a in scope.assigned(node.value))
    return False


def _picked(node: cst.BaseExpression, scope: Scope, depth: int = 0) -> bool:
    """The log-probability of the targets: a ``gather`` of log-probabilities (through
    reductions and local names). A whole log-distribution scaled and renormalized (a
    log-linear mixture) is not this."""
    if depth > 10:
        return False
    if isinstance(node, cst.Call):
        func = node.func
        call = _call(scope, node)
        if isinstance(func, cst.Attribute) and func.attr.value == "gather":
            return _log_prob(func.value, scope, depth + 1)
        if call is not None and call.qualified == "torch.gather" and node.args:
            return _log_prob(node.args[0].value, scope, depth + 1)
        if isinstance(func, cst.Attribute) and func.attr.value in _KEEP:
            return _picked(func.value, scope, depth + 1)
        return False
    if isinstance(node, cst.Name):
        return any(a.value is not None and a.kind in ("assign", "ann") and _picked(a.value, scope, depth + 1)
                   for a in scope.assigned(node.value))
    return False


def _call(scope: Scope, node: cst.Call):
    for call in scope.calls:
        if call.node is node:
            return call
    return None


def _constant(config: Config, scope: Scope, node: cst.BaseExpression) -> float | None:
    """A fractional number known before the run: a literal, or a name whose default evaluates
    to one. Whole numbers are left out: a mean loss times a token count is a sum."""
    value = _number(config, scope, node)
    return value if value is not None and not float(value).is_integer() else None


def _number(config: Config, scope: Scope, node: cst.BaseExpression) -> float | None:
    if isinstance(node, (cst.Float, cst.Integer)):
        return float(node.evaluated_value)
    if isinstance(node, cst.Name) or isinstance(node, cst.Attribute):
        if isinstance(node, cst.Name) and any(node.value == p for p, _ in scope.params):
            return None  # a parameter: its value comes from the caller
        value = config.evaluate(node, scope).value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


"""Mixtures of experts in scoring code, and what each expert is computed from.

A *mixture* combines several log-probabilities (or probabilities) of the scored token into
one: ``logaddexp(a, b)``, ``logsumexp(stack([a, b, …]) + log_w, 0)``, the hand-written
``max(a, b) + log1p(exp(-abs(a - b)))``, or ``log(w·p + (1 - w)·q)``. Its *components* are
the experts with their weights (``log(lam) + nn_lp``); a component's *leaves* are the parts
it adds or multiplies (``log(lam)``, ``nn_lp``). Condition C2 of issue #1017 holds for such a
mixture only when every expert is a distribution over the vocabulary evaluated at the scored
token; the rules PG117 and PG118 look at what the leaves are computed from.

Dependencies here are plain data dependencies inside one function (:func:`sources`), with
one addition over :func:`auditor.static.deps.depends`: a list that values are appended to
depends on them (``per_byte.append(share)`` then ``per_byte[t]``).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from auditor.static.index import Assignment, Scope, Stmt, children, own_nodes, walk
from auditor.static.names import callee_name, dotted

#: Calls that combine two log-probabilities by a log-sum-exp.
_LOGADDEXP = frozenset({"logaddexp", "logaddexp2"})
_STACKS = frozenset({"stack", "cat", "concatenate", "vstack", "hstack", "column_stack", "array", "tensor"})
_MAXES = frozenset({"max", "maximum", "fmax"})
_ADDS = frozenset({"append", "extend", "insert", "add", "appendleft"})


@dataclass(frozen=True, eq=False)
class Mixture:
    """One mixing expression: where it is, its components and what shape it has."""

    node: cst.CSTNode
    stmt: Stmt
    components: tuple[cst.BaseExpression, ...]
    kind: str




def mixtures(scope: Scope) -> list[Mixture]:
    """The mixtures computed in a function (own statements only, not nested functions)."""
    # two rules ask for them; the search walks every statement
    found: list[Mixture] | None = scope.cache.get("mixtures")
    if found is None:
        found = scope.cache["mixtures"] = _mixtures(scope)
    return found


def _mixtures(scope: Scope) -> list[Mixture]:
    found: list[Mixture] = []
    seen: set[int] = set()
    for call in scope.calls:
        if call.stmt.scope is not scope or id(call.node) in seen:
            continue
        method = call.method
        parts: tuple[cst.BaseExpression, ...] = ()
        kind = ""
        if method in _LOGADDEXP:
            args = [a.value for a in call.node.args if a.keyword is None]
            if isinstance(call.node.func, cst.Attribute) and len(args) == 1:  # a.logaddexp(b)
                args = [call.node.func.value, args[0]]
            parts, kind = tuple(args[:2]), f"{method}(…)"
        elif method == "logsumexp":
            func = call.node.func
            on_method = isinstance(func, cst.Attribute) and dotted(func.value) not in ("torch", "np", "numpy", "scipy.special", "special")
            source = func.value if on_method else call.arg(0)
            parts, kind = _stacked(scope, source), "logsumexp over stacked experts"
        elif method in ("log", "log2", "log10"):
            arg = call.arg(0) if call.node.args else (call.node.func.value if isinstance(call.node.func, cst.Attribute) else None)
            terms = _terms(arg) if arg is not None else []
            if len([t for t in terms if not is_constant(scope, t)]) >= 2:
                parts, kind = tuple(terms), "log of a sum of weighted probabilities"
        if len(parts) >= 2:
            seen.add(id(call.node))
            found.append(Mixture(call.node, call.stmt, parts, kind))
    manual: list[Mixture] = []
    for stmt in scope.stmts:
        if isinstance(stmt.node, (cst.FunctionDef, cst.ClassDef)):
            continue
        for node in own_nodes(stmt.node):
            pair = _manual_lse(node)
            if pair is not None:
                manual.append(Mixture(node, stmt, pair, "max(a, b) + log1p(exp(-|a - b|))"))
    return found + manual


def _stacked(scope: Scope, node: cst.BaseExpression | None, depth: int = 0) -> tuple[cst.BaseExpression, ...]:
    """The elements of a stack of experts inside a logsumexp's argument (through additions of
    log-weights and local names)."""
    if node is None or depth > 4:
        return ()
    if isinstance(node, cst.Call):
        name = callee_name(node)
        if name in _STACKS and node.args and isinstance(node.args[0].value, (cst.List, cst.Tuple)):
            return tuple(e.value for e in node.args[0].value.elements if not isinstance(e, cst.StarredElement))
        return ()
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        return _stacked(scope, node.left, depth + 1) or _stacked(scope, node.right, depth + 1)
    if isinstance(node, cst.UnaryOperation):  # -logsumexp(-nlls + log_w): the experts' NLLs
        return _stacked(scope, node.expression, depth + 1)
    if isinstance(node, cst.Name):
        for a in scope.assigned(node.value):
            if a.value is not None and a.kind in ("assign", "ann") and a.position is None:
                inner = _stacked(scope, a.value, depth + 1)
                if inner:
                    return inner
    return ()


def _terms(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The addends of a sum (``a + b + c`` → a, b, c)."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        return _terms(node.left) + _terms(node.right)
    return [node]


def _manual_lse(node: cst.CSTNode) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """``max(a, b) + log1p(exp(-abs(a - b)))`` (either order): the two experts."""
    if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add)):
        return None
    for first, second in ((node.left, node.right), (node.right, node.left)):
        if not isinstance(first, cst.Call) or len(first.args) != 2:
            continue
        if callee_name(first) not in _MAXES:
            continue
        calls = {callee_name(n) for n in walk(second) if isinstance(n, cst.Call)}
        if calls & {"log1p", "log"} and "exp" in calls:
            return first.args[0].value, first.args[1].value
    return None


def shifted_lse(node: cst.BaseExpression, shift: str) -> bool:
    """``m + log(exp(a - m) + exp(c - m))`` with ``m`` the name ``shift``: a log-sum-exp written
    with a stabilizing shift, which cancels whatever value ``m`` holds (every read of it besides
    the added one is the subtrahend of an ``exp`` argument)."""
    if not (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add)):
        return False
    for first, rest in ((node.left, node.right), (node.right, node.left)):
        if not (isinstance(first, cst.Name) and first.value == shift):
            continue
        reads = sum(1 for n in walk(rest) if isinstance(n, cst.Name) and n.value == shift)
        shifted = sum(1 for n in walk(rest) if isinstance(n, cst.Call) and callee_name(n) == "exp" and len(n.args) == 1
                      and _minus(n.args[0].value, shift))
        return reads > 0 and shifted == reads
    return False


def _minus(node: cst.BaseExpression, shift: str) -> bool:
    """``x - shift`` where ``x`` does not read ``shift``."""
    return (isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract)
            and isinstance(node.right, cst.Name) and node.right.value == shift
            and not any(isinstance(n, cst.Name) and n.value == shift for n in walk(node.left)))


def leaves(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The parts a component adds, subtracts, multiplies or divides (``log(lam) + lp`` →
    ``log(lam)``, ``lp``); calls and names are leaves."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract, cst.Multiply, cst.Divide)):
        return leaves(node.left) + leaves(node.right)
    if isinstance(node, cst.UnaryOperation):
        return leaves(node.expression)
    return [node]


#: What describes an array rather than reads its values (``logits.size(-1)``, ``len(y)``).
_METADATA = frozenset({"shape", "size", "ndim", "dtype", "device", "numel", "nelement", "dim"})
#: Constructors that take only the shape (and device) of an array argument.
_SHAPED = frozenset({"full_like", "zeros_like", "ones_like", "empty_like", "new_full", "new_zeros", "new_ones", "new_empty"})


def data_names(node: cst.CSTNode, shapes: bool = False) -> set[str]:
    """The names whose *values* an expression reads: ``1 / logits.size(-1)`` reads none (the
    uniform distribution over the model's vocabulary is a constant of the run), unless
    ``shapes`` counts sizes as data (``len(token_bytes[tid])`` is a byte count)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if not shapes and isinstance(current, cst.Attribute) and current.attr.value in _METADATA:
            continue
        if not shapes and isinstance(current, cst.Call) and isinstance(current.func, cst.Name) and current.func.value == "len":
            continue
        if not shapes and isinstance(current, cst.Call):
            name = callee_name(current)
            if name in _SHAPED:  # torch.full_like(x, c) reads x's shape and c's value
                kept = [a.value for a in current.args[1:]] if name.endswith("_like") else [a.value for a in current.args]
                if name.endswith("_like") and isinstance(current.func, cst.Attribute):
                    stack.append(current.func.value)  # the module (torch.full_like): no data
                stack.extend(kept)
                continue
        if isinstance(current, cst.Name):
            found.add(current.value)
        elif isinstance(current, cst.Attribute):
            path = dotted(current)
            if path:
                found.add(path)
        stack.extend(children(current))
    return found


def sources(scope: Scope, node: cst.BaseExpression, limit: int = 200, shapes: bool = False,
            loops: bool = True) -> set[str]:
    """The function's own data (its parameters and assigned locals) a value is computed from,
    transitively, a list depending on what is appended to it; shapes and lengths are not data
    (:func:`data_names`) unless ``shapes``; without ``loops``, a loop variable is a position,
    not computed from what the loop runs over."""
    edges: dict[str, list[cst.BaseExpression]] = {}
    for a in scope.assignments:
        if not loops and a.kind == "for":
            continue
        target = a.target.value if isinstance(a.target, cst.Subscript) else a.target
        name = dotted(target) if isinstance(target, (cst.Name, cst.Attribute)) else None
        if name and a.value is not None:
            edges.setdefault(name, []).append(a.value)
    for call in scope.calls:
        func = call.node.func
        if call.method in _ADDS and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            for arg in call.node.args:
                edges.setdefault(func.value.value, []).append(arg.value)
    own = set(edges) | set(scope.param_names)
    seen: set[str] = set()
    queue = sorted(data_names(node, shapes), reverse=True)
    while queue and len(seen) < limit:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for value in edges.get(name, ()):
            queue.extend(sorted(data_names(value, shapes) - seen, reverse=True))
    return seen & own


def accumulation(scope: Scope, stmt: Stmt, node: cst.CSTNode) -> Assignment | None:
    """The ``total += …`` / ``total -= …`` of the function that ``node`` (in ``stmt``) is summed
    into: inside it, or through the names ``stmt`` assigns."""
    assigned = {dotted(a.target) for a in scope.assignments if a.stmt is stmt
                and isinstance(a.target, (cst.Name, cst.Attribute))}
    assigned.discard(None)
    for acc in scope.assignments:
        if acc.kind != "aug" or acc.op not in (cst.AddAssign, cst.SubtractAssign) or acc.value is None:
            continue
        if acc.stmt is stmt and any(n is node for n in walk(acc.value)):
            return acc
        if assigned and assigned & sources(scope, acc.value):
            return acc
    return None


def is_constant(scope: Scope, node: cst.BaseExpression) -> bool:
    """Whether a value is computed from no data of the function (``log(1 / 256)``, ``UNIFORM``)."""
    return not sources(scope, node)


def statement_of(scope: Scope, node: cst.CSTNode) -> Stmt | None:
    """The innermost statement of ``scope`` that holds ``node``."""
    owner = None
    for stmt in scope.stmts:
        if any(part is node for part in walk(stmt.node)) and (owner is None or stmt.order > owner.order):
            owner = stmt
    return owner

"""Evaluations written inline: a block of a function lifted into one the driver can capture
(runs inside the sandbox; stdlib only).

The harness captures an evaluation by wrapping the function that computes it, and replays that
function on perturbed streams. Many submissions compute their claimed score inline instead:
``if args.slot_enabled:`` in ``main`` opens a block that builds windows from the validation
tokens, optimizes a delta and accumulates the NLL it prints on the claimed line. No function
returns that number, so nothing could be captured or replayed.

The parent knows the statement that printed the claimed line and the names it prints
(:class:`auditor.runtime.protocol.InlineSite`). :func:`lift` takes the innermost compound
statement around that print that also assigns every printed name, and moves it into a nested
function that computes exactly what the block computed:

- every local of the enclosing function that the block reads or assigns goes in through one
  dict argument (only the bound ones: a name the block reads before the function bound it still
  raises ``UnboundLocalError``), so a snapshot of the call holds the validation tokens and the
  model, and a replay can swap the tokens;
- the names the block assigned go back into the enclosing function's locals after the call;
- the function returns the printed values, which is how the claimed line's number is tied to
  the captured call.

A block that leaves its function otherwise (``return``, ``yield``, ``await``, a ``break`` or
``continue`` of an outer loop), deletes a local or declares ``nonlocal`` is not lifted.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

#: The dict that carries the block's locals in and out, a snapshot of ``locals()``, and the
#: prefix of the lifted function's name.
_STATE = "__pg_state__"
_LOCALS = "__pg_locals__"
_PREFIX = "__pg_inline_"


@dataclass(frozen=True)
class Lifted:
    """A block lifted into a function, as reports show it ("main, lines 2150-2200")."""

    shown: str


def lift(tree: ast.Module, function: str, line: int, printed: list[str], wrap: str) -> Lifted | str:
    """Lift the block of ``function`` that computes the values printed at ``line``; the lifted
    function is wrapped with ``wrap`` (the driver's capture). Returns why not, as a string,
    when the block cannot be lifted."""
    for func in ast.walk(tree):
        if (isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)) and func.name == function
                and func.lineno < line <= (func.end_lineno or func.lineno)):
            return _lift_in(func, line, printed, wrap)
    return f"no function {function} holds line {line}"


def _lift_in(func: ast.FunctionDef | ast.AsyncFunctionDef, line: int, printed: list[str], wrap: str) -> Lifted | str:
    chain = _chain(func.body, line)
    if not chain:
        return f"no statement of {func.name} starts at line {line}"
    block = None
    for body, index in reversed(chain[:-1]):  # innermost compound statement first
        stmt = body[index]
        assigned = _bound(stmt)
        if all(name in assigned for name in printed):
            block = (body, index)
            break
    if block is None:
        return f"the values printed at line {line} are not all assigned in one block of {func.name}"
    body, index = block
    stmt = body[index]
    why = _not_liftable(stmt)
    if why:
        return why
    scope = _own_nodes(func)
    if any(isinstance(node, ast.Nonlocal) for node in scope):
        return f"{func.name} declares nonlocal names"
    declared_global = {n for node in scope if isinstance(node, ast.Global) for n in node.names}
    own_locals = (_bound_in_body(func.body) | _params(func)) - declared_global
    read, bound = _read(stmt), _bound(stmt)
    assigned = bound & own_locals
    used = (read | assigned) & own_locals
    shown = f"{func.name}, lines {stmt.lineno}-{stmt.end_lineno or stmt.lineno}"
    body[index:index + 1] = _replacement(stmt, f"{_PREFIX}{stmt.lineno}__", shown, sorted(used), sorted(assigned),
                                         printed, sorted(declared_global & (read | bound)), wrap)
    return Lifted(shown)


def _chain(body: list[ast.stmt], line: int) -> list[tuple[list[ast.stmt], int]]:
    """(body, index) pairs from ``body`` down to the statement that starts at ``line``."""
    for i, stmt in enumerate(body):
        if stmt.lineno == line and not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return [(body, i)]
        if stmt.lineno <= line <= (stmt.end_lineno or stmt.lineno):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                return []  # another scope
            for inner in _bodies(stmt):
                found = _chain(inner, line)
                if found:
                    return [(body, i), *found]
            return []
    return []


def _bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    out = []
    for field in ("body", "orelse", "finalbody"):
        value = getattr(stmt, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            out.append(value)
    for handler in getattr(stmt, "handlers", []) or []:
        out.append(handler.body)
    for case in getattr(stmt, "cases", []) or []:
        out.append(case.body)
    return out


def _own_nodes(node: ast.AST) -> list[ast.AST]:
    """Nodes of ``node``'s own scope: nested functions, classes, lambdas and comprehensions are
    entered only for their defaults, decorators and first iterable (evaluated in this scope)."""
    out: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        out.append(child)
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend([*child.decorator_list, *child.args.defaults, *(d for d in child.args.kw_defaults if d)])
        elif isinstance(child, ast.Lambda):
            stack.extend([*child.args.defaults, *(d for d in child.args.kw_defaults if d)])
        elif isinstance(child, ast.ClassDef):
            stack.extend([*child.decorator_list, *child.bases, *(k.value for k in child.keywords)])
        elif isinstance(child, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            stack.append(child.generators[0].iter)
            # an assignment expression in a comprehension binds in this scope
            stack.extend(n for n in ast.walk(child) if isinstance(n, ast.NamedExpr))
        else:
            stack.extend(ast.iter_child_nodes(child))
    return out


def _scope_nodes(stmt: ast.stmt) -> list[ast.AST]:
    """``stmt`` and the nodes of it that belong to its scope (a definition's body does not)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        holder = ast.Module(body=[stmt], type_ignores=[])
        return [stmt, *(n for n in _own_nodes(holder) if n is not stmt)]
    return [stmt, *_own_nodes(stmt)]


def _bound(stmt: ast.stmt) -> set[str]:
    """Names ``stmt`` binds in its scope (assignment targets, loop and ``with`` targets, imports,
    definitions, exception names)."""
    return _bound_in_body([stmt])


def _bound_in_body(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        for node in _scope_nodes(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names if a.name != "*")
            elif isinstance(node, ast.ExceptHandler) and node.name:
                names.add(node.name)
            elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
                names.add(node.name)
            elif isinstance(node, ast.MatchMapping) and node.rest:
                names.add(node.rest)
    return names


def _params(func: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    a = func.args
    names = {arg.arg for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]}
    names.update(arg.arg for arg in (a.vararg, a.kwarg) if arg is not None)
    return names


def _read(stmt: ast.stmt) -> set[str]:
    """Every name ``stmt`` reads, nested scopes included (their free names may be locals here)."""
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _not_liftable(stmt: ast.stmt) -> str:
    """Why the block cannot move into a function unchanged ("" when it can)."""
    where = f"the block at line {stmt.lineno}"
    for node in _scope_nodes(stmt):
        if isinstance(node, ast.Return):
            return f"{where} returns from its function"
        if isinstance(node, (ast.Yield, ast.YieldFrom, ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return f"{where} yields or awaits"
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return f"{where} declares global or nonlocal names"
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Del):
            return f"{where} deletes a local"
        if isinstance(node, ast.Name) and node.id == "super":
            return f"{where} calls super(), which needs its method's frame"
    if _escapes(stmt, in_loop=False):
        return f"{where} breaks out of a loop around it"
    return ""


def _escapes(node: ast.AST, in_loop: bool) -> bool:
    """A ``break``/``continue`` that leaves the block (one not inside a loop of the block)."""
    if isinstance(node, (ast.Break, ast.Continue)):
        return not in_loop
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        return False
    for field, value in ast.iter_fields(node):
        loop_body = isinstance(node, (ast.For, ast.While)) and field == "body"
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, ast.AST) and _escapes(child, in_loop or loop_body):
                return True
    return False


def _replacement(stmt: ast.stmt, name: str, shown: str, used: list[str], assigned: list[str],
                 printed: list[str], globals_: list[str], wrap: str) -> list[ast.stmt]:
    """The lifted function, its wrap, and the call with the locals going in and coming back."""
    load_in = [f"if {n!r} in {_STATE}: {n} = {_STATE}[{n!r}]" for n in used]
    head = [f"global {', '.join(globals_)}"] if globals_ else []
    tail = [f"{_LOCALS} = locals()",
            f"{_STATE}.update({{k: {_LOCALS}[k] for k in {tuple(assigned)!r} if k in {_LOCALS}}})",
            f"return ({''.join(f'{_LOCALS}.get({p!r}), ' for p in printed)})"]
    fn = ast.parse("\n".join([f"def {name}({_STATE}):", *(f"    {s}" for s in head + load_in),
                              "    pass", *(f"    {s}" for s in tail)])).body[0]
    assert isinstance(fn, ast.FunctionDef)
    fn.body = fn.body[:len(head) + len(load_in)] + [stmt] + fn.body[len(head) + len(load_in) + 1:]
    around = ast.parse("\n".join([
        f"{name} = {wrap}({name}, {shown!r})",
        f"{_LOCALS} = locals()",
        f"{_STATE} = {{k: {_LOCALS}[k] for k in {tuple(used)!r} if k in {_LOCALS}}}",
        f"{name}({_STATE})",  # what it returns is for the capture
        *(f"if {n!r} in {_STATE}: {n} = {_STATE}[{n!r}]" for n in assigned),
    ])).body
    out: list[ast.stmt] = [fn, *around]
    original = {id(node) for node in ast.walk(stmt)}  # the block keeps its own line numbers
    for new in out:
        for node in ast.walk(new):
            if id(node) not in original and "lineno" in node._attributes:
                ast.copy_location(node, stmt)
                node.end_lineno = stmt.lineno  # type: ignore[attr-defined]
    return out

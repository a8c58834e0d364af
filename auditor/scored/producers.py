"""The functions whose returned values the claimed stage's line prints (parent side).

The runtime harness captures the evaluations a run makes by wrapping functions, and it ties
the claimed score to the captured evaluation that returned the number on the claimed line.
Which functions to wrap cannot be left to their names: ``def _ppm_mixture_bpb(...)`` or
``def measure(model, toks)`` scores as well as ``def eval_val``. The claimed stage's printing
statement is known (:mod:`auditor.scored.config` matched it to the log line), so the functions
behind it are known by data flow:

- for each value the statement interpolates (``f"final val_bpb:{bpb:.8f}"``), the function whose
  call assigned it in the printing function (``loss, bpb = eval_sliding(...)``; through plain
  copies and read-outs such as ``.item()``);
- the printing function itself, when it returns a value it prints (a scorer that logs its own
  result before returning it).

A function that trains on other data than the validation set (``main``, ``train_and_eval``)
is no scorer: capturing it would replay training.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import libcst as cst

from auditor.static.index import walk
from auditor.static.names import dotted

if TYPE_CHECKING:
    from auditor.scored.formats import LogFormat
    from auditor.static.index import Scope
    from auditor.static.reach import Program

#: How many plain copies (``b = bpb``) are followed back from a printed name.
MAX_COPIES = 4
#: Methods that read a value out of a tensor or convert it, keeping what it is.
_READ_OUTS = frozenset({"item", "cpu", "tolist", "detach", "float", "double", "numpy"})


def printed_names(fmt: LogFormat, fields: Iterable[str] | None = None) -> list[str]:
    """The names ``fmt``'s statement interpolates (``bpb`` in ``f"val_bpb:{bpb:.8f}"``), in all
    its fields or in ``fields`` only."""
    printed: set[str] = set()
    for expr in fmt.fields if fields is None else fields:
        try:
            node = cst.parse_expression(expr)
        except cst.ParserSyntaxError:
            continue
        printed.update(n.value for n in walk(node) if isinstance(n, cst.Name))
    return sorted(printed)


def printed_callees(fmt: LogFormat) -> list[str]:
    """Names of the functions whose calls assigned the values ``fmt``'s statement prints, and
    of the printing function itself when it returns one of them (whatever they do)."""
    scope = fmt.stmt.scope
    printed = set(printed_names(fmt))
    found: list[str] = []
    if not scope.is_module:
        for name in sorted(printed):
            found.extend(_callee(scope, name, MAX_COPIES))
        if scope.cls is None and _returns_any(scope, printed):
            found.append(scope.name)
    return found


def printed_producers(fmt: LogFormat, program: Program) -> list[str]:
    """Names of the module-level functions whose returned values ``fmt``'s statement prints
    (:func:`printed_callees`, less the functions that train)."""
    from auditor.static.evalpath import trainers

    found = printed_callees(fmt)
    training = trainers(program)
    out: list[str] = []
    for name in found:
        defined = [s for s in program.by_name.get(name, ()) if s.cls is None and s.parent is not None and s.parent.is_module]
        if defined and not any(id(s) in training for s in defined) and name not in out:
            out.append(name)
    return out


def _callee(scope: Scope, name: str, copies: int) -> list[str]:
    """The function whose call assigned ``name`` in ``scope`` (every assignment of it)."""
    out: list[str] = []
    for assignment in scope.assigned(name):
        value = _unwrapped(assignment.value)
        if isinstance(value, cst.Call):
            callee = dotted(value.func)
            if callee:
                out.append(callee.rsplit(".", 1)[-1])
        elif isinstance(value, cst.Name) and copies > 0 and value.value != name:
            out.extend(_callee(scope, value.value, copies - 1))
    return out


def _unwrapped(value: cst.BaseExpression | None) -> cst.BaseExpression | None:
    """``f(x).item()`` → ``f(x)``; ``float(f(x))`` → ``f(x)``: the call behind a read-out."""
    for _ in range(4):
        if (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
                and value.func.attr.value in _READ_OUTS and isinstance(value.func.value, cst.Call)):
            value = value.func.value
        elif (isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in ("float", "int")
              and len(value.args) == 1 and isinstance(value.args[0].value, cst.Call)):
            value = value.args[0].value
        else:
            break
    return value


def _returns_any(scope: Scope, names: set[str]) -> bool:
    """Whether a return statement of the function hands back one of ``names``."""
    for value, _stmt in scope.returns:
        if any(isinstance(n, cst.Name) and n.value in names for n in walk(value)):
            return True
    return False

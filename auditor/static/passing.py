"""What callers pass: the roles a function's parameters take from the arguments of its calls.

A function's flow (:class:`auditor.static.flow.Flow`) starts from its parameters. Besides the
labels a summary of the function gives its return values for any argument, the function
itself knows what the submission passes it: the validation tokens an eval function receives
from the loader, the target a mixer's ``score`` receives from the eval loop. Calls are
matched by name across the submission's modules; the roles passed are validation data and
the target, never context tokens (a model's ``forward`` is called with everything).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from auditor.static.facts import EMPTY, Fact, only, renamed, union
from auditor.static.index import CallSite, Scope
from auditor.static.names import dotted
from auditor.static.roles import position_parts

if TYPE_CHECKING:
    from auditor.static.flow import Flow
    from auditor.static.reach import Program

#: Roles a function's parameters take from the arguments its callers pass.
PASSED = frozenset({"val", "val:files", "tgt", "tgt:name"})


def _sites(flow: Flow) -> dict[str, list[tuple[CallSite, Scope, bool]]]:
    """Every call of the submission by callee name: (call, calling scope, called as an attribute)."""
    program = flow.program
    indexes = program.indexes if program is not None else [flow.index]

    def build() -> dict[str, list[tuple[CallSite, Scope, bool]]]:
        sites: dict[str, list[tuple[CallSite, Scope, bool]]] = {}
        for caller in (s for index in indexes for s in index.scopes):
            for call in caller.calls:
                func = call.node.func
                if isinstance(func, cst.Name):
                    sites.setdefault(func.value, []).append((call, caller, False))
                elif isinstance(func, cst.Attribute):
                    sites.setdefault(func.attr.value, []).append((call, caller, True))
        return sites

    if program is None:
        return flow.index.cached("passing:sites", build)
    if "passing:sites" not in program.cache:
        program.cache["passing:sites"] = build()
    return program.cache["passing:sites"]  # type: ignore[return-value]


@dataclass(frozen=True)
class Binding:
    """One call of a function: the calling scope, and each argument with the parameters it binds."""

    call: CallSite
    caller: Scope
    args: tuple[tuple[cst.Arg, tuple[str, ...]], ...]


def call_bindings(flow: Flow, scope: Scope, limit: int = 40) -> list[Binding]:
    """The calls of a function found in the submission, with their arguments bound to its parameters.

    Calls are matched by name: a function by a plain call, a method by a call on ``self``
    or, for classes that are not torch modules, on any object; ``Class(...)`` calls
    ``__init__``. Positional, keyword and ``*args`` arguments map to the parameters; a call
    from the function itself (recursion) is left out.
    """
    node = scope.node
    if not isinstance(node, cst.FunctionDef):
        return []
    cls = scope.cls
    static = any(d.endswith("staticmethod") for d in scope.decorators)
    wanted: list[tuple[CallSite, Scope, int]] = []
    if cls is None:
        wanted = [(c, s, 0) for c, s, attr in _sites(flow).get(scope.name, ()) if not attr]
    else:
        offset = 0 if static else 1
        for call, caller, attr in _sites(flow).get(scope.name, ()):
            receiver = dotted(call.node.func.value) if attr else None
            if attr and (receiver in ("self", "cls") or not cls.is_module):
                wanted.append((call, caller, offset))
        if scope.name == "__init__":
            wanted += [(c, s, 1) for c, s, attr in _sites(flow).get(cls.name, ()) if not attr]
    names = scope.param_names
    star = node.params.star_arg.name.value if isinstance(node.params.star_arg, cst.Param) else None
    positional = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
    out: list[Binding] = []
    for call, caller, offset in wanted[:limit]:
        if caller is scope:
            continue
        slot = offset
        bound: list[tuple[cst.Arg, tuple[str, ...]]] = []
        for arg in call.node.args:
            targets: list[str] = []
            if arg.keyword is not None:
                targets = [arg.keyword.value] if arg.keyword.value in names else []
            elif arg.star == "**":
                continue
            elif arg.star == "*":
                targets = positional[slot:] + ([star] if star else [])
                slot = len(positional)
            else:
                targets = [positional[slot]] if slot < len(positional) else ([star] if star else [])
                slot += 1
            if targets:
                bound.append((arg, tuple(targets)))
        out.append(Binding(call, caller, tuple(bound)))
    return out


def passed_to(flow: Flow, scope: Scope) -> dict[str, Fact]:
    """What the callers of a function pass to each parameter (validation data, targets);
    the calls are those of :func:`call_bindings`."""
    passed: dict[str, Fact] = {}
    for binding in call_bindings(flow, scope):
        caller = binding.caller
        caller_flow = flow.flow_for(caller)
        whole = {dotted(arg.value): targets[0] for arg, targets in binding.args if len(targets) == 1 and dotted(arg.value)}
        for arg, targets in binding.args:
            full = caller_flow.fact(arg.value, caller)
            fact = union(only(full, PASSED), _positions(full, whole))
            if not fact.labels:
                continue
            for target in targets:
                fact_here = renamed(fact, target, lambda v=arg.value, f=caller_flow: f.index.code(v, 70))
                passed[target] = union(passed.get(target, EMPTY), fact_here)
    return passed


def _positions(fact: Fact, whole: dict[str | None, str]) -> Fact:
    """The stream positions an argument holds (``stream[pos]``: ``cur:stream:pos``), where the
    same call also passes the stream and the positions themselves: renamed to the callee's
    parameters, so that ``lookup(tokens, pos, tokens[pos])`` gives its third parameter the token
    at its second parameter's positions of its first."""
    out = EMPTY
    for label in fact.labels:
        parts = position_parts(label)
        if parts is None:
            continue
        kind, stream, base = parts
        if stream in whole and base in whole:
            out = union(out, Fact(frozenset({f"{kind}:{whole[stream]}:{whole[base]}"}), ((f"{kind}:{whole[stream]}:{whole[base]}", fact.reason(label)),)))
    return out


def arguments_for(program: Program, scope: Scope, name: str) -> list[tuple[cst.BaseExpression, Scope]]:
    """What the calls of a module-level function pass for its parameter ``name`` (by position
    or keyword), with the calling function; empty when no call is found."""
    node = scope.node
    if not isinstance(node, cst.FunctionDef) or scope.cls is not None:
        return []
    positional = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
    found = []
    for stmt in program.referrers.get(scope.name, ()):
        for call in stmt.scope.calls:
            if call.stmt is not stmt or call.method != scope.name:
                continue
            arg = call.arg(positional.index(name), name) if name in positional else call.keyword(name)
            if arg is not None:
                found.append((arg, stmt.scope))
    return found


def passed_facts(program: Program, scope: Scope, name: str) -> list[Fact]:
    """The facts of what the calls of a module-level function pass for its parameter ``name``,
    each in its caller's flow; empty when no call is found."""
    from auditor.static.flow import flow_of  # the flow imports this module

    return [flow_of(program.index_of_scope[id(caller)]).fact(arg, caller) for arg, caller in arguments_for(program, scope, name)]

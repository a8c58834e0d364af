"""Effects: which of a function's parameters it writes into state that outlives the call.

A cache or a table is *filled from tokens* when a call hands it token data and the callee
keeps that data, or statistics of it, after it returns. What the callee keeps is decided by
what its code does, never by its name (``absorb_block``, ``put`` and ``tally`` fill a cache
as surely as ``update`` does):

- it writes into ``self``: ``self.counts[key] += 1``, ``self.table[ctx] = …``,
  ``np.add.at(self.hits, idx, 1)``, ``self.x.index_add_(0, idx, …)``, ``self.seen.append(t)``,
  ``self.history = torch.cat([self.history, toks])``;
- it writes into an object its caller passed and keeps (a table parameter):
  ``tab[t] += 1``, ``np.add.at(tab, toks, 1)``, ``counts.update(pairs)``;
- it fills a table of its own and returns it: ``out[t] += 1 … return out``.

A write counts when the parameter's data reaches it — as the key or index written at, as an
amount added, or as a statistic stored (the parameter-marked flow of
:meth:`auditor.static.flow.Flow.marked`, so ``len(toks)`` or ``toks.shape`` carry nothing).
Binding a parameter's values as they are (``self.tokens = toks.cuda()``) or copying them into
a buffer the caller passed (``buf[:n] = toks``) is a conversion, not a statistic, and does not
count; copying them into a buffer the object keeps (``self.history[p:p + n] = toks``) does.
Calls to the submission's other functions are followed: ``self._bump(t)`` fills when ``_bump``
writes ``self``, ``tally(tab, toks)`` when ``tally`` writes its table and ``tab`` is kept.

Calls are resolved by name across the submission's modules (:class:`auditor.static.reach.Program`);
a call none of whose candidates is the submission's own is *unknown* (``None``), and the rules
decide what an unknown callee is worth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

import libcst as cst

from auditor.static.flow import TRANSPARENT, Flow
from auditor.static.index import Assignment, CallSite, Scope, Stmt
from auditor.static.names import dotted

#: Methods that grow or update the container they are called on.
GROW = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "appendleft", "extendleft", "__setitem__"})
#: Array calls that add into their first argument at indices (``np.add.at(a, idx, v)``).
AT_UFUNCS = frozenset({"add", "subtract", "maximum", "minimum", "multiply", "bitwise_or", "logical_or"})
#: In-place tensor methods that only overwrite with a copy (a conversion, not a statistic).
COPY_IN_PLACE = frozenset({"copy_", "set_", "zero_", "fill_", "requires_grad_", "share_memory_", "pin_memory_"})
#: Conversions between a value and the same values (for telling a copy from a statistic).
_CONVERT = frozenset({"asarray", "array", "from_numpy", "as_tensor", "tensor", "ascontiguousarray", "list", "tuple", "int", "long"})


@dataclass(frozen=True)
class Write:
    """One write into state that outlives the call."""

    node: cst.CSTNode
    stmt: Stmt
    #: ``self`` (the object), ``param:NAME`` (an object the caller passed), ``returned``
    #: (a table the function returns)
    into: str
    what: str  # the code written to, for messages ("self.counts[ctx]", "np.add.at(tab, …)")


@dataclass
class Effect:
    """What calling a function does to persistent state: for each parameter position (as in
    the flow's ``param:N``) whose data reaches such state, the first write it reaches."""

    scope: Scope
    fills: dict[int, Write] = field(default_factory=dict)


@dataclass(frozen=True)
class Fill:
    """A call that puts an argument's data into state that outlives it."""

    call: CallSite
    callee: Scope
    argument: cst.BaseExpression
    write: Write

    @property
    def where(self) -> str:
        """``Cache.absorb_block writes self.counts[key]`` (for messages and evidence)."""
        into = {"self": "its object's state", "returned": "a table it returns"}.get(self.write.into, "")
        if self.write.into.startswith("param:"):
            into = f"the object passed as `{self.write.into[6:]}`"
        return f"{self.callee.qualname} writes `{self.write.what}` ({into})"


# -- resolution --------------------------------------------------------------------------


def callees(flow: Flow, call: CallSite) -> list[Scope]:
    """The submission's functions a call may reach, matched by name: ``f(…)`` a function (or
    the ``__init__`` of a class ``f``), ``obj.m(…)`` a method or a module's function."""
    func = call.node.func
    program = flow.program
    by_name = program.by_name if program is not None else flow.index.by_name
    if isinstance(func, cst.Name):
        found = [s for s in by_name.get(func.value, ()) if s.cls is None and not s.is_module]
        classes = program.classes.get(func.value, ()) if program is not None else (
            [flow.index.classes[func.value]] if func.value in flow.index.classes else []
        )
        found += [info.methods["__init__"] for info in classes if "__init__" in info.methods]
        return found
    if isinstance(func, cst.Attribute):
        if _library(flow, func.value):
            return []
        found = [s for s in by_name.get(func.attr.value, ()) if not s.is_module]
        if len(found) > 1:
            own = _receiver_class(flow, call)
            narrowed = [s for s in found if s.cls is not None and s.cls.name == own]
            return narrowed or found
        return found
    return []


def _library(flow: Flow, receiver: cst.BaseExpression) -> bool:
    """Whether a receiver is a module imported from outside the submission (``np.add``,
    ``torch``, ``F``), whose functions are never the submission's."""
    while isinstance(receiver, cst.Attribute):
        receiver = receiver.value
    if not isinstance(receiver, cst.Name):
        return False
    imported = flow.index.imports.aliases.get(receiver.value)
    if imported is None:
        return False
    program = flow.program
    sources = program.sources if program is not None else [flow.index.source]
    own = {PurePosixPath(source.path).stem for source in sources}
    return imported.split(".")[0] not in own


def _receiver_class(flow: Flow, call: CallSite) -> str | None:
    """The class of a method call's receiver where the calling function says it: ``self`` in a
    method, or a name bound once to ``Class(...)`` (``cache = NgramCache(...)``, or
    ``Mixer(...) if on else None``)."""
    func = call.node.func
    assert isinstance(func, cst.Attribute)
    scope = call.stmt.scope
    receiver = func.value
    if not isinstance(receiver, cst.Name):
        return None
    if scope.cls is not None and scope.params and receiver.value == scope.params[0][0]:
        return scope.cls.name
    bound = scope.assigned(receiver.value)
    value = bound[0].value if len(bound) == 1 else None
    if isinstance(value, cst.IfExp):  # ``Mixer(...) if use_mixer else None``
        value = value.body if isinstance(value.body, cst.Call) else value.orelse
    if isinstance(value, cst.Call):
        made = dotted(value.func)
        return made.rsplit(".", 1)[-1] if made else None
    return None


def _offset(scope: Scope) -> int:
    """Where a call's first positional argument lands among the callee's parameters."""
    if scope.cls is None or any(d.endswith("staticmethod") for d in scope.decorators):
        return 0
    return 1 if scope.params and scope.params[0][0] in ("self", "cls") else 0


def bind(call: cst.Call, scope: Scope) -> dict[int, cst.BaseExpression]:
    """The callee's parameter position each argument of a call lands on."""
    names = scope.param_names
    out: dict[int, cst.BaseExpression] = {}
    slot = _offset(scope)
    for arg in call.args:
        if arg.star:
            break
        if arg.keyword is not None:
            if arg.keyword.value in names:
                out[names.index(arg.keyword.value)] = arg.value
            continue
        if slot < len(names):
            out[slot] = arg.value
        slot += 1
    return out


# -- the analysis ------------------------------------------------------------------------


def _root(node: cst.BaseExpression) -> str | None:
    """The name a written place hangs from: ``self`` for ``self.a.b[k]``, ``tab`` for
    ``tab[k]`` and ``tab.setdefault(k, [])``."""
    while True:
        cls = type(node)
        if cls is cst.Name:
            return node.value
        if cls is cst.Attribute or cls is cst.Subscript:
            node = node.value
        elif cls is cst.Call and isinstance(node.func, cst.Attribute):
            node = node.func.value
        else:
            return None


def _is_copy(node: cst.BaseExpression) -> bool:
    """A parameter's values as they are (sliced, moved, converted), not a statistic of them."""
    while True:
        cls = type(node)
        if cls is cst.Name:
            return True
        if cls is cst.Subscript:
            node = node.value
        elif cls is cst.Call and isinstance(node.func, cst.Attribute) and node.func.attr.value in TRANSPARENT:
            node = node.func.value
        elif cls is cst.Call and (dotted(node.func) or "").rsplit(".", 1)[-1] in _CONVERT and len(node.args) >= 1:
            node = node.args[0].value
        else:
            return False


class _Analysis:
    """The effect of one function, in its parameter-marked flow."""

    def __init__(self, effects: Effects, scope: Scope) -> None:
        self.effects = effects
        self.scope = scope
        self.flow = effects.flow_for(scope)
        self.effect = Effect(scope)
        self.self_name = scope.params[0][0] if scope.cls is not None and _offset(scope) == 1 else None
        params = scope.param_names
        self.params = {name for name in params if name != self.self_name}
        self.returned = self._returned()
        self.aliases = self._aliases()

    def _returned(self) -> set[str]:
        out: set[str] = set()
        for value, _ in self.scope.returns:
            items = value.elements if isinstance(value, cst.Tuple) else ()
            for node in [value, *(e.value for e in items)]:
                if isinstance(node, cst.Name):
                    out.add(node.value)
        return out

    def _aliases(self) -> dict[str, str]:
        """Locals bound once to a piece of state (``counts = self.counts``): their writes are its."""
        seen: dict[str, list[Assignment]] = {}
        for a in self.scope.assignments:
            if isinstance(a.target, cst.Name):
                seen.setdefault(a.target.value, []).append(a)
        out = {}
        for name, assignments in seen.items():
            if len(assignments) != 1 or assignments[0].kind != "assign" or assignments[0].value is None:
                continue
            value = assignments[0].value
            if isinstance(value, (cst.Attribute, cst.Subscript)):
                root = _root(value)
                if root is not None and root != name:
                    out[name] = root
        return out

    def place(self, node: cst.BaseExpression) -> str | None:
        """What a written place belongs to: ``self``, ``param:NAME``, ``returned``, or None
        (a local that dies with the call)."""
        root = _root(node)
        root = self.aliases.get(root, root) if root is not None else None
        if root is None:
            return None
        if root == self.self_name:
            return "self"
        if root in self.params:
            return f"param:{root}"
        if root in self.returned:
            return "returned"
        return None

    def carried(self, *nodes: cst.BaseExpression | None) -> set[int]:
        """The parameter positions whose data the expressions are computed from."""
        out: set[int] = set()
        for node in nodes:
            if node is None:
                continue
            for label in self.flow.marked_fact(node, self.scope).prefixed("param:"):
                out.add(int(label[6:]))
        return out

    def record(self, positions: set[int], write: Write) -> None:
        for position in sorted(positions):
            self.effect.fills.setdefault(position, write)

    def run(self) -> Effect:
        for assignment in self.scope.assignments:
            self._assignment(assignment)
        for call in self.scope.calls:
            self._call(call)
        return self.effect

    def _assignment(self, a: Assignment) -> None:
        target, value = a.target, a.value
        if value is None or a.kind not in ("assign", "aug", "ann"):
            return
        if isinstance(target, cst.Name):
            return  # rebinding a name keeps nothing
        into = self.place(target)
        if into is None:
            return
        what = self.flow.index.code(target, 60)
        keys: set[int] = set()
        if isinstance(target, cst.Subscript):
            keys = self.carried(*(e.slice.value for e in target.slice if isinstance(e.slice, cst.Index)))
        amount = self.carried(value)
        write = Write(target, a.stmt, into, what)
        if a.kind == "aug" or _reads(value, target):  # accumulated, or grown from itself
            self.record(keys | amount, write)
        elif keys:  # written at a key computed from the data: a table of the data
            # the values stored count only in a table the object keeps; in a caller's or a
            # returned table, values of one argument at keys of another are a conversion
            # (``out[name] = q[name] * scale``)
            self.record(keys | amount if into == "self" else keys, write)
        elif into == "self" and isinstance(target, cst.Subscript):  # into a buffer the object keeps
            self.record(amount, write)
        elif into != "returned" and not _is_copy(value):  # a statistic stored
            self.record(amount, write)

    def _call(self, call: CallSite) -> None:
        func = call.node.func
        args = [a.value for a in call.node.args]
        code = self.flow.index.code
        last = call.method
        # np.add.at(table, idx, v)
        if isinstance(func, cst.Attribute) and last == "at" and isinstance(func.value, cst.Attribute) \
                and func.value.attr.value in AT_UFUNCS and args:
            into = self.place(args[0])
            if into is not None:
                self.record(self.carried(*args[1:]), Write(call.node, call.stmt, into, code(call.node, 60)))
            return
        if isinstance(func, cst.Attribute):
            into = self.place(func.value)
            in_place = last.endswith("_") and not last.startswith("_") and last not in COPY_IN_PLACE
            if into is not None and (in_place or (last in GROW and into != "returned")):
                self.record(self.carried(*args), Write(call.node, call.stmt, into, code(call.node, 60)))
                return
        self._through(call)

    def _through(self, call: CallSite) -> None:
        """A call to another of the submission's functions: its fills, seen from here."""
        if not any(self.carried(a.value) for a in call.node.args):
            return  # hands over nothing of the parameters: the callee's effect does not matter
        for callee in callees(self.flow, call)[:4]:
            if callee is self.scope:
                continue
            inner = self.effects.of(callee)
            if not inner.fills:
                continue
            bound = bind(call.node, callee)
            func = call.node.func
            for position, write in inner.fills.items():
                argument = bound.get(position)
                if argument is None:
                    continue
                if write.into == "self":
                    holder = func.value if isinstance(func, cst.Attribute) else None
                elif write.into.startswith("param:"):
                    name = write.into[6:]
                    names = callee.param_names
                    holder = bound.get(names.index(name)) if name in names else None
                else:
                    holder = None  # a returned table: the assignment of the result decides
                into = self.place(holder) if holder is not None else None
                if into is not None:
                    self.record(self.carried(argument), Write(call.node, call.stmt, into, write.what))


def _reads(value: cst.BaseExpression, target: cst.BaseExpression) -> bool:
    """Whether ``target = value`` reads what it writes (``self.h = torch.cat([self.h, t])``)."""
    from auditor.static.index import walk

    key = dotted(target) if not isinstance(target, cst.Subscript) else dotted(target.value)
    return key is not None and any(
        type(n) in (cst.Name, cst.Attribute) and dotted(n) == key for n in walk(value)
    )


class Effects:
    """The effects of the submission's functions, computed on demand and cached per program."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self._done: dict[int, Effect] = {}
        self._busy: set[int] = set()

    def flow_for(self, scope: Scope) -> Flow:
        return self.flow.flow_for(scope)

    def of(self, scope: Scope) -> Effect:
        key = id(scope)
        done = self._done.get(key)
        if done is not None:
            return done
        if key in self._busy:
            return Effect(scope)  # recursion: nothing known yet
        self._busy.add(key)
        try:
            effect = _Analysis(self, scope).run()
        finally:
            self._busy.discard(key)
        self._done[key] = effect
        return effect


def effects_of(flow: Flow) -> Effects:
    """The shared effect analysis of a flow's submission (one per program)."""
    program = flow.program
    if program is None:
        return flow.index.cached("effects", lambda: Effects(flow))  # type: ignore[no-any-return]
    if "effects" not in program.cache:
        program.cache["effects"] = Effects(flow)
    return program.cache["effects"]  # type: ignore[return-value]


def fills(flow: Flow, call: CallSite, labels: tuple[str, ...] = ("val",)) -> list[Fill] | None:
    """The fills a call makes with an argument that carries one of ``labels`` (validation
    data by default): ``[]`` when the submission's callees keep none of it, ``None`` when the
    callee is not the submission's (unknown: the caller decides what a name is worth)."""
    candidates = callees(flow, call)
    if not candidates:
        return None
    scope = call.stmt.scope
    carrying = [a.value for a in call.node.args if flow.fact(a.value, scope).has(*labels)]
    if not carrying:
        return []  # nothing of the kind is handed over: no callee's effect needs computing
    effects = effects_of(flow)
    found: list[Fill] = []
    for callee in candidates[:4]:
        effect = effects.of(callee)
        if not effect.fills:
            continue
        for position, argument in bind(call.node, callee).items():
            write = effect.fills.get(position)
            if write is None or write.into == "returned" and not _kept(call):
                continue
            if any(argument is value for value in carrying):
                found.append(Fill(call, callee, argument, write))
    return found


def _kept(call: CallSite) -> bool:
    """Whether a call's result is kept (assigned, or passed on): a returned table is state."""
    node = call.stmt.node
    return not (isinstance(node, cst.Expr) and node.value is call.node)


__all__ = ["Effect", "Effects", "Fill", "Write", "bind", "callees", "effects_of", "fills"]

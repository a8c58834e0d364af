"""The evaluation path: the code that runs when the artifact is evaluated, found by what it does.

The *scored evaluation* is a function that accumulates a loss of the scored tokens (a ``+=``
of a value computed from the target: ``loss_sum += nll.sum()``) over a corpus (validation data,
or a stream from a hub dataset or a generator), and that does not itself train on anything
but validation data (score-first TTT trains on the tokens it scored; a training loop that
logs its loss trains on the training shards). The evaluation path is then

- every function reachable from a scored evaluation (the model, an n-gram cache it fills,
  helpers of any module), except functions that train on other data than the validation set;
- in a function that calls the scored evaluation and also trains (``main``), the statements
  after training ends: after the outermost loop around the last training step, and after the
  artifact is written (reading training data to calibrate a quantizer before the artifact
  exists is part of producing it), with every function they call.

Nothing here goes by names: a function is an evaluation or a training function by the
dataflow of :mod:`auditor.static.flow` (``val``, ``train``, ``tgtdep``) and the training
sites of :mod:`auditor.static.training`.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from auditor.static.deps import depends, names_in
from auditor.static.effects import bind
from auditor.static.flow import flow_of
from auditor.static.index import CallSite, Scope, SourceIndex, Stmt, walk
from auditor.static.names import callee_name, dotted
from auditor.static.reach import Program
from auditor.static.roles import LOSSES, PROB_FUNCS
from auditor.static.training import TrainSite, looks_like_warmup, training_sites

#: Calls that write their argument out: the artifact (or any file) is produced here.
SERIALIZE = frozenset({
    "torch.save", "pickle.dump", "pickle.dumps", "numpy.save", "numpy.savez", "numpy.savez_compressed",
    "torch.jit.save", "safetensors.torch.save_file", "safetensors.torch.save",
})
_WRITES = frozenset({"write", "write_bytes", "save_file", "tofile"})
#: Labels of a corpus other than the validation set (see :mod:`auditor.static.flow`).
OTHER_CORPORA = ("train", "hub", "gen", "file")


@dataclass(frozen=True)
class EvalPart:
    """Code of one function that runs at evaluation: the whole function (``after`` is None)
    or its statements after ``after`` (the last statement of training, or the artifact write)."""

    scope: Scope
    after: Stmt | None
    why: str

    def covers(self, stmt: Stmt) -> bool:
        return self.after is None or stmt.order > self.after.order


def trains(index: SourceIndex, site: TrainSite) -> bool:
    """Whether a gradient step trains on other data than the validation set: its loss is
    computed from the training data, or from data of unknown origin in a loop (a single
    step on dummy tensors is a compile warm-up)."""
    if site.fact.has("train"):
        return True
    return not site.fact.has("val") and bool(site.stmt.loops) and not looks_like_warmup(index, site)


def trainers(program: Program) -> set[int]:
    """Functions (ids) with a gradient step that trains on other data than the validation set."""
    if "evalpath:trainers" not in program.cache:
        found = set()
        for index in program.indexes:
            for site in training_sites(index):
                if trains(index, site):
                    found.add(id(site.scope))
        program.cache["evalpath:trainers"] = found
    return program.cache["evalpath:trainers"]  # type: ignore[return-value]


def _calls_by_name(program: Program) -> dict[str, list[CallSite]]:
    if "evalpath:calls" not in program.cache:
        calls: dict[str, list[CallSite]] = {}
        for index in program.indexes:
            for scope in index.scopes:
                for call in scope.calls:
                    if call.stmt.scope is scope and call.method:
                        calls.setdefault(call.method, []).append(call)
        program.cache["evalpath:calls"] = calls
    return program.cache["evalpath:calls"]  # type: ignore[return-value]


def calls_of(program: Program, scope: Scope) -> list[CallSite]:
    """Calls of a function, matched by name (plain calls; methods on any receiver)."""
    out = []
    for call in _calls_by_name(program).get(scope.name, ()):
        plain = isinstance(call.node.func, cst.Name)
        if (scope.cls is None) == plain or (scope.name == "__init__"):
            out.append(call)
    if scope.name == "__init__" and scope.cls is not None:
        out += [c for c in _calls_by_name(program).get(scope.cls.name, ()) if isinstance(c.node.func, cst.Name)]
    return out


def _accumulates_score(program: Program, scope: Scope, after: Stmt | None = None) -> Stmt | None:
    """A ``+=`` of a value computed from the scored target (``loss_sum += nll.sum()``), after
    the statement ``after`` if given."""
    index = program.index_of_scope[id(scope)]
    flow = flow_of(index)
    for assignment in scope.assignments:
        if assignment.kind != "aug" or assignment.op is not cst.AddAssign or assignment.value is None:
            continue
        if after is not None and assignment.stmt.order <= after.order:
            continue
        if assignment.stmt.scope is not scope:
            continue
        if _a_count(assignment.value):
            continue  # a count table filled (``full += np.bincount(keys)``), not a score
        if flow.fact(assignment.value, scope).has("tgtdep") or _is_loss(scope, assignment.value):
            return assignment.stmt
    return None


#: Calls whose result counts occurrences.
_COUNTING = frozenset({"bincount", "histc", "histogram", "one_hot", "ones_like", "ones"})


def _a_count(value: cst.BaseExpression) -> bool:
    """``1``, ``np.bincount(keys, minlength=n)``, optionally cast (``.astype(np.int32)``)."""
    while (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
           and value.func.attr.value in ("astype", "to", "int", "long", "float", "type")):
        value = value.func.value
    if isinstance(value, cst.Integer):
        return True
    if isinstance(value, cst.Call):
        return callee_name(value) in _COUNTING
    return False


def _loss_calls(node: cst.CSTNode) -> list[cst.Call]:
    out = []
    for inner in walk(node):
        if isinstance(inner, cst.Call):
            last = callee_name(inner)
            if last in LOSSES or last in PROB_FUNCS:
                out.append(inner)
    return out


def _is_loss(scope: Scope, value: cst.BaseExpression) -> bool:
    """A value computed by a loss or log-probability call (``cross_entropy``, ``log_softmax``),
    here or in an assignment of a name it is computed from."""
    if _loss_calls(value):
        return True
    needed = depends(scope, names_in(value), limit=60)
    return any(
        isinstance(a.target, cst.Name) and a.target.value in needed and a.value is not None and _loss_calls(a.value)
        for a in scope.assignments
    )


def scored_names(program: Program, scope: Scope) -> set[str]:
    """Names of a scored evaluation its scored targets are computed from: the targets (by
    use: a loss's target, a gather's index) and what they are sliced from."""
    flow = flow_of(program.index_of_scope[id(scope)])
    roots = {name for name, fact in flow.of(scope).names.items() if fact.has("tgt")}
    for call in scope.calls:
        if call.stmt.scope is scope and call.method in LOSSES:
            target = call.arg(1, "target")
            if target is not None:
                roots |= names_in(target)
    return depends(scope, roots, limit=80) if roots else set()


def _corpus(program: Program, scope: Scope) -> bool:
    """Whether a function handles an evaluation corpus: validation data, a hub dataset or
    generated tokens, its own or passed by a caller."""
    flow = flow_of(program.index_of_scope[id(scope)])
    if any(fact.has("val", "hub", "gen") for fact in flow.of(scope).names.values()):
        return True
    for call in calls_of(program, scope)[:20]:
        caller = call.stmt.scope
        caller_flow = flow_of(program.index_of_scope[id(caller)])
        if any(caller_flow.fact(a.value, caller).has("val", "hub", "gen") for a in call.node.args):
            return True
    return False


def scored_evaluations(program: Program) -> list[Scope]:
    """Functions that score an evaluation corpus (see the module's docstring)."""
    if "evalpath:scored" not in program.cache:
        train = trainers(program)
        found = []
        for index in program.indexes:
            for scope in index.functions:
                if id(scope) in train or not any(a.kind == "aug" for a in scope.assignments):
                    continue
                if _accumulates_score(program, scope) is not None and _corpus(program, scope):
                    found.append(scope)
        program.cache["evalpath:scored"] = found
    return program.cache["evalpath:scored"]  # type: ignore[return-value]


def _reach(program: Program, roots: list[Scope], into: dict[int, EvalPart], why: str) -> None:
    """Every function reachable from ``roots`` (by name), training functions excepted."""
    train = trainers(program)
    queue = list(roots)
    while queue:
        scope = queue.pop()
        if id(scope) in into and into[id(scope)].after is None:
            continue
        into[id(scope)] = EvalPart(scope, None, why)
        for child in scope.children:
            queue.append(child)
        for name in scope.refs:
            if name.startswith("__") and name.endswith("__"):
                continue  # ``super().__init__()``: the classes themselves are reached by name
            for target in program._targets(name):
                if id(target) not in train and target is not scope and not target.is_module:
                    if id(target) not in into or into[id(target)].after is not None:
                        queue.append(target)


def writes_file(program: Program, call: CallSite, depth: int = 0) -> bool:
    """A call that writes a file: ``torch.save``, ``f.write(blob)``, or a function of the
    submission that does."""
    if call.qualified in SERIALIZE or call.method in _WRITES:
        return True
    if depth >= 2 or not isinstance(call.node.func, cst.Name):
        return False
    for target in program.by_name.get(call.method, ())[:3]:
        if any(writes_file(program, inner, depth + 1) for inner in target.calls if inner.stmt.scope is target):
            return True
    return False


def training_end(program: Program, scope: Scope) -> Stmt | None:
    """The statement of a function after which training is over: the end of the outermost
    loop around its last training step (a gradient step on other data than the validation
    set, here or in a function it calls), or the artifact write after it, whichever is later."""
    train = trainers(program)
    last: Stmt | None = None
    index = program.index_of_scope[id(scope)]
    for site in training_sites(index):
        if site.scope is scope and trains(index, site):
            if last is None or site.stmt.order > last.order:
                last = site.stmt
    for call in scope.calls:
        if call.stmt.scope is not scope or not isinstance(call.node.func, cst.Name):
            continue
        if any(id(t) in train for t in program.by_name.get(call.method, ())):
            if last is None or call.stmt.order > last.order:
                last = call.stmt
    if last is None:
        return None
    if last.loops:
        outer = last.loops[0]
        inside = [s for s in scope.stmts if outer in s.loops or s.node is outer]
        last = max(inside, key=lambda s: s.order)
    for call in scope.calls:
        if call.stmt.scope is scope and call.stmt.order > last.order and writes_file(program, call):
            last = call.stmt
            if last.loops:
                outer = last.loops[0]
                last = max((s for s in scope.stmts if outer in s.loops), key=lambda s: s.order)
    return last


def eval_path(program: Program) -> dict[int, EvalPart]:
    """The code that runs at evaluation, per function (ids of scopes)."""
    if "evalpath:parts" in program.cache:
        return program.cache["evalpath:parts"]  # type: ignore[return-value]
    parts: dict[int, EvalPart] = {}
    scored = scored_evaluations(program)
    _reach(program, scored, parts, "reachable from the scored evaluation")
    callers: list[Scope] = []
    for scope in scored:
        for call in calls_of(program, scope):
            caller = call.stmt.scope
            if id(caller) not in parts and caller not in callers:
                callers.append(caller)
    # a function that trains and then scores inline (``main`` with no eval function)
    for index in program.indexes:
        for site in training_sites(index):
            scope = site.scope
            if id(scope) in parts or scope in callers or not trains(index, site):
                continue
            end = training_end(program, scope)
            if end is not None and _accumulates_score(program, scope, end) is not None:
                callers.append(scope)
    for caller in callers:
        end = training_end(program, caller)
        if end is None:
            continue
        parts[id(caller)] = EvalPart(caller, end, "after training ends")
        later = []
        for call in caller.calls:
            if call.stmt.scope is caller and call.stmt.order > end.order and isinstance(call.node.func, cst.Name):
                later += [t for t in program.by_name.get(call.method, ()) if id(t) not in parts]
        _reach(program, later, parts, "called after training ends")
    program.cache["evalpath:parts"] = parts
    return parts


def stream_params(program: Program, scope: Scope) -> set[str]:
    """Parameters of a scored evaluation its targets are sliced from (the token stream): the
    device or the model its targets are moved to or computed with are not."""
    sliced = {site.node.value.value for site in scope.subscripts if isinstance(site.node.value, cst.Name)}
    return scored_names(program, scope) & set(scope.param_names) & sliced


def bound_args(scope: Scope, call: CallSite) -> list[tuple[str, cst.BaseExpression]]:
    """(parameter, argument) pairs of a call of ``scope`` (see :func:`auditor.static.effects.bind`)."""
    names = scope.param_names
    return [(names[position], value) for position, value in bind(call.node, scope).items()]


def receiver(call: CallSite) -> str | None:
    func = call.node.func
    return dotted(func.value) if isinstance(func, cst.Attribute) else None

"""Gradient steps and scoring passes, and their order: the facts behind the TTT rules.

A *training site* is a ``loss.backward()`` (or ``torch.autograd.grad``) call; what it trains
on is the dataflow of its loss (:mod:`auditor.static.flow`): ``val`` when the batch was
sliced from validation tokens, ``grad`` when the loss depends on a fresh tensor created
with ``requires_grad`` (SLOT's per-window delta). A *scoring event* is the accumulation of
a loss for reporting under ``no_grad``/``inference_mode`` (``loss_sum += nll.sum()``), or a
call to a function of the submission that scores (one that accumulates such a loss and never
trains). Score-first test-time training scores a chunk and then trains on it inside the same
loop; pre-quantization TTT trains on the validation tokens in a pass of its own, and the
scoring comes after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import libcst as cst

from auditor.source import code_of
from auditor.static.deps import depends, names_in
from auditor.static.flow import Fact, Flow, flow_of
from auditor.static.index import CallSite, Scope, SourceIndex, Stmt, own_nodes, walk
from auditor.static.names import dotted
from auditor.static.reach import Program

NO_GRAD = ("no_grad", "inference_mode")
SCORE_NAME = re.compile(r"(loss|nll|bits|bpb|score|ce_sum|logprob|lp_sum|total_nats|nats)", re.I)
SCORER_NAME = re.compile(r"(^|_)(eval|evaluate|score|scoring)(_|$)", re.I)
WARMUP = re.compile(r"warm", re.I)
#: What a scored loss is computed with.
SCORE_VALUE = re.compile(r"cross_entropy|nll_loss|log_softmax|logsumexp|nll|loss|log\(|\blogits\b|forward_logits", re.I)


@dataclass(eq=False)
class TrainSite:
    """A gradient computation: ``loss.backward()`` and the facts of its loss."""

    call: CallSite
    loss: cst.BaseExpression
    fact: Fact

    @property
    def stmt(self) -> Stmt:
        return self.call.stmt

    @property
    def scope(self) -> Scope:
        return self.call.stmt.scope


@dataclass(eq=False)
class ScoreEvent:
    stmt: Stmt
    node: cst.CSTNode
    what: str  # "accumulates …" or "calls eval_val"
    #: Without gradients (no_grad/inference_mode, or a call to a scoring function); else an
    #: accumulation that counts as scoring only when it is not the training loss itself.
    certain: bool = True
    names: frozenset[str] = frozenset()  # what an accumulated value is computed from


def in_no_grad(stmt: Stmt) -> bool:
    if any(any(w.endswith(n) for n in NO_GRAD) for w in stmt.withs):
        return True
    scope = stmt.scope
    return any(any(d.endswith(n) for n in NO_GRAD) for d in scope.decorators)


#: Functional gradient transforms: ``f = nn.value_and_grad(model, loss_fn)`` (MLX, JAX); a call
#: of ``f`` computes a loss and its gradients, as ``loss.backward()`` does.
_GRAD_TRANSFORMS = ("value_and_grad", "jax.grad", "mlx.core.grad")


def _gradient_function(index: SourceIndex, scope: Scope, name: str) -> bool:
    """Whether ``name`` is bound, here or at module level, to a gradient transform of a loss
    (also through a wrapper: ``mx.compile(nn.value_and_grad(model, model.loss))``)."""
    for where in (scope, index.module_scope):
        bound = [a for a in where.assigned(name) if a.value is not None]
        if bound:
            return any(isinstance(n, cst.Call) and (index.imports.qualify(n.func) or "").endswith(_GRAD_TRANSFORMS)
                       for a in bound for n in walk(a.value))
    return False


def training_sites(index: SourceIndex) -> list[TrainSite]:
    def compute() -> list[TrainSite]:
        flow = flow_of(index)
        sites = []
        for scope in index.scopes:
            for call in scope.calls:
                loss = None
                if call.method == "backward" and isinstance(call.node.func, cst.Attribute):
                    loss = call.node.func.value
                elif call.qualified in ("torch.autograd.grad", "torch.autograd.backward") and call.node.args:
                    loss = call.node.args[0].value
                elif isinstance(call.node.func, cst.Name) and _gradient_function(index, scope, call.node.func.value):
                    loss = call.node  # its value is the loss (and the gradients)
                if loss is None:
                    continue
                sites.append(TrainSite(call, loss, flow.fact(loss, scope)))
        return sites

    return index.cached("training_sites", compute)


def score_events(index: SourceIndex, scope: Scope, program: Program | None = None, any_context: bool = False) -> list[ScoreEvent]:
    """Where a function scores: loss accumulations under no_grad, and calls to scoring functions.

    ``any_context`` counts accumulations without gradients being switched off (for helper
    functions that never train, whose caller computed the loss).
    """
    events = []
    for assignment in scope.assignments:
        if assignment.kind != "aug" or assignment.op is not cst.AddAssign:
            continue
        name = dotted(assignment.target) if isinstance(assignment.target, (cst.Name, cst.Attribute)) else None
        if name is None or not is_scored_accumulator(index, scope, name, assignment.value):
            continue
        certain = any_context or in_no_grad(assignment.stmt) or _computed_without_grad(scope, assignment.value)
        from auditor.static.flow import depends, names_in

        names = frozenset(depends(scope, names_in(assignment.value), limit=80)) if not certain else frozenset()
        what = f"accumulates `{name}`" + (" without gradients" if certain else "")
        events.append(ScoreEvent(assignment.stmt, assignment.stmt.node, what, certain, names))
    if program is not None:
        scorers = scoring_functions(program)
        for call in scope.calls:
            target = call.method
            if target in scorers and call.stmt.scope is scope:
                events.append(ScoreEvent(call.stmt, call.node, f"calls {target}"))
    events.sort(key=lambda e: e.stmt.order)
    return events


def is_scored_accumulator(index: SourceIndex, scope: Scope, name: str, value: cst.BaseExpression) -> bool:
    """Whether ``name += value`` accumulates a score: the value is computed from the scored
    token (a loss of the target, a probability read at it), or, as a tie-breaker, the
    accumulator is named like a loss (``loss_sum``, ``nll_total``)."""
    if SCORE_NAME.search(name.rsplit(".", 1)[-1]):
        return True
    if flow_of(index).fact(value, scope).has("tgtdep"):
        return True
    # what the function returns, or adds into a tensor its caller passed (``loss_sum += …``
    # on a parameter): either way the caller's total
    outputs = _returned(scope) | set(scope.param_names)
    return name in outputs and not _a_count(value) and _reduces(value)


def _returned(scope: Scope) -> set[str]:
    """Names the function's return values are computed from (the returned loss, bpb, sums)."""
    from auditor.static.flow import depends, names_in

    roots: set[str] = set()
    for value, _ in scope.returns:
        roots |= names_in(value)
    return depends(scope, roots, limit=60) if roots else set()


_COUNTS = frozenset({"numel", "len", "size", "shape", "count_nonzero", "nelement"})


_NUMBERS = frozenset({"int", "float", "round", "len", "abs", "bool", "str"})


def _reduces(value: cst.BaseExpression) -> bool:
    """A value computed by a call (``(nll * mask).sum()``, ``score(chunk)``), not a plain
    number (``int(delta)``, ``n``)."""
    from auditor.static.index import walk

    return any(
        isinstance(n, cst.Call) and not (isinstance(n.func, cst.Name) and n.func.value in _NUMBERS)
        for n in walk(value)
    )


def _a_count(value: cst.BaseExpression) -> bool:
    """A constant or a count of elements (``n += 1``, ``tokens += y.numel()``): not a score."""
    if isinstance(value, (cst.Integer, cst.Float)):
        return True
    from auditor.static.index import walk

    return any(isinstance(n, cst.Name) and n.value in _COUNTS for n in walk(value)) or any(
        isinstance(n, cst.Attribute) and n.attr.value in _COUNTS for n in walk(value)
    )


def _computed_without_grad(scope: Scope, value: cst.BaseExpression) -> bool:
    """Whether a value is computed from a loss that was computed under no_grad/inference_mode."""
    from auditor.static.flow import depends, names_in

    needed = depends(scope, names_in(value), limit=60)
    for assignment in scope.assignments:
        target = assignment.target
        if isinstance(target, cst.Name) and target.value in needed and in_no_grad(assignment.stmt):
            if assignment.value is not None and SCORE_VALUE.search(code_of(assignment.value)):
                return True
    return False


def scoring_functions(program: Program) -> set[str]:
    """Names of the submission's functions that score (and do not train)."""

    def compute() -> set[str]:
        names: set[str] = set()
        trains: set[str] = set()
        for index in program.indexes:
            for site in training_sites(index):
                trains.add(site.scope.name)
        for index in program.indexes:
            for scope in index.functions:
                if scope.name in trains:
                    continue
                if score_events(index, scope, any_context=True) or (SCORER_NAME.search(scope.name) and scope.returns):
                    names.add(scope.name)
        return names

    if "scoring_functions" not in program.cache:
        program.cache["scoring_functions"] = compute()
    return program.cache["scoring_functions"]


def common_loop(a: Stmt, b: Stmt):
    """The innermost loop around both statements (same scope), or None."""
    shared = None
    for la, lb in zip(a.loops, b.loops):
        if la is lb:
            shared = la
        else:
            break
    return shared


def is_epoch_loop(loop) -> bool:
    """A loop over epochs (``for epoch in range(args.ttt_epochs)``): each pass covers the whole set."""
    if not isinstance(loop, cst.For):
        return False
    text = " ".join(filter(None, (dotted(loop.target), code_of(loop.iter))))
    return bool(re.search(r"epoch|(^|_)ep(_|$|s\b)", text, re.I))


def _counts(event: ScoreEvent, loss: frozenset[str] | None) -> bool:
    """Whether an event scores, for a training step whose loss is computed from ``loss``."""
    if event.certain:
        return True
    return loss is not None and not (event.names & loss)


def scored_before(site: Stmt, events: list[ScoreEvent], loss: frozenset[str] | None = None) -> ScoreEvent | None:
    """A scoring event that runs before ``site`` in each iteration of a loop around both."""
    for event in events:
        if event.stmt.order < site.order and common_loop(event.stmt, site) is not None and _counts(event, loss):
            return event
    return None


def scored_after(site: Stmt, events: list[ScoreEvent], loss: frozenset[str] | None = None) -> ScoreEvent | None:
    for event in events:
        if event.stmt.order > site.order and _counts(event, loss):
            return event
    return None


def loss_names(site: TrainSite) -> frozenset[str]:
    """The names in a training step's loss expression (``loss`` in ``loss.backward()``)."""
    from auditor.static.flow import names_in

    return frozenset(names_in(site.loss))


def val_source(index: SourceIndex, flow: Flow, scope: Scope) -> tuple[str, Stmt] | None:
    """The first statement of a function that slices validation tokens (for the evidence)."""
    for assignment in scope.assignments:
        value = assignment.value
        if value is None or assignment.kind not in ("assign", "ann"):
            continue
        if not any(isinstance(n, cst.Subscript) for n in _shallow(value)):
            continue
        fact = flow.fact(value, scope)
        if fact.has("val"):
            return index.code(assignment.stmt.node, 120), assignment.stmt
    return None


def _shallow(node: cst.CSTNode):
    from auditor.static.index import walk

    for i, child in enumerate(walk(node)):
        if i > 40:
            return
        yield child


def looks_like_warmup(index: SourceIndex, site: TrainSite) -> str:
    """A compile warm-up rather than adaptation: names or log text around the loop say so."""
    scope = site.scope
    texts = []
    for loop in site.stmt.loops:
        texts.append(index.code(loop.target if isinstance(loop, cst.For) else loop.test, 80))
        if isinstance(loop, cst.For):
            texts.append(index.code(loop.iter, 80))
    lo = site.stmt.loops[0] if site.stmt.loops else None
    if lo is not None:
        start = index.stmt_of.get(lo)
        if start is not None:
            for stmt in scope.stmts[max(0, start.order - 8) : start.order + 1]:
                texts.append(index.code(stmt.node, 200))
    text = " ".join(texts)
    match = WARMUP.search(text)
    return match.group(0) if match else ""


def per_pass_losses(flow: Flow, scope: Scope, node: cst.BaseExpression, program: Program | None) -> str:
    """Why a value holds per-token losses of a scoring pass, by provenance ("" when nothing
    says so): computed from the scored target (a ``cross_entropy``, a log-probability gathered
    at the target), from a pass over the validation data, or returned by one of the
    submission's scoring functions (:func:`scoring_functions`)."""
    fact = flow.fact(node, scope)
    if fact.has("tgtdep", "tgt"):
        return "computed from the scored target"
    if fact.has("val"):
        return "computed from the validation data"
    if program is None:
        return ""
    scorers = scoring_functions(program)
    needed = depends(scope, names_in(node), limit=80)
    values = [node] + [a.value for a in scope.assignments if a.value is not None and dotted(a.target) in needed]
    for value in values:
        for child in walk(value):
            if isinstance(child, cst.Call):
                name = (dotted(child.func) or "").rsplit(".", 1)[-1]
                if name in scorers:
                    return f"returned by the scoring function {name}"
    return ""


_REPORTS = frozenset({"print", "log0", "log", "info", "write"})


def reported(index: SourceIndex, stmt: Stmt, program: Program | None) -> bool:
    """Whether what a statement assigns reaches what its function reports: a returned value, a
    scored accumulation, or a printed or logged line."""
    scope = stmt.scope
    written = {dotted(a.target) for a in scope.assignments if a.stmt is stmt} - {None}
    if not written:
        return True  # the expression itself is returned or printed where it stands
    if written & _returned(scope):
        return True
    for event in score_events(index, scope, program, any_context=True):
        node = event.stmt.node
        if isinstance(node, cst.AugAssign) and written & depends(scope, names_in(node.value), limit=80):
            return True
    for call in scope.calls:
        if call.method in _REPORTS and written & depends(scope, names_in(call.node), limit=80):
            return True
    return False



#: What may be done with a throwaway module without it leaving its function: call it, read its
#: parameters into an optimizer, move it, switch its mode.
_MODULE_USES = frozenset({"parameters", "named_parameters", "to", "cuda", "float", "half", "bfloat16", "train",
                          "eval", "zero_grad", "requires_grad_"})
#: Method calls that return the module they are called on (``nn.Linear(d, v).to(device)``).
_CHAINED = frozenset({"to", "cuda", "float", "half", "bfloat16", "train", "eval", "requires_grad_"})


def throwaway_modules(index: SourceIndex, site: TrainSite) -> tuple[str, ...]:
    """The modules a training step updates, when each one is built in the step's function and
    never leaves it (a linear probe fitted for a diagnostic): such a step changes no model
    that is scored afterwards. Empty when anything else may be updated: an optimizer or module
    that comes from outside, a manual update through ``.grad``, a module that is returned,
    stored, aliased or passed on, or no optimizer built in the function at all.

    A trainable is what an optimizer steps, whatever it is called; what the module computes
    may still leave the function (a probe's loss, returned for a log line), which the caller
    judges (:func:`module_outputs_returned`)."""
    scope = site.scope
    if scope.is_module:
        return ()
    if any(isinstance(n, cst.Attribute) and n.attr.value == "grad" for s in scope.stmts for n in own_nodes(s.node)):
        return ()  # a manual update (``p.data -= lr * p.grad``) steps what it names
    modules: set[str] = set()
    for call in scope.calls:
        if call.method != "step" or not isinstance(call.node.func, cst.Attribute):
            continue
        owner = call.node.func.value
        if not isinstance(owner, cst.Name):
            return ()
        optimizers = scope.assigned(owner.value)
        if not optimizers or owner.value in scope.param_names:
            return ()
        for assignment in optimizers:
            value = assignment.value
            if not isinstance(value, cst.Call) or assignment.kind != "assign":
                return ()
            qualified = index.imports.qualify(value.func) or ""
            if qualified.startswith("torch.optim.lr_scheduler."):
                continue  # a scheduler's step updates a learning rate
            if not qualified.startswith("torch.optim.") or not value.args:
                return ()
            found = _parameters_of(value.args[0].value)
            if not found:
                return ()
            modules |= found
    if not modules or not all(_built_here(index, scope, name) and not _escapes(scope, name) for name in modules):
        return ()
    return tuple(sorted(modules))


def _parameters_of(params: cst.BaseExpression) -> set[str]:
    """``m.parameters()`` (in a ``list(...)``, a sum of lists): the modules whose parameters an
    optimizer is built over; empty when it is built over anything else (a list of tensors)."""
    modules: set[str] = set()
    for node in walk(params):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
                "parameters", "named_parameters") and isinstance(node.func.value, cst.Name):
            modules.add(node.func.value.value)
    names = {n.value for n in walk(params) if isinstance(n, cst.Name)}
    return modules if names <= modules | {"list", "tuple", "parameters", "named_parameters"} else set()


def _built_here(index: SourceIndex, scope: Scope, name: str) -> bool:
    """Every assignment of ``name`` in the function constructs a module (``nn.Linear(…)``, a
    module class of the source, optionally ``.to(device)``)."""
    if name in scope.param_names:
        return False
    assignments = scope.assigned(name)
    if not assignments:
        return False
    for assignment in assignments:
        value = assignment.value
        if assignment.kind != "assign" or not isinstance(assignment.target, cst.Name):
            return False
        while (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
               and value.func.attr.value in _CHAINED and isinstance(value.func.value, cst.Call)):
            value = value.func.value
        if not isinstance(value, cst.Call):
            return False
        qualified = index.imports.qualify(value.func) or ""
        info = index.classes.get(dotted(value.func) or "")
        if not (qualified.startswith("torch.nn.") or (info is not None and index.class_is_module(info))):
            return False
    return True


def _escapes(scope: Scope, name: str) -> bool:
    """Whether the module object ``name`` may outlive the function: any use other than calling
    it, the uses of :data:`_MODULE_USES` and its own assignments (returned, stored in an
    attribute or a container, aliased, passed to a call, declared global)."""
    for stmt in scope.stmts:
        node = stmt.node
        if isinstance(node, (cst.Global, cst.Nonlocal)) and any(n.name.value == name for n in node.names):
            return True
        allowed: set[int] = set()
        uses: list[cst.Name] = []
        for child in own_nodes(node):
            if isinstance(child, cst.Call) and isinstance(child.func, cst.Name) and child.func.value == name:
                allowed.add(id(child.func))
            elif (isinstance(child, cst.Attribute) and isinstance(child.value, cst.Name) and child.value.value == name
                  and child.attr.value in _MODULE_USES):
                allowed.add(id(child.value))
            elif isinstance(child, cst.AssignTarget) and isinstance(child.target, cst.Name) and child.target.value == name:
                allowed.add(id(child.target))
            elif isinstance(child, cst.Name) and child.value == name:
                uses.append(child)
        if any(id(use) not in allowed for use in uses):
            return True
    return False


def module_outputs_returned(scope: Scope, modules: Iterable[str]) -> bool:
    """Whether what the function returns is computed with one of ``modules``."""
    wanted = set(modules)
    return any(wanted & depends(scope, names_in(value), limit=120) for value, _ in scope.returns)


def val_reaches(flow: Flow, scope: Scope, expr: cst.BaseExpression, at: Stmt, depth: int = 0,
                seen: set[int] | None = None) -> bool:
    """Whether validation data reaches ``expr`` as it is evaluated at ``at``: through the
    assignments that can reach that statement (earlier in the function, or later in a loop
    around both), not through a later rebinding of the same name. A function that trains on
    ``x, y = loader.next_batch()`` and afterwards runs score-first TTT with ``x, y =
    local[:-1], local[1:]`` trains on training batches first: the data flow of
    :mod:`auditor.static.flow` does not tell the two bindings of ``x`` apart.
    Parameters and globals keep the flow's facts (what callers pass)."""
    from auditor.static.roles import literal_role, seed, setting_role

    if depth > 12:
        return flow.fact(expr, scope).has("val")  # too deep to follow: the flow's answer
    seen = set() if seen is None else seen
    local = {a.target.value for a in scope.assignments if isinstance(a.target, cst.Name)}
    stack: list[cst.CSTNode] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name):
            if node.value not in local:
                if flow.name(_owner(scope, node.value), node.value).has("val"):
                    return True
                continue
            bindings = scope.assigned(node.value)
            if any(a.value is None for a in bindings):
                # a binding whose value the index does not keep (a nested unpacking): the
                # flow's answer, not refined
                if flow.name(scope, node.value).has("val"):
                    return True
                continue
            for assignment in bindings:
                if id(assignment) in seen:
                    continue
                # bound before, by the same statement (a comprehension, a loop header), or
                # later in a loop around both
                if assignment.stmt.order <= at.order or common_loop(assignment.stmt, at) is not None:
                    seen.add(id(assignment))
                    if val_reaches(flow, scope, assignment.value, assignment.stmt, depth + 1, seen):
                        return True
            for value, stmt in _fills_of(scope, node.value):
                if id(value) not in seen and (stmt.order < at.order or common_loop(stmt, at) is not None):
                    seen.add(id(value))
                    if val_reaches(flow, scope, value, stmt, depth + 1, seen):
                        return True
            continue
        if isinstance(node, cst.SimpleString) and literal_role(node).has("val"):
            return True
        if isinstance(node, cst.Attribute):
            if setting_role(node, flow.index).has("val") or seed(node.attr.value).has("val"):
                return True
            stack.append(node.value)
            continue
        stack.extend(c for c in node.children if isinstance(c, cst.CSTNode))
    return False


def _owner(scope: Scope, name: str) -> Scope:
    """The function whose variable ``name`` is, for a name a nested function reads from its
    enclosing one (a closure), else ``scope`` (a parameter, a global)."""
    current = scope
    while current.parent is not None and not current.parent.is_module and name not in current.param_names:
        parent = current.parent
        if name in parent.param_names or parent.assigned(name):
            return parent
        current = parent
    return scope


def _fills_of(scope: Scope, name: str) -> list[tuple[cst.BaseExpression, Stmt]]:
    """What a function puts into the container ``name``, as the flow reads fills
    (:func:`auditor.static.flow.fill_calls`: ``name.append(x)``) and item stores (``name[i] = x``)."""
    from auditor.static.flow import fill_calls

    stmts = {id(call.node): call.stmt for call in scope.calls}
    found: list[tuple[cst.BaseExpression, Stmt]] = []
    for call in fill_calls(scope):
        func = call.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == name and id(call) in stmts:
            found.extend((arg.value, stmts[id(call)]) for arg in call.args)
    for site in scope.subscripts:
        if site.store and isinstance(site.node.value, cst.Name) and site.node.value.value == name:
            node = site.stmt.node
            if isinstance(node, (cst.Assign, cst.AugAssign)) and node.value is not None:
                found.append((node.value, site.stmt))
    return found

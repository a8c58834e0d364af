"""Dataflow: which roles a value carries, from where it comes from and how it is used.

Each value gets a set of labels, computed over a function's assignments until nothing
changes (flow-insensitive: a name carries what any of its assignments gives it). Where the
labels start is :mod:`auditor.static.roles` (provenance first, names only as a tie-breaker);
what callers pass is :mod:`auditor.static.passing`; the facts themselves are
:mod:`auditor.static.facts`.

``val``
    validation data: what a loader over the validation files returns (a ``fineweb_val_*``
    path, the validation-files setting), what an eval function receives in its place, and
    what is sliced or converted from it. A value known only by its name (``val_tokens``, a
    tie-breaker) carries ``val`` alone; one whose data comes from the validation files also
    carries ``val:files``.
``tgt``
    the token being scored: the index of a gather over log-probabilities, the target of
    ``cross_entropy``/``nll_loss``, the one-ahead slice of the validation stream (``s[1:]``,
    ``s[j + 1]``), what callers pass for it, and everything derived from those
    (``y_np = y_batch.cpu().numpy().astype(np.uint64)``, ``tgt[sufficient]``, …). A target
    known only from its name also carries ``tgt:name``.
``tok``
    context tokens, known from names (``x``, ``tokens``, ``ctx…``) — a tie-breaker.
``hash``
    passed through a hash: XOR, a product with a prime-like constant, ``hash()``, or a
    target-and-context combination reduced to a table slot (``% size``, ``& mask``).
``joined``
    the target combined with context tokens or a hash (XOR, sum, shift, or a tuple); the
    fact's :class:`~auditor.static.facts.Join` says where and how. What makes a join a
    violation is the rules' business (PG101).
``ctx:S:B`` / ``cur:S:B``
    a read of stream ``S`` at index ``B - k`` (context) or at ``B`` itself; a hash of the
    context combined with ``S[B]`` joins the context with the token after it (the n-gram
    shape ``tokens_np[pos - k]`` … ``tokens_np[pos]``).
``grad``
    a tensor created with ``requires_grad=True`` (or ``.requires_grad_()``) in the function.
``train``
    training data: what a loader over the training files returns (a ``fineweb_train_*``
    path, the training-files setting, a glob over them) and what is computed from it; an
    object a statement fills with it (``cache.update(chunk)``, the call's result unused)
    carries it too, so that a table prefilled from the training shards is known as such.
``hub`` / ``gen`` / ``file``
    another corpus: what ``datasets.load_dataset`` returns (a hub dataset), generated
    tokens (``model.generate(...)``, ``torch.multinomial``), and a token or text file named
    by a literal that does not say it is held out (``"data/wiki.bin"``).
``tgtdep`` / ``tokdep``
    computed from the target / from context tokens (a loss, a probability).

Calls to functions of the submission, in any of its modules, use a summary of the callee
(which parameters reach its return values, and which labels it adds); unknown calls pass
their receiver's and arguments' labels through, except constructors of fresh arrays
(``np.zeros``, ``arange``). Every label remembers one reason (the alias chain that produced
it) for the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from auditor.static.deps import depends, names_in
from auditor.static.facts import (
    EMPTY,
    TOKEN_LABELS,
    Fact,
    Join,
    Lazy,
    demote,
    only,
    renamed,
    union,
    with_label,
)
from auditor.static.index import Assignment, Scope, SourceIndex, Stmt, walk
from auditor.static.names import callee_name, dotted
from auditor.static.passing import passed_to
from auditor.static.roles import (
    HASH_NAME,
    index_base,
    int_value,
    is_constant,
    is_prime_like,
    is_prob,
    is_tgt_name,
    is_tok_name,
    is_val_name,
    literal_role,
    setting_role,
    position_parts,
    seed,
    slice_lower,
    translate_position,
    use_roles,
)

__all__ = [
    "EMPTY", "TOKEN_LABELS", "Fact", "Flow", "Join", "Lazy", "demote", "depends", "flow_of", "int_value",
    "is_tgt_name", "is_tok_name", "is_val_name", "names_in", "union",
]

#: Calls whose result is a fresh value, unrelated to their arguments' data.
FRESH = frozenset(
    {
        "zeros", "ones", "empty", "full", "arange", "zeros_like", "ones_like", "empty_like", "full_like",
        "range", "len", "linspace", "eye", "rand", "randn", "randint", "randperm", "tensor_like", "isinstance",
        "perf_counter", "print", "log0", "getattr", "hasattr", "max", "min", "sum", "enumerate",
    }
)
#: Methods that return (a view or copy of) their receiver's data.
TRANSPARENT = frozenset(
    {
        "astype", "cpu", "cuda", "numpy", "to", "long", "int", "float", "double", "half", "bfloat16", "reshape",
        "view", "view_as", "flatten", "ravel", "contiguous", "clone", "detach", "unsqueeze", "squeeze", "copy",
        "tolist", "item", "type", "expand", "expand_as", "repeat", "permute", "transpose", "T", "t", "flip",
        "narrow", "split", "chunk", "unbind", "pin_memory", "as_strided", "unfold", "roll", "byteswap", "view_dtype",
    }
)
#: Attributes that describe an array rather than hold its data.
METADATA = frozenset({"shape", "size", "dtype", "device", "ndim", "is_cuda", "requires_grad", "grad_fn", "nbytes", "itemsize"})
#: Functions whose result holds their arguments' token ids (conversions, stacking, selection).
KEEP_FUNCS = frozenset(
    {
        "int", "uint64", "int64", "uint32", "int32", "intp", "asarray", "array", "from_numpy", "as_tensor", "tensor",
        "ascontiguousarray", "concatenate", "cat", "stack", "hstack", "vstack", "where", "bitwise_xor", "bitwise_or",
        "left_shift", "roll", "take", "tile", "broadcast_to", "flip", "pad", "copy", "deepcopy", "list", "tuple",
    }
)
MIX_OPS = (cst.BitXor, cst.Add, cst.BitOr, cst.LeftShift, cst.Multiply)
_AUG_TO_BIN = {
    cst.AddAssign: cst.Add,
    cst.SubtractAssign: cst.Subtract,
    cst.MultiplyAssign: cst.Multiply,
    cst.BitXorAssign: cst.BitXor,
    cst.BitOrAssign: cst.BitOr,
    cst.BitAndAssign: cst.BitAnd,
    cst.LeftShiftAssign: cst.LeftShift,
    cst.RightShiftAssign: cst.RightShift,
    cst.ModuloAssign: cst.Modulo,
    cst.DivideAssign: cst.Divide,
    cst.FloorDivideAssign: cst.FloorDivide,
}


@dataclass
class Summary:
    """What calling a function of the submission gives: labels, and which parameters flow out."""

    returns: Fact = EMPTY
    items: tuple[Fact, ...] | None = None  # per position when every return is a same-length tuple
    params: tuple[str, ...] = ()


@dataclass
class FunctionFlow:
    """The labels of every name in one function."""

    scope: Scope
    names: dict[str, Fact] = field(default_factory=dict)
    returns: Fact = EMPTY
    return_items: tuple[Fact, ...] | None = None


class Flow:
    """Labels for the functions of one source, computed on demand and cached."""

    def __init__(self, index: SourceIndex, resolve=None, dead=None, program=None) -> None:
        self.index = index
        #: the submission's other modules (a :class:`auditor.static.reach.Program`), whose
        #: functions this source calls or is called by; None for a lone source
        self._program = program
        #: ``dead(stmt)`` is true for statements switched off by their guards under the
        #: submission's defaults; their assignments give nothing (a branch that is off).
        self._dead = dead or (lambda stmt: False)
        self._live_targets: dict[int, set[str]] = {}
        self._flows: dict[int, FunctionFlow] = {}
        self._summaries: dict[int, Summary] = {}
        self._marked: dict[int, FunctionFlow] = {}
        self._in_progress: set[int] = set()
        self._analysing: set[int] = set()
        #: callee name -> candidate scopes (defaults to this source's functions)
        self._resolve = resolve or self._by_name
        self._current: FunctionFlow | None = None
        self._param_marks = False
        self._stmt: Stmt | None = None  # the statement being evaluated (for evidence lines)

    @property
    def program(self):  # a Program (reach imports this module)
        """The submission's program this source's flow crosses into, or None for a lone source."""
        return self._program

    def _by_name(self, name: str) -> list[Scope]:
        """Functions called ``name``: this source's, else the submission's other modules'."""
        own = self.index.by_name.get(name, [])
        if own or self._program is None:
            return own
        return self._program.by_name.get(name, [])

    def flow_for(self, scope: Scope) -> Flow:
        """The flow of the source a function belongs to."""
        if self._program is None:
            return self
        index = self._program.index_of_scope.get(id(scope))
        return self if index is None or index is self.index else flow_of(index)

    # public ------------------------------------------------------------------------------

    def of(self, scope: Scope) -> FunctionFlow:
        key = id(scope)
        flow = self._flows.get(key)
        if flow is None:
            if key in self._analysing:
                return FunctionFlow(scope)  # a call cycle: what is known so far is nothing
            self._analysing.add(key)
            try:
                flow = self._analyse(scope, marks=False)
            finally:
                self._analysing.discard(key)
            self._flows[key] = flow
        return flow

    def fact(self, node: cst.BaseExpression, scope: Scope) -> Fact:
        """The labels of an expression in a function (after the function's fixpoint)."""
        flow = self.of(scope)
        saved = self._current, self._param_marks
        self._current, self._param_marks = flow, False
        try:
            return self._expr(node, flow)
        finally:
            self._current, self._param_marks = saved

    def name(self, scope: Scope, name: str) -> Fact:
        return self.of(scope).names.get(name, EMPTY)

    # analysis ----------------------------------------------------------------------------

    def _analyse(self, scope: Scope, marks: bool) -> FunctionFlow:
        flow = FunctionFlow(scope)
        # A summary (marks) says what the function does with whatever it is given; the flow
        # of a function itself also knows what its callers give it.
        passed = {} if marks or scope.is_module else passed_to(self, scope)
        # Roles from uses come first, so that their reasons are the ones shown.
        fills = fill_calls(scope)
        for role in use_roles(scope):
            reason = Lazy(lambda r=role: f"{r.name} ({r.reason}, line {self.index.line(r.line_node)})")
            flow.names[role.name] = union(flow.names.get(role.name, EMPTY), Fact(frozenset({role.label}), ((role.label, reason),)))
        for position, (name, _) in enumerate(scope.params):
            fact = union(flow.names.get(name, EMPTY), passed.get(name, EMPTY), seed(name))
            if marks and name not in ("self", "cls"):
                fact = union(fact, Fact(frozenset({f"param:{position}"}), ((f"param:{position}", name),)))
            if fact.labels:
                flow.names[name] = fact
        saved = self._current, self._param_marks, self._stmt
        self._current, self._param_marks = flow, marks
        try:
            ordered = list(scope.assignments)
            for _ in range(6):
                changed = False
                for assignment in ordered:
                    changed |= self._assign(assignment, flow)
                for call in fills:
                    changed |= self._fill(call, flow)
                if not changed:
                    break
            facts = []
            for value, stmt in scope.returns:
                self._stmt = stmt
                facts.append(self._expr(value, flow))
            flow.returns = union(*facts)
            tuples = [value for value, _ in scope.returns if isinstance(value, cst.Tuple)]
            if tuples and len(tuples) == len(scope.returns) and len({len(t.elements) for t in tuples}) == 1:
                size = len(tuples[0].elements)
                flow.return_items = tuple(
                    union(*(self._expr(t.elements[i].value, flow) for t in tuples)) for i in range(size)
                )
        finally:
            self._current, self._param_marks, self._stmt = saved
        return flow

    def _fill(self, call: cst.Call, flow: FunctionFlow) -> bool:
        """``table.update(chunk)``: the object a statement fills with training data carries it;
        ``targets.append(y[t])``: a local list collects what is appended (the target, tokens)."""
        assert isinstance(call.func, cst.Attribute)
        fact = union(*(self._expr(a.value, flow) for a in call.args))
        if call.func.attr.value in ("append", "extend", "insert") and isinstance(call.func.value, cst.Name):
            collected = only(fact, _COLLECTED)
            if collected.labels and (flow.scope.assigned(call.func.value.value) or call.func.value.value in flow.scope.param_names):
                return self._store(flow, call.func.value.value, collected)
        if not fact.has(*CORPORA):
            return False
        receiver = dotted(call.func.value)
        if receiver is None or receiver in ("self", "cls"):
            return False
        root = receiver.split(".", 1)[0]
        scope = flow.scope
        if root not in scope.param_names and not scope.assigned(root) and root not in ("self", "cls"):
            return False  # a module (``torch.save(x, f)``) or a global: not an object of this function
        return self._store(flow, receiver, only(fact, CORPORA))

    def _store(self, flow: FunctionFlow, key: str, fact: Fact) -> bool:
        old = flow.names.get(key, EMPTY)
        new = union(old, fact) if old.labels else fact
        if new.labels == old.labels and (new.join is not None) == (old.join is not None):
            return False
        flow.names[key] = new
        return True

    def _assign(self, assignment: Assignment, flow: FunctionFlow) -> bool:
        target = assignment.target
        value = assignment.value
        if value is None:
            return False
        if self._dead(assignment.stmt) and self._has_live_alternative(flow.scope, assignment):
            return False  # an alternative branch that is off: the live assignment decides
        self._stmt = assignment.stmt
        fact = self._expr(value, flow)
        if assignment.kind in ("comp", "for"):
            # ``for i, x in enumerate(xs)``: the index is not data.
            if assignment.position == 0 and isinstance(value, cst.Call) and dotted(value.func) in ("enumerate",):
                fact = EMPTY
        if assignment.position is not None:
            items = fact.items
            if items is not None and assignment.position < len(items):
                fact = items[assignment.position]
            elif isinstance(value, cst.Tuple) and assignment.position < len(value.elements):
                fact = self._expr(value.elements[assignment.position].value, flow)
        if assignment.kind == "aug" and assignment.op is not None:
            current = self._expr(target, flow)
            op = _AUG_TO_BIN.get(assignment.op)
            if op is not None:
                fact = self._combine(op(), current, fact, value, assignment.stmt.node, target, value)
        name = dotted(target) if isinstance(target, (cst.Name, cst.Attribute)) else None
        if isinstance(target, cst.Subscript):
            # Writing into an array gives the array what was written: y_batch[i, :n] = chunk[1:]
            name = dotted(target.value)
            if name is not None and fact.has("tgt", "tok", "val", "joined"):
                fact = only(fact, {"tgt", "tgt:name", "tok", "val", "val:files", "joined", "hash"})
            else:
                return False
        if name is None:
            return False
        if isinstance(target, cst.Name):
            fact = union(fact, seed(name)) if is_tgt_name(name) or is_val_name(name) else fact
            if value is not None and not isinstance(target, cst.Subscript):
                fact = renamed(fact, name, lambda v=value: self.index.code(v, 70))
        return self._store(flow, name, fact)

    def _has_live_alternative(self, scope: Scope, assignment: Assignment) -> bool:
        """Whether the target of a switched-off assignment is also assigned by code that runs.

        ``if args.calib_val: toks = val[...] else: toks = generate(...)`` gives ``toks``
        the labels of the branch that runs; code that is entirely off keeps its labels, so
        that its findings are still reported (as inactive).
        """
        key = dotted(assignment.target) if isinstance(assignment.target, (cst.Name, cst.Attribute)) else None
        if key is None:
            return False
        live = self._live_targets.get(id(scope))
        if live is None:
            live = set()
            for other in scope.assignments:
                name = dotted(other.target) if isinstance(other.target, (cst.Name, cst.Attribute)) else None
                if name is not None and not self._dead(other.stmt):
                    live.add(name)
            self._live_targets[id(scope)] = live
        return key in live

    # expressions -------------------------------------------------------------------------

    def _expr(self, node: cst.BaseExpression, flow: FunctionFlow, depth: int = 0) -> Fact:
        if depth > 40:
            return EMPTY
        ev = lambda n: self._expr(n, flow, depth + 1)  # noqa: E731
        # exact-type tests: these node classes have no subclasses, and isinstance against
        # libcst's ABC-based classes costs several times more in this hot path
        cls = type(node)
        if cls is cst.Name:
            known = flow.names.get(node.value)
            if known is not None:
                return known
            outer = self._enclosing(flow.scope, node.value)
            if outer is not None:
                return outer
            return seed(node.value) if node.value not in ("self", "True", "False", "None") else EMPTY
        if cls is cst.Attribute:
            path = dotted(node)
            if path is not None and path in flow.names:
                return flow.names[path]
            attr = node.attr.value
            if attr in METADATA:
                return EMPTY
            setting = setting_role(node, self.index)
            if setting.labels:
                return setting
            if is_val_name(attr) or is_tgt_name(attr):
                return union(seed(attr), ev(node.value) if not isinstance(node.value, cst.Name) or node.value.value != "self" else EMPTY)
            if isinstance(node.value, cst.Name) and node.value.value == "self":
                return seed(attr) if HASH_NAME.search(attr) is None else EMPTY
            return ev(node.value)
        if cls is cst.Subscript:
            return self._subscript(node, flow, depth)
        if cls is cst.BinaryOperation:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.operator, (cst.Divide, cst.Power)) or isinstance(node.left, cst.Float) or isinstance(node.right, cst.Float):
                return demote(union(left, right))
            return self._combine(node.operator, left, right, node, node, node.left, node.right)
        if cls is cst.UnaryOperation:
            return ev(node.expression)
        if cls is cst.Call:
            return self._call(node, flow, depth)
        if cls in (cst.Tuple, cst.List):
            items = tuple(ev(e.value) for e in node.elements)
            fact = union(*items)
            if cls is cst.Tuple and len(items) >= 2:
                tgt_items = [f for f in items if f.has("tgt")]
                ctx_items = [f for f in items if not f.has("tgt") and f.tokenish]
                if tgt_items and ctx_items:
                    fact = with_label(fact, "joined", "a tuple of context and target")
                    target = dict(tgt_items[0].why).get("tgt", "")
                    fact = Fact(fact.labels, fact.why, Join(node, self._stmt, "tuple", False, target))
            return Fact(fact.labels, fact.why, fact.join, items)
        if cls is cst.SimpleString:
            role = literal_role(node)
            if role.has("file") and node.value.strip("\"'") in written_files(self.index):
                return EMPTY  # a file the script writes itself holds what it wrote, not a corpus
            return role
        if cls is cst.FormattedString:
            return union(*(literal_role(part) for part in node.parts if isinstance(part, cst.FormattedStringText)))
        if cls is cst.ConcatenatedString:
            return union(ev(node.left), ev(node.right))
        if cls is cst.IfExp:
            return union(ev(node.body), ev(node.orelse))
        if cls is cst.Dict:
            return union(*(ev(e.value) for e in node.elements))
        if cls in (cst.Comparison, cst.BooleanOperation):
            parts = [node.left] + ([c.comparator for c in node.comparisons] if cls is cst.Comparison else [node.right])
            fact = union(*(ev(p) for p in parts))
            return Fact(fact.labels - {"joined", "hash"}, fact.why)
        if cls in (cst.ListComp, cst.GeneratorExp, cst.SetComp):
            return self._comprehension(node, flow, depth)
        if cls is cst.NamedExpr:
            return ev(node.value)
        if cls is cst.StarredElement:
            return ev(node.value)
        return EMPTY

    def _comprehension(self, node: cst.ListComp | cst.GeneratorExp | cst.SetComp, flow: FunctionFlow, depth: int) -> Fact:
        """The element of a comprehension, its variables taking the labels of what they iterate
        over: ``float(x) for x in text.split(",")`` knows nothing of a ``x`` the function
        assigns elsewhere (the variables are local to the comprehension)."""
        saved: dict[str, Fact | None] = {}
        comp: cst.CompFor | None = node.for_in
        try:
            while comp is not None:
                fact = self._expr(comp.iter, flow, depth + 1)
                for name in _bound_names(comp.target):
                    if name not in saved:
                        saved[name] = flow.names.get(name)
                    flow.names[name] = fact
                comp = comp.inner_for_in
            return self._expr(node.elt, flow, depth + 1)
        finally:
            for name, old in saved.items():
                if old is None:
                    flow.names.pop(name, None)
                else:
                    flow.names[name] = old

    def _enclosing(self, scope: Scope, name: str) -> Fact | None:
        """A free variable of a nested function (a closure): its fact in the enclosing function."""
        parent = scope.parent
        if parent is None or parent.is_module or name in scope.param_names:
            return None
        if id(parent) in self._in_progress or id(parent) in self._analysing:
            return None
        flow = self._flows.get(id(parent))
        if flow is None:
            if any(True for _ in parent.assigned(name)) or name in parent.param_names:
                flow = self.of(parent)
            else:
                return None
        return flow.names.get(name)

    def _subscript(self, node: cst.Subscript, flow: FunctionFlow, depth: int) -> Fact:
        base = self._expr(node.value, flow, depth + 1)
        fact = Fact(base.labels, base.why, base.join)
        if not node.slice:
            return fact
        if not base.has("tgtdep") and is_prob(node.value, flow.scope):
            # (log-)probabilities read at the target: ``log_sm[rows, tgt]`` is the target's score
            for element in node.slice:
                if isinstance(element.slice, cst.Index) and self._expr(element.slice.value, flow, depth + 1).has("tgt"):
                    return with_label(fact, "tgtdep", Lazy(lambda: f"{self.index.code(node, 60)} (probabilities read at the target)"))
        stream = dotted(node.value)
        elements = list(node.slice)
        stream_like = base.has("val", "tok") or (self._param_marks and bool(base.prefixed("param:")))
        if stream_like and not base.has("tgt") and len(elements) >= 1:
            lower, is_slice = slice_lower(elements[-1] if len(elements) > 1 and is_slice_el(elements[-1]) else elements[0])
            if lower is not None:
                value = int_value(lower)
                based = index_base(lower, flow.scope)
                next_token = (is_slice and value == 1) or (based is not None and based[1] > 0 and not isinstance(lower, cst.Integer))
                if next_token and base.has("val"):
                    fact = with_label(
                        fact, "tgt", Lazy(lambda: f"{self.index.code(node, 60)} (the next token of {stream or 'the validation stream'})")
                    )
                elif based is not None and stream is not None and len(elements) == 1:
                    sign = based[1]
                    label = f"ctx:{stream}:{based[0]}" if sign < 0 else f"cur:{stream}:{based[0]}"
                    fact = with_label(fact, label, Lazy(lambda: self.index.code(node, 60)))
        return fact

    def _combine(self, op: cst.BaseBinaryOp, left: Fact, right: Fact, node, where, left_node, right_node) -> Fact:
        fact = union(left, right)
        labels = set(fact.labels)
        why = dict(fact.why)
        join = fact.join
        if isinstance(op, (cst.Modulo, cst.BitAnd)):
            # A combination reduced to a table slot is a hashed key; a parameter reduced so
            # inside a summary makes the call site's argument one.
            if join is not None and (left.join is not None) and not right.has("tgt"):
                labels.add("hash")
                why.setdefault("hash", "reduced to a table slot")
                join = join.bucketed()
            elif self._param_marks:
                labels.update(f"bucket:{label[6:]}" for label in left.prefixed("param:"))
        if isinstance(op, cst.BitXor) and (left.tokenish or right.tokenish):
            labels.add("hash")
            why.setdefault("hash", "XOR")
        if isinstance(op, cst.Multiply) and (
            (is_prime_like(left_node) and right.tokenish) or (is_prime_like(right_node) and left.tokenish)
        ):
            labels.add("hash")
            why.setdefault("hash", "product with a prime")
        if isinstance(op, MIX_OPS) and not isinstance(op, cst.Multiply) and "joined" not in left.labels | right.labels:
            for side, other, other_node in ((left, right, right_node), (right, left, left_node)):
                if not side.has("tgt") or other.has("tgt"):
                    continue
                hashed = isinstance(op, cst.BitXor) or other.has("hash") or side.has("hash")
                if other.has("tok", "hash", "val") or other.prefixed("ctx:") or other.prefixed("param:") or (
                    isinstance(op, cst.BitXor) and not is_constant(other_node)
                ):
                    labels.add("joined")
                    why["joined"] = "context combined with the target"
                    join = Join(node, self._stmt, "op", hashed, dict(side.why).get("tgt", ""))
                    break
            else:
                # n-gram structure: hash of S[B - k] (context) combined with S[B] (the next token)
                for side, other in ((left, right), (right, left)):
                    for cur in side.prefixed("cur:"):
                        ctx = "ctx:" + cur[4:]
                        if ctx in other.labels and cur not in other.labels and other.has("hash"):
                            labels.add("joined")
                            labels.add("tgt")
                            why.setdefault("tgt", f"{side.reason(cur)} (the token after the context {other.reason(ctx)})")
                            why["joined"] = "n-gram key: context hash and the token after it"
                            join = Join(node, self._stmt, "ngram", True, why["tgt"])
                            break
                # A summary's parameters combined inside the callee: the call site decides.
                lp, rp = left.prefixed("param:"), right.prefixed("param:")
                if self._param_marks and lp and rp and (isinstance(op, cst.BitXor) or left.has("hash") or right.has("hash")):
                    for a in lp:
                        for b in rp:
                            labels.add(f"combo:{a[6:]}:{b[6:]}")
                            if "joined" not in labels:  # an n-gram join made here stays what it is
                                join = Join(node, self._stmt, "call", True)
        return Fact(frozenset(labels), tuple(why.items()), join)

    def _call(self, node: cst.Call, flow: FunctionFlow, depth: int) -> Fact:
        ev = lambda n: self._expr(n, flow, depth + 1)  # noqa: E731
        func = node.func
        name = dotted(func) or ""
        last = name.rsplit(".", 1)[-1] if name else (func.attr.value if isinstance(func, cst.Attribute) else "")
        args = [a.value for a in node.args]
        kw = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        if "requires_grad" in kw and is_true(self.index, kw["requires_grad"]):
            return with_label(Fact(frozenset(), ()), "grad", Lazy(lambda: self.index.code(node, 80)))
        if last in ("requires_grad_",) and isinstance(func, cst.Attribute):
            inner = ev(func.value)
            if not node.args or is_true(self.index, node.args[0].value):
                return with_label(inner, "grad", Lazy(lambda: self.index.code(node, 80)))
            return inner
        if last in ("Parameter",) and name.endswith("Parameter"):
            return with_label(union(*(ev(a) for a in args)), "grad", Lazy(lambda: self.index.code(node, 80)))
        module_call = isinstance(func, cst.Name) or (name.split(".")[0] in ("np", "numpy", "torch", "math", "time", "os", "F"))
        if last in FRESH and name not in flow.names and module_call:
            if last in ("max", "min", "sum") and isinstance(func, cst.Name):
                return union(*(ev(a) for a in args))
            if last in ("max", "min", "sum", "where"):
                return demote(union(*(ev(a) for a in args)))
            return EMPTY
        if last == "hash" and name == "hash":
            return with_label(union(*(ev(a) for a in args)), "hash", "hash()")
        # A function of this submission: its summary.
        if isinstance(func, cst.Name) or (isinstance(func, cst.Attribute) and dotted(func.value) in ("self", "cls")):
            candidates = [s for s in self._resolve(last) if not s.is_module]
            if candidates:
                return self._apply_summary(candidates, node, flow, depth)
        if last == "load_dataset" and name in ("load_dataset", "datasets.load_dataset"):
            split = kw.get("split")
            what = f"split {self.index.code(split, 30)}" if split is not None else "a hub dataset"
            return Fact(frozenset({"hub"}), (("hub", Lazy(lambda: f"{self.index.code(node, 80)} ({what})")),))
        if (last == "generate" and isinstance(func, cst.Attribute)) or (last == "multinomial" and module_call):
            return Fact(frozenset({"gen"}), (("gen", Lazy(lambda: f"{self.index.code(node, 80)} (generated tokens)")),))
        if last in ("numel", "size", "dim", "nelement", "element_size", "stride", "data_ptr", "get_device"):
            return EMPTY
        if isinstance(func, cst.Attribute):
            receiver = ev(func.value)
            if last in TRANSPARENT:
                return receiver
            if last in KEEP_FUNCS and dotted(func.value) in ("np", "numpy", "torch", "copy", None):
                return union(*(ev(a) for a in args)) if dotted(func.value) else union(receiver, *(ev(a) for a in args))
            if last in ("bitwise_xor",):
                return self._combine(cst.BitXor(), ev(args[0]), ev(args[1]), node, node, args[0], args[1]) if len(args) == 2 else EMPTY
            return demote(union(receiver, *(ev(a) for a in args)))
        if last in KEEP_FUNCS:
            return union(*(ev(a) for a in args))
        return demote(union(*(ev(a) for a in args)))

    def _apply_summary(self, candidates: list[Scope], node: cst.Call, flow: FunctionFlow, depth: int) -> Fact:
        args = [a for a in node.args if not a.star]
        results = []
        for scope in candidates[:3]:
            summary = self.flow_for(scope).summary(scope)
            offset = 1 if scope.cls is not None and scope.params and scope.params[0][0] in ("self", "cls") else 0
            arg_facts: dict[int, Fact] = {}
            arg_nodes: dict[str, cst.BaseExpression] = {}
            names = scope.param_names
            for i, arg in enumerate(args):
                position = i + offset if arg.keyword is None else (
                    names.index(arg.keyword.value) if arg.keyword.value in names else None
                )
                if position is None:
                    continue
                arg_facts[position] = self._expr(arg.value, flow, depth + 1)
                if position < len(names):
                    arg_nodes[names[position]] = arg.value

            def instantiate(
                fact: Fact, arg_facts: dict[int, Fact] = arg_facts, scope: Scope = scope, arg_nodes=arg_nodes
            ) -> Fact:
                kept = frozenset(label for label in fact.labels if not label.startswith(("param:", "combo:", "bucket:")))
                parts = [self._through_call(Fact(kept, fact.why, fact.join), arg_nodes, flow.scope)]
                for label in fact.labels:
                    if label.startswith("param:"):
                        parts.append(arg_facts.get(int(label[6:]), EMPTY))
                out = union(*parts)
                for label in fact.labels:
                    if label.startswith("bucket:") and out.join is not None and arg_facts.get(int(label[7:]), EMPTY).join is not None:
                        out = with_label(Fact(out.labels, out.why, out.join.bucketed(), out.items), "hash", f"reduced to a table slot by {scope.qualname}")
                for label in fact.labels:
                    if label.startswith("combo:") and not out.has("joined"):
                        a, b = (int(x) for x in label[6:].split(":"))
                        fa, fb = arg_facts.get(a, EMPTY), arg_facts.get(b, EMPTY)
                        for t, o in ((fa, fb), (fb, fa)):
                            if t.has("tgt") and not o.has("tgt") and o.labels - CORPORA:
                                out = with_label(out, "joined", f"{scope.qualname} combines its arguments into a key")
                                inner = fact.join or out.join
                                out = Fact(out.labels, out.why, Join(inner.node, inner.stmt, "call", True, dict(t.why).get("tgt", "")) if inner else None)
                                break
                return out

            fact = instantiate(summary.returns)
            items = tuple(instantiate(i) for i in summary.items) if summary.items is not None else None
            results.append(Fact(fact.labels, fact.why, fact.join, items))
        if len(results) == 1:
            return results[0]
        merged = union(*results)
        return merged

    @staticmethod
    def _through_call(fact: Fact, arg_nodes: dict[str, cst.BaseExpression], caller: Scope) -> Fact:
        """A callee's stream positions read at the call: ``ctx:tokens:pos`` of ``hash_ctx(tokens,
        pos)`` called as ``hash_ctx(val_np, j)`` is ``ctx:val_np:j``. Positions over the callee's
        own locals mean nothing at the caller and are dropped; those over attributes are kept."""
        if not any(label.startswith(("cur:", "ctx:")) for label in fact.labels):
            return fact
        labels = set(fact.labels)
        why = dict(fact.why)
        for label in fact.labels:
            parts = position_parts(label)
            if parts is None:
                continue
            _, stream, base = parts
            if stream.startswith("self.") and base not in arg_nodes:
                continue
            labels.discard(label)
            reason = why.pop(label, "")
            stream_node, base_node = arg_nodes.get(stream), arg_nodes.get(base)
            caller_stream = dotted(stream_node) if stream_node is not None else (stream if stream.startswith("self.") else None)
            caller_base = index_base(base_node, caller) if base_node is not None else None
            if caller_stream is None or caller_base is None:
                continue
            translated = translate_position(label, caller_stream, caller_base)
            if translated is not None:
                labels.add(translated)
                why.setdefault(translated, reason)
        return Fact(frozenset(labels), tuple((k, v) for k, v in why.items() if k in labels), fact.join, fact.items)

    def summary(self, scope: Scope) -> Summary:
        key = id(scope)
        if key in self._summaries:
            return self._summaries[key]
        if key in self._in_progress:
            return Summary()
        flow = self.marked(scope)
        summary = Summary(flow.returns, flow.return_items, tuple(scope.param_names))
        self._summaries[key] = summary
        return summary

    def marked(self, scope: Scope) -> FunctionFlow:
        """The flow of a function whatever it is given: each parameter carries ``param:N`` (its
        position), so that a label says which parameters a value is computed from. Summaries
        are made from it; :mod:`auditor.static.effects` reads which parameters reach state."""
        key = id(scope)
        flow = self._marked.get(key)
        if flow is not None:
            return flow
        if key in self._in_progress:
            return FunctionFlow(scope)  # a call cycle: nothing known yet
        self._in_progress.add(key)
        try:
            flow = self._analyse(scope, marks=True)
        finally:
            self._in_progress.discard(key)
        self._marked[key] = flow
        return flow

    def marked_fact(self, node: cst.BaseExpression, scope: Scope) -> Fact:
        """The labels of an expression in a function's :meth:`marked` flow (``param:N`` for the
        parameters it is computed from)."""
        flow = self.marked(scope)
        saved = self._current, self._param_marks
        self._current, self._param_marks = flow, True
        try:
            return self._expr(node, flow)
        finally:
            self._current, self._param_marks = saved


#: Labels of where a corpus comes from other than the validation files.
CORPORA = frozenset({"train", "hub", "gen", "file"})


#: What a list collects from what is appended to it.
_COLLECTED = frozenset({"tgt", "tgt:name", "tok", "val", "val:files", "tgtdep"})


def fill_calls(scope: Scope) -> list[cst.Call]:
    """Statements that are a method call with arguments, its result unused (``t.update(x)``,
    ``chunks.append(x)``): the flow takes the arguments into the receiver."""
    out = []
    for stmt in scope.stmts:
        small = stmt.node
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            if isinstance(call.func, cst.Attribute) and call.args:
                out.append(call)
    return out


def _bound_names(target: cst.BaseExpression) -> list[str]:
    """Names a ``for`` target binds (``x``, ``i, (a, b)``)."""
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for element in target.elements for n in _bound_names(element.value)]
    return []


def is_slice_el(element: cst.SubscriptElement) -> bool:
    return isinstance(element.slice, cst.Slice)


#: Calls that write a file, and the position of the path among their arguments (``tofile`` is
#: a method of any array).
_WRITERS = {"numpy.save": 0, "numpy.savez": 0, "numpy.savez_compressed": 0, "torch.save": 1}


def written_files(index: SourceIndex) -> frozenset[str]:
    """The file names (string literals) a source writes to: ``np.save(d / "rows.npy", a)``,
    ``torch.save(t, "cache.pt")``, ``a.tofile("x.bin")``, ``open("x.bin", "wb")``."""

    def compute() -> frozenset[str]:
        found: set[str] = set()
        for scope in index.scopes:
            for call in scope.calls:
                position = 0 if call.method == "tofile" else _WRITERS.get(call.qualified)
                path = None
                if position is not None:
                    path = call.arg(position)
                elif call.method == "open" and isinstance(call.node.func, cst.Name):
                    mode = call.arg(1, "mode")
                    if isinstance(mode, cst.SimpleString) and any(c in mode.value for c in "wa"):
                        path = call.arg(0, "file")
                if path is not None:
                    found |= {n.value.strip("\"'") for n in walk(path) if isinstance(n, cst.SimpleString)}
        return frozenset(found)

    return index.cached("written_files", compute)


def is_true(index: SourceIndex, node: cst.BaseExpression) -> bool:
    """``True``, or a module-level name bound once to it (minifiers hoist constants:
    ``_B=True`` … ``requires_grad=_B``)."""
    if not isinstance(node, cst.Name):
        return False
    if node.value == "True":
        return True
    bound = index.module_scope.assigned(node.value)
    return (len(bound) == 1 and bound[0].kind == "assign" and isinstance(bound[0].value, cst.Name)
            and bound[0].value.value == "True")


def creates_trainable(index: SourceIndex, value: cst.BaseExpression) -> bool:
    """Whether an expression creates a tensor that gradients reach: ``requires_grad=True``
    (or a constant bound to ``True``), ``.requires_grad_()``, ``nn.Parameter(...)``."""
    for node in walk(value):
        if not isinstance(node, cst.Call):
            continue
        last = callee_name(node)
        if last == "Parameter":
            return True
        if last == "requires_grad_" and (not node.args or is_true(index, node.args[0].value)):
            return True
        if any(a.keyword is not None and a.keyword.value == "requires_grad" and is_true(index, a.value) for a in node.args):
            return True
    return False


def flow_of(index: SourceIndex) -> Flow:
    """The flow analysis of a source's index (cached on the index).

    Assignments in branches that are off under the submission's defaults and every shipped
    run configuration are ignored (see :mod:`auditor.static.reach`).
    """

    def build() -> Flow:
        from auditor.static.reach import program_for

        program = program_for(index.source)  # the submission's, attached by its evidence
        return Flow(index, dead=lambda stmt: program.dead_guard(stmt) is not None, program=program)

    return index.cached("flow", build)

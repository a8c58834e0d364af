"""Intraprocedural dataflow: what a value is derived from.

Each value gets a set of labels, computed over a function's assignments until nothing
changes (flow-insensitive: a name carries what any of its assignments gives it):

``tgt``
    the token being predicted: parameters and names such as ``y``, ``yb``, ``tgt``,
    ``targets``, ``next_tok``; the next token of a validation stream (``val_np[j + 1]``,
    ``chunk[1:]`` of a validation chunk); and everything derived from those
    (``y_np = y_batch.cpu().numpy().astype(np.uint64)``, ``tgt[sufficient]``, …).
``tok``
    context tokens: ``x``, ``x_batch``, ``tokens``, ``ctx…``, ``prev…``, reads of a stream.
``val``
    validation data: ``val_tokens``, ``val_data.val_tokens``, ``val_np`` and what is sliced
    from them.
``hash``
    passed through a hash: XOR, a product with a prime-like constant, ``hash()``.
``key``
    a lookup key built from the context *and* the target: an XOR/sum/shift/product or a
    tuple whose one side carries ``tgt`` and the other side context or a hash.
``ctx:S:B`` / ``cur:S:B``
    a read of stream ``S`` at index ``B - k`` (context) or at ``B`` itself; a hash of the
    context combined with ``S[B]`` is an n-gram key on (context, the token after it), the
    shape of ``tokens_np[pos - k]`` … ``tokens_np[pos]``.
``grad``
    a tensor created with ``requires_grad=True`` (or ``.requires_grad_()``) in the function.

Calls to functions of the same submission use a summary of the callee (which parameters
reach its return values, and which labels it adds); unknown calls pass their receiver's and
arguments' labels through, except constructors of fresh arrays (``np.zeros``, ``arange``).
Every label remembers one reason (the alias chain that produced it) for the evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import libcst as cst

from auditor.static.index import Assignment, Scope, SourceIndex, Stmt
from auditor.static.names import dotted

TGT_NAME = re.compile(
    r"^(y|ys|yb|yy|y_?(batch|np|t|flat|flat_np|true|tok|toks|tokens|ids|next|all|cpu|gpu|chunk|seq|win|w|b|i|j|np_flat|local|gt|val|tgt|cur|v)\d*"
    r"|tgts?\w*|\w*_tgts?\d*|targets?(_\w+)?|\w*_targets?\d*|target_ids|tgt_ids|nxt\w*|next_?(tok|token|tokens|ids|id)s?\w*"
    r"|labels?|true_(tok|token|tokens|ids?)|gt_(tok|token|tokens|ids?)|\w+_y)$"
)
TOK_NAME = re.compile(
    r"^(x|xs|xb|x_?(batch|np|t|flat|tok|toks|tokens|ids|in|input|inp|cpu|gpu|chunk|seq|win|w|b|i|local|val|v)\d*"
    r"|tokens?\w*|toks?\w*|\w*_tokens?\w*|\w*_toks?|input_ids|inputs?|ids|ctx|ctx_(tok|toks|tokens|ids|np|window|seq)|context|context_(tok|toks|tokens|ids)|prev|prev_(tok|toks|tokens|ids|np)|hist|history"
    r"|seq|stream|\w*_stream|val_np|all_tokens|\w+_x)$"
)
HASH_NAME = re.compile(r"(^|_)(hash|hashes|h|ch|hh|ctx_h|ctx_hash|key|keys|ck|bucket)(_|$)", re.I)
NOT_TGT = re.compile(r"(pred|hat|logit|prob|score|loss|nll|mask|shape|size|len|dim|lut|count|weight|offset)", re.I)
PRIME = re.compile(r"prime", re.I)

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
#: Labels that say a value holds token ids (as opposed to a score computed from them).
TOKEN_LABELS = ("tgt", "tok", "hash", "key", "exact", "structural")
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
_MAX_TRAIL = 4


#: Parts of a ``val_…`` name that make it a metric or a setting rather than validation data.
_NOT_VAL_DATA = frozenset(
    {"loss", "losses", "bpb", "nll", "ce", "acc", "accuracy", "score", "time", "ms", "every", "freq", "steps", "step",
     "size", "len", "count", "n", "num", "bits", "ppl", "perplexity", "interval", "lr", "bytes", "byte", "files",
     "file", "path", "pattern", "dir", "stride", "ratio", "frac", "fraction", "max", "min", "docs", "shards",
     "metric", "metrics", "log", "results", "stats", "mode"}
)


def is_val_name(name: str) -> bool:
    """Whether an identifier names validation data (``val_tokens``, ``val_np``, ``all_val``)."""
    parts = name.lower().split("_")
    if not ("val" in parts or "validation" in parts or name in ("vt", "valtoks")):
        return False
    return not (set(parts) & _NOT_VAL_DATA)


def is_tgt_name(name: str) -> bool:
    return bool(TGT_NAME.match(name)) and not NOT_TGT.search(name)


def is_tok_name(name: str) -> bool:
    return bool(TOK_NAME.match(name)) and not is_tgt_name(name)


@dataclass(frozen=True)
class Fact:
    """Labels of a value and, for each label, one reason."""

    labels: frozenset[str] = frozenset()
    why: tuple[tuple[str, object], ...] = ()  # (label, reason): a str or a Lazy
    #: The expression where a ``key`` was formed, and the statement it is in.
    key_node: cst.CSTNode | None = None
    key_stmt: Stmt | None = None
    #: Per element, for tuples (unpacking ``a, b = f(...)``).
    items: tuple[Fact, ...] | None = None

    def has(self, *labels: str) -> bool:
        return any(label in self.labels for label in labels)

    def reason(self, label: str) -> str:
        for name, text in self.why:
            if name == label:
                return str(text)
        return ""

    def prefixed(self, prefix: str) -> list[str]:
        return [label for label in self.labels if label.startswith(prefix)]

    @property
    def tokenish(self) -> bool:
        return self.has("tok", "tgt", "val", "hash") or bool(self.prefixed("ctx:") or self.prefixed("cur:") or self.prefixed("param:"))


EMPTY = Fact()


def union(*facts: Fact) -> Fact:
    facts = tuple(f for f in facts if f is not EMPTY and (f.labels or f.items))
    if not facts:
        return EMPTY
    if len(facts) == 1:
        return facts[0]
    labels: set[str] = set()
    why: dict[str, str] = {}
    key_node = key_stmt = None
    for f in facts:
        labels |= f.labels
        for name, text in f.why:
            why.setdefault(name, text)
        if key_node is None and f.key_node is not None:
            key_node, key_stmt = f.key_node, f.key_stmt
    return Fact(frozenset(labels), tuple(why.items()), key_node, key_stmt)


def demote(fact: Fact) -> Fact:
    """A value computed *from* token ids (a loss, a probability): it no longer holds them.

    ``tgt`` becomes ``tgtdep`` (depends on the target), ``tok`` becomes ``tokdep``; hashes,
    keys and stream positions are dropped; ``val`` and ``grad`` stay.
    """
    if not fact.labels:
        return fact
    labels = set()
    why = dict(fact.why)
    for label in fact.labels:
        if label == "tgt":
            labels.add("tgtdep")
            why.setdefault("tgtdep", why.get("tgt", ""))
        elif label == "tok":
            labels.add("tokdep")
        elif label in TOKEN_LABELS or label.startswith(("ctx:", "cur:")):
            continue
        else:
            labels.add(label)
    return Fact(frozenset(labels), tuple((k, v) for k, v in why.items() if k in labels))


def with_label(fact: Fact, label: str, reason: str) -> Fact:
    if label in fact.labels:
        return fact
    return Fact(fact.labels | {label}, fact.why + ((label, reason),), fact.key_node, fact.key_stmt, fact.items)


class Lazy:
    """A reason rendered only when a finding shows it (rendering code costs a codegen)."""

    __slots__ = ("_make", "_text", "name", "depth")

    def __init__(self, make, name: str = "", depth: int = 0) -> None:  # noqa: ANN001
        self._make = make
        self._text: str | None = None
        self.name = name
        self.depth = depth

    def __str__(self) -> str:
        if self._text is None:
            self._text = self._make()
        return self._text

    def __bool__(self) -> bool:
        return True


def renamed(fact: Fact, name: str, code) -> Fact:  # noqa: ANN001
    """The fact of ``name = <value>``: the target's reason gains a step of the alias chain.

    ``code`` renders the assigned value (called only if the reason is ever shown).
    """
    if not fact.labels:
        return fact
    why = []
    for label, text in fact.why:
        if label in ("tgt", "val") and getattr(text, "depth", 0) < _MAX_TRAIL and getattr(text, "name", None) != name:
            text = Lazy(
                (lambda prev=text: f"{name} = {code()} ← {prev}" if str(prev) else f"{name} = {code()}"),
                name,
                getattr(text, "depth", 0) + 1,
            )
        why.append((label, text))
    return Fact(fact.labels, tuple(why), fact.key_node, fact.key_stmt)


def seed(name: str) -> Fact:
    """Labels an identifier carries by its name alone."""
    labels = []
    if is_tgt_name(name):
        labels.append(("tgt", f"{name} (named like the token being predicted)"))
    elif is_val_name(name):
        labels.append(("val", f"{name} (validation data)"))
        labels.append(("tok", f"{name}"))
    elif is_tok_name(name):
        labels.append(("tok", name))
    if HASH_NAME.search(name) and not labels:
        labels.append(("hash", name))
    if not labels:
        return EMPTY
    return Fact(frozenset(label for label, _ in labels), tuple(labels))


def _int_value(node: cst.BaseExpression) -> int | None:
    if isinstance(node, cst.Integer):
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            return None
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = _int_value(node.expression)
        return -inner if inner is not None else None
    return None


def is_prime_like(node: cst.BaseExpression) -> bool:
    """A multiplier of a hash: a name or list with "prime" in it, or a large odd literal."""
    text = dotted(node)
    if isinstance(node, cst.Subscript):
        text = dotted(node.value)
    if isinstance(node, cst.Call) and node.args:  # np.uint64(1000003)
        return is_prime_like(node.args[0].value)
    if text is not None and PRIME.search(text):
        return True
    value = _int_value(node)
    return value is not None and value > 1000 and value % 2 == 1


def is_constant(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
        return True
    if isinstance(node, cst.UnaryOperation):
        return is_constant(node.expression)
    if isinstance(node, cst.BinaryOperation):
        return is_constant(node.left) and is_constant(node.right)
    if isinstance(node, cst.Name):
        return node.value.isupper() and not PRIME.search(node.value)
    return False


def index_base(node: cst.BaseExpression | None, scope: Scope, depth: int = 0) -> tuple[str, int] | None:
    """(base name, sign) of an index: ``pos - k`` is (pos, -1), ``pos`` is (pos, 0), ``j + 1`` is (j, +1)."""
    if node is None or depth > 4:
        return None
    if isinstance(node, cst.Name):
        assigned = scope.assigned(node.value)
        if len(assigned) == 1 and assigned[0].value is not None and assigned[0].position is None and assigned[0].kind == "assign":
            inner = index_base(assigned[0].value, scope, depth + 1)
            if inner is not None:
                return inner
        return (node.value, 0)
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        left = index_base(node.left, scope, depth + 1)
        if left is None:
            return None
        if isinstance(node.operator, cst.Subtract):
            return (left[0], -1)
        if left[1] < 0:
            return left
        value = _int_value(node.right)
        return (left[0], 1 if value is not None and value > 0 else left[1])
    return None


def _slice_lower(element: cst.SubscriptElement) -> tuple[cst.BaseExpression | None, bool]:
    """The lower bound of a subscript element (None for ``[:k]``), and whether it is a slice."""
    inner = element.slice
    if isinstance(inner, cst.Slice):
        return inner.lower, True
    if isinstance(inner, cst.Index):
        return inner.value, False
    return None, False


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

    def __init__(self, index: SourceIndex, resolve=None, dead=None) -> None:  # noqa: ANN001
        self.index = index
        #: ``dead(stmt)`` is true for statements switched off by their guards under the
        #: submission's defaults; their assignments give nothing (a branch that is off).
        self._dead = dead or (lambda stmt: False)
        self._live_targets: dict[int, set[str]] = {}
        self._flows: dict[int, FunctionFlow] = {}
        self._summaries: dict[int, Summary] = {}
        self._in_progress: set[int] = set()
        self._analysing: set[int] = set()
        #: callee name -> candidate scopes (defaults to this source's functions)
        self._resolve = resolve or (lambda name: index.by_name.get(name, []))
        self._current: FunctionFlow | None = None
        self._param_marks = False
        self._stmt: Stmt | None = None  # the statement being evaluated (for evidence lines)

    # public ------------------------------------------------------------------------------

    def of(self, scope: Scope) -> FunctionFlow:
        key = id(scope)
        flow = self._flows.get(key)
        if flow is None:
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
        for position, (name, _) in enumerate(scope.params):
            fact = seed(name)
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

    def _store(self, flow: FunctionFlow, key: str, fact: Fact) -> bool:
        old = flow.names.get(key, EMPTY)
        new = union(old, fact) if old.labels else fact
        if new.labels == old.labels and (new.key_node is not None) == (old.key_node is not None):
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
            if name is not None and fact.has("tgt", "tok", "val", "key"):
                fact = Fact(fact.labels & {"tgt", "tok", "val", "key", "hash"}, fact.why, fact.key_node, fact.key_stmt)
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
                    fact = with_label(fact, "key", "a tuple of context and target")
                    fact = with_label(fact, "exact", "tuple key")
                    fact = Fact(fact.labels, fact.why, node, self._stmt)
            return Fact(fact.labels, fact.why, fact.key_node, fact.key_stmt, items)
        if cls is cst.IfExp:
            return union(ev(node.body), ev(node.orelse))
        if cls is cst.Dict:
            return union(*(ev(e.value) for e in node.elements))
        if cls in (cst.Comparison, cst.BooleanOperation):
            parts = [node.left] + ([c.comparator for c in node.comparisons] if cls is cst.Comparison else [node.right])
            fact = union(*(ev(p) for p in parts))
            return Fact(fact.labels - {"key", "hash"}, fact.why)
        if cls in (cst.ListComp, cst.GeneratorExp, cst.SetComp):
            return ev(node.elt)
        if cls is cst.NamedExpr:
            return ev(node.value)
        if cls is cst.StarredElement:
            return ev(node.value)
        return EMPTY

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
        fact = Fact(base.labels, base.why, base.key_node, base.key_stmt)
        if not node.slice:
            return fact
        stream = dotted(node.value)
        elements = list(node.slice)
        if base.has("val", "tok") and not base.has("tgt") and len(elements) >= 1:
            lower, is_slice = _slice_lower(elements[-1] if len(elements) > 1 and is_slice_el(elements[-1]) else elements[0])
            if lower is not None:
                value = _int_value(lower)
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

    def _combine(self, op: cst.BaseBinaryOp, left: Fact, right: Fact, node, where, left_node, right_node) -> Fact:  # noqa: ANN001
        fact = union(left, right)
        labels = set(fact.labels)
        why = dict(fact.why)
        key_node, key_stmt = fact.key_node, fact.key_stmt
        if isinstance(op, cst.BitXor) and (left.tokenish or right.tokenish):
            labels.add("hash")
            why.setdefault("hash", "XOR")
        if isinstance(op, cst.Multiply) and (
            (is_prime_like(left_node) and right.tokenish) or (is_prime_like(right_node) and left.tokenish)
        ):
            labels.add("hash")
            why.setdefault("hash", "product with a prime")
        if isinstance(op, MIX_OPS) and not isinstance(op, cst.Multiply) and "key" not in left.labels | right.labels:
            for side, other, other_node in ((left, right, right_node), (right, left, left_node)):
                if not side.has("tgt") or other.has("tgt"):
                    continue
                hashed = isinstance(op, cst.BitXor) or other.has("hash") or side.has("hash")
                if other.has("tok", "hash", "val") or other.prefixed("ctx:") or other.prefixed("param:") or (
                    isinstance(op, cst.BitXor) and not is_constant(other_node)
                ):
                    labels.add("key")
                    why["key"] = "context combined with the target"
                    why["key_target"] = dict(side.why).get("tgt", "")
                    if not hashed:
                        labels.add("exact")
                    key_node, key_stmt = node, self._stmt
                    break
            else:
                # n-gram structure: hash of S[B - k] (context) combined with S[B] (the next token)
                for side, other in ((left, right), (right, left)):
                    for cur in side.prefixed("cur:"):
                        ctx = "ctx:" + cur[4:]
                        if ctx in other.labels and cur not in other.labels and other.has("hash"):
                            labels.add("key")
                            labels.add("tgt")
                            why.setdefault("tgt", f"{side.reason(cur)} (the token after the context {other.reason(ctx)})")
                            why["key"] = "n-gram key: context hash and the token after it"
                            labels.add("structural")
                            key_node, key_stmt = node, self._stmt
                            break
                # A summary's parameters combined inside the callee: the call site decides.
                lp, rp = left.prefixed("param:"), right.prefixed("param:")
                if self._param_marks and lp and rp and (isinstance(op, cst.BitXor) or left.has("hash") or right.has("hash")):
                    for a in lp:
                        for b in rp:
                            labels.add(f"combo:{a[6:]}:{b[6:]}")
                            key_node, key_stmt = node, self._stmt
        return Fact(frozenset(labels), tuple(why.items()), key_node, key_stmt)

    def _call(self, node: cst.Call, flow: FunctionFlow, depth: int) -> Fact:
        ev = lambda n: self._expr(n, flow, depth + 1)  # noqa: E731
        func = node.func
        name = dotted(func) or ""
        last = name.rsplit(".", 1)[-1] if name else (func.attr.value if isinstance(func, cst.Attribute) else "")
        args = [a.value for a in node.args]
        kw = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        if "requires_grad" in kw and isinstance(kw["requires_grad"], cst.Name) and kw["requires_grad"].value == "True":
            return with_label(Fact(frozenset(), ()), "grad", Lazy(lambda: self.index.code(node, 80)))
        if last in ("requires_grad_",) and isinstance(func, cst.Attribute):
            inner = ev(func.value)
            if not node.args or (isinstance(node.args[0].value, cst.Name) and node.args[0].value.value == "True"):
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
            summary = self.summary(scope)
            offset = 1 if scope.cls is not None and scope.params and scope.params[0][0] in ("self", "cls") else 0
            arg_facts: dict[int, Fact] = {}
            for i, arg in enumerate(args):
                if arg.keyword is None:
                    arg_facts[i + offset] = self._expr(arg.value, flow, depth + 1)
                else:
                    names = scope.param_names
                    if arg.keyword.value in names:
                        arg_facts[names.index(arg.keyword.value)] = self._expr(arg.value, flow, depth + 1)

            def instantiate(fact: Fact) -> Fact:
                parts = [Fact(frozenset(l for l in fact.labels if not l.startswith(("param:", "combo:"))), fact.why, fact.key_node, fact.key_stmt)]
                for label in fact.labels:
                    if label.startswith("param:"):
                        parts.append(arg_facts.get(int(label[6:]), EMPTY))
                out = union(*parts)
                for label in fact.labels:
                    if label.startswith("combo:"):
                        a, b = (int(x) for x in label[6:].split(":"))
                        fa, fb = arg_facts.get(a, EMPTY), arg_facts.get(b, EMPTY)
                        for t, o in ((fa, fb), (fb, fa)):
                            if t.has("tgt") and not o.has("tgt") and o.labels:
                                out = with_label(out, "key", f"{scope.qualname} combines its arguments into a key")
                                out = Fact(out.labels, out.why, fact.key_node or out.key_node, fact.key_stmt or out.key_stmt)
                                break
                return out

            fact = instantiate(summary.returns)
            items = tuple(instantiate(i) for i in summary.items) if summary.items is not None else None
            results.append(Fact(fact.labels, fact.why, fact.key_node, fact.key_stmt, items))
        if len(results) == 1:
            return results[0]
        merged = union(*results)
        return merged

    def summary(self, scope: Scope) -> Summary:
        key = id(scope)
        if key in self._summaries:
            return self._summaries[key]
        if key in self._in_progress:
            return Summary()
        self._in_progress.add(key)
        try:
            flow = self._analyse(scope, marks=True)
        finally:
            self._in_progress.discard(key)
        summary = Summary(flow.returns, flow.return_items, tuple(scope.param_names))
        self._summaries[key] = summary
        return summary


def is_slice_el(element: cst.SubscriptElement) -> bool:
    return isinstance(element.slice, cst.Slice)


def names_in(node: cst.CSTNode) -> set[str]:
    """Identifiers (and dotted attribute paths) an expression reads."""
    from auditor.static.index import walk

    found: set[str] = set()
    for child in walk(node):
        if isinstance(child, cst.Name):
            found.add(child.value)
        elif isinstance(child, cst.Attribute):
            path = dotted(child)
            if path:
                found.add(path)
    return found


def depends(scope: Scope, roots: Iterable[str], limit: int = 400) -> set[str]:
    """Every name the given names are computed from in a function (transitively)."""
    by_name: dict[str, list[cst.BaseExpression]] = {}
    for a in scope.assignments:
        name = dotted(a.target) if isinstance(a.target, (cst.Name, cst.Attribute)) else (dotted(a.target.value) if isinstance(a.target, cst.Subscript) else None)
        if name and a.value is not None:
            by_name.setdefault(name, []).append(a.value)
    seen: set[str] = set()
    # sorted, so that which names the limit cuts off does not depend on the process's string
    # hash seed (the same submission must get the same findings in every run)
    queue = sorted(roots, reverse=True)
    while queue and len(seen) < limit:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for value in by_name.get(name, ()):
            queue.extend(sorted(names_in(value) - seen, reverse=True))
    return seen


def flow_of(index: SourceIndex) -> Flow:
    """The flow analysis of a source's index (cached on the index).

    Assignments in branches that are off under the submission's defaults and every shipped
    run configuration are ignored (see :mod:`auditor.static.reach`).
    """

    def build() -> Flow:
        from auditor.static.reach import program_for

        program = program_for(index.source)  # the submission's, attached by its evidence
        return Flow(index, dead=lambda stmt: program.dead_guard(stmt) is not None)

    return index.cached("flow", build)

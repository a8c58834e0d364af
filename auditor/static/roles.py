"""Roles of values: where the dataflow of :mod:`auditor.static.flow` starts.

Roles come from how a value is produced and used, not from what it is called:

- *validation data* (``val``): what a loader over the validation files returns — a string
  naming ``fineweb_val_*`` files, the validation-files setting (``args.val_files``) — and
  everything computed from it, through the submission's own loader functions;
- *training data* (``train``): the same for the training files (``fineweb_train_*``,
  ``args.train_files``), and what is filled from it (``cache.update(chunk)``);
- *other corpora*: a hub dataset (``hub``, what ``datasets.load_dataset`` returns),
  generated tokens (``gen``, what ``.generate(...)`` or ``torch.multinomial`` returns) and a
  token or text file a literal names that is neither of the above nor says it is held out
  (``file``: ``"data/wiki.bin"``; ``"data/val.bin"`` is not);
- *the target* (``tgt``), the token whose probability is scored: the index of a ``gather`` /
  ``take_along_dim`` over log-probabilities or probabilities, the last index of a subscript
  of them, the target argument of ``cross_entropy`` / ``nll_loss``, and the one-ahead slice
  of a validation stream (``s[1:]``, ``s[i + 1]``, ``s[t + 1 : t + 1 + n]``);
- *trainable* (``grad``): what an optimizer of ``torch.optim`` is built over (besides
  ``requires_grad=True`` and ``nn.Parameter``, which the flow sees where they are created).

:func:`use_roles` finds, in one function, the names whose *use* gives them a role (the index
of a gather over log-probabilities is the target, whatever its name). Identifiers are a
tie-breaker only: :func:`seed` gives the labels a name suggests (``y_batch``, ``val_tokens``),
and a target known only by its name carries ``tgt:name`` so that a rule can tell the two apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import libcst as cst

from auditor.static.facts import EMPTY, Fact
from auditor.static.index import Scope, SourceIndex, walk
from auditor.static.names import callee_name, dotted

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


#: Parts of a ``val_…`` name that make it a metric or a setting rather than validation data.
_NOT_VAL_DATA = frozenset(
    {"loss", "losses", "bpb", "nll", "ce", "acc", "accuracy", "score", "time", "ms", "every", "freq", "steps", "step",
     "size", "len", "count", "n", "num", "bits", "ppl", "perplexity", "interval", "lr", "bytes", "byte", "files",
     "file", "path", "pattern", "dir", "stride", "ratio", "frac", "fraction", "max", "min", "docs", "shards",
     "metric", "metrics", "log", "results", "stats", "mode"}
)



#: The name tests below are pure functions of an identifier, asked hundreds of thousands of
#: times per triage about a few thousand names: their answers are kept (bounded).
_NAME_CACHE = 1 << 16


@lru_cache(maxsize=_NAME_CACHE)
def is_val_name(name: str) -> bool:
    """Whether an identifier names validation data (``val_tokens``, ``val_np``, ``all_val``)."""
    parts = name.lower().split("_")
    if not ("val" in parts or "validation" in parts or name in ("vt", "valtoks")):
        return False
    return not (set(parts) & _NOT_VAL_DATA)


@lru_cache(maxsize=_NAME_CACHE)
def is_tgt_name(name: str) -> bool:
    return bool(TGT_NAME.match(name)) and not NOT_TGT.search(name)


@lru_cache(maxsize=_NAME_CACHE)
def is_tok_name(name: str) -> bool:
    return bool(TOK_NAME.match(name)) and not is_tgt_name(name)



@lru_cache(maxsize=_NAME_CACHE)
def seed(name: str) -> Fact:
    """Labels an identifier carries by its name alone."""
    labels = []
    if is_tgt_name(name):
        labels.append(("tgt", f"{name} (named like the token being predicted)"))
        labels.append(("tgt:name", name))
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


def int_value(node: cst.BaseExpression) -> int | None:
    if isinstance(node, cst.Integer):
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            return None
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = int_value(node.expression)
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
    value = int_value(node)
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
        # A name assigned the same kind of index everywhere (``jv = global_j[v_idx]`` in each of
        # several loops) has that index's base; assignments that disagree leave the name its own.
        assigned = scope.assigned(node.value)
        bases = {
            index_base(a.value, scope, depth + 1) if a.value is not None and a.position is None and a.kind == "assign" else None
            for a in assigned
        }
        if len(bases) == 1:
            inner = bases.pop()
            if inner is not None:
                return inner
        return (node.value, 0)
    if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and len(node.slice) == 1:
        # some of the same positions (``pos = positions[idx]``): the same base
        inner = index_base(node.value, scope, depth + 1)
        return (inner[0], 0) if inner is not None and inner[1] == 0 else None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        left = index_base(node.left, scope, depth + 1)
        if left is None:
            return None
        if isinstance(node.operator, cst.Subtract):
            return (left[0], -1)
        if left[1] < 0:
            return left
        value = int_value(node.right)
        return (left[0], 1 if value is not None and value > 0 else left[1])
    return None


def position_parts(label: str) -> tuple[str, str, str] | None:
    """``("cur", stream, base)`` of a position label ``cur:S:B`` / ``ctx:S:B``, else None."""
    if not label.startswith(("cur:", "ctx:")):
        return None
    kind, _, rest = label.partition(":")
    stream, _, base = rest.rpartition(":")
    return (kind, stream, base) if stream and base else None


def translate_position(label: str, stream: str, base: tuple[str, int]) -> str | None:
    """A position label of a callee, read at the caller: its stream and base parameters replaced by
    what the call passes (``base``, an :func:`index_base`). A base passed as ``j - k`` turns a read
    at the base into a context read; one passed as ``j + k`` relates to nothing the caller reads."""
    parts = position_parts(label)
    if parts is None:
        return None
    kind, _, _ = parts
    name, sign = base
    if sign > 0:
        return None
    if sign < 0:
        kind = "ctx"
    return f"{kind}:{stream}:{name}"


def slice_lower(element: cst.SubscriptElement) -> tuple[cst.BaseExpression | None, bool]:
    """The lower bound of a subscript element (None for ``[:k]``), and whether it is a slice."""
    inner = element.slice
    if isinstance(inner, cst.Slice):
        return inner.lower, True
    if isinstance(inner, cst.Index):
        return inner.value, False
    return None, False




#: Calls whose result is a (log-)probability over the vocabulary.
PROB_FUNCS = frozenset({"log_softmax", "softmax", "log_probs", "logsigmoid"})
#: Reads of a score at an index: ``lp.gather(-1, idx)``, ``torch.take_along_dim(lp, idx, -1)``.
GATHERS = frozenset({"gather", "take_along_dim", "take_along_axis"})
#: Losses whose second argument (or ``target=``) is the token being scored.
LOSSES = frozenset({"cross_entropy", "nll_loss"})
#: Attributes naming the validation files (a setting, not data): their loaders return validation tokens.
VAL_SETTING = re.compile(r"^val_(files|pattern|path|glob|shards|data_path|bin|filename)s?$|^fineweb_val", re.I)
VAL_LITERAL = re.compile(r"fineweb_val|_val_\*|val_\d*\.bin|/val[_.]", re.I)
#: The same for the training files: their loaders return training tokens.
TRAIN_SETTING = re.compile(r"^train_(files|pattern|glob|shards|data_path|bin|filename)s?$|^fineweb_train", re.I)
TRAIN_LITERAL = re.compile(r"fineweb_train|_train_\*|(^|/)train_\d+\.bin", re.I)
#: A token or text file named by a literal: a corpus of its own unless it says it is the
#: validation (or a test) set.
DATA_FILE = re.compile(r"\.(bin|npy|txt|jsonl?|parquet|arrow)$", re.I)
_HELD_OUT = re.compile(r"val|eval|test|held", re.I)
#: Methods that keep the element-to-token correspondence of an index (``y.unsqueeze(-1)``).
_INDEX_VIEW = frozenset({"unsqueeze", "view", "reshape", "long", "int", "to", "flatten", "contiguous", "squeeze", "expand", "type"})


@dataclass(frozen=True)
class UseRole:
    """A name that gets a role from how it is used."""

    name: str
    label: str
    reason: str
    line_node: cst.CSTNode


def _root(node: cst.BaseExpression | None, depth: int = 0) -> str | None:
    """The name an index expression reads through views: ``yb.unsqueeze(-1)`` → ``yb``."""
    if node is None or depth > 6:
        return None
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return dotted(node)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in _INDEX_VIEW:
        return _root(node.func.value, depth + 1)
    if isinstance(node, cst.Subscript) and all(_is_view_element(e) for e in node.slice):
        return _root(node.value, depth + 1)
    return None


def _is_view_element(element: cst.SubscriptElement) -> bool:
    """``:``, ``None`` or ``...`` in a subscript: a view of every element (``y[:, :, None]``)."""
    inner = element.slice
    if isinstance(inner, cst.Slice):
        return inner.lower is None and inner.upper is None
    value = inner.value if isinstance(inner, cst.Index) else None
    return isinstance(value, cst.Ellipsis) or (isinstance(value, cst.Name) and value.value == "None")


def is_prob(node: cst.BaseExpression | None, scope: Scope, depth: int = 0) -> bool:
    """Whether an expression is a (log-)probability: a ``log_softmax``/``softmax`` call, or a name
    assigned one (through views and arithmetic), in the function."""
    if node is None or depth > 4:
        return False
    if isinstance(node, cst.Call):
        name = dotted(node.func) or (node.func.attr.value if isinstance(node.func, cst.Attribute) else "")
        last = name.rsplit(".", 1)[-1]
        if last in PROB_FUNCS:
            return True
        if isinstance(node.func, cst.Attribute) and last in _INDEX_VIEW | {"float", "double", "log", "exp", "clamp", "clamp_min"}:
            return is_prob(node.func.value, scope, depth + 1)
        if last in ("log", "exp") and node.args:
            return is_prob(node.args[0].value, scope, depth + 1)
        return False
    if isinstance(node, cst.BinaryOperation):
        return _normalizes(node) or is_prob(node.left, scope, depth + 1) or is_prob(node.right, scope, depth + 1)
    if isinstance(node, cst.Subscript):
        return is_prob(node.value, scope, depth + 1)
    if isinstance(node, cst.Name):
        for assignment in scope.assigned(node.value):
            if assignment.value is not None and assignment.position is None and is_prob(assignment.value, scope, depth + 1):
                return True
    return False


def _normalizes(node: cst.BinaryOperation) -> bool:
    """A softmax written out: ``x - log(Σ exp(x))``, ``x - logsumexp(x)``, ``exp(x) / Σ exp(x)``
    (numpy and MLX scripts normalize by hand). What the expression computes, not its name."""

    def sums_exp(expr: cst.BaseExpression) -> bool:
        for inner in walk(expr):
            if isinstance(inner, cst.Call) and callee_name(inner) == "sum":
                func = inner.func
                parts = [func.value] if isinstance(func, cst.Attribute) else []
                parts += [a.value for a in inner.args]
                if any(callee_name(n) == "exp" for part in parts for n in walk(part)):
                    return True
        return False

    right = node.right
    if isinstance(node.operator, cst.Subtract):
        name = callee_name(right)
        return name == "logsumexp" or (name == "log" and sums_exp(right))
    if isinstance(node.operator, cst.Divide):
        return callee_name(node.left) == "exp" and sums_exp(right)
    return False


def use_roles(scope: Scope) -> list[UseRole]:
    """Names of a function that their uses give a role: the target (gather/loss indices over
    log-probabilities), trainable tensors (what an optimizer is built over)."""
    found: list[UseRole] = []
    for call in scope.calls:
        method = call.method
        index = None
        what = ""
        if call.qualified.startswith("torch.optim.") and call.node.args:
            # an optimizer built over tensors of the function: they are trainable
            params = call.node.args[0].value
            if isinstance(params, (cst.List, cst.Tuple)):
                for element in params.elements:
                    if isinstance(element.value, cst.Name):
                        found.append(UseRole(element.value.value, "grad", "an optimizer steps it", call.node))
            continue
        if method in GATHERS:
            func = call.node.func
            on_method = isinstance(func, cst.Attribute) and dotted(func.value) not in ("torch", "np", "numpy")
            source = func.value if on_method else call.arg(0)
            index = call.arg(1, "index") if on_method else (call.arg(2, "index") if method == "gather" else call.arg(1, "indices"))
            if not is_prob(source, scope):
                continue
            what = f"the index of a {method} over log-probabilities"
        elif method in LOSSES:
            index = call.arg(1, "target")
            what = f"the target of {method}"
        if index is None:
            continue
        root = _root(index)
        if root is not None:
            found.append(UseRole(root, "tgt", what, call.node))
    for site in scope.subscripts:
        if site.store or len(site.node.slice) < 2:
            continue
        last = site.node.slice[-1].slice
        if not isinstance(last, cst.Index) or not is_prob(site.node.value, scope):
            continue
        root = _root(last.value)
        if root is not None:
            found.append(UseRole(root, "tgt", "the index read from log-probabilities", site.node))
    return found


def literal_role(node: cst.BaseExpression) -> Fact:
    """A path literal naming the validation (``val``) or training (``train``) files, or the
    setting that holds them (``args.val_files``, ``args.train_files``)."""
    if isinstance(node, (cst.SimpleString, cst.FormattedStringText)):
        text = node.value
        if VAL_LITERAL.search(text):
            return Fact(frozenset({"val", "val:files"}), (("val", f"{text[:60]} (the validation files)"),))
        if TRAIN_LITERAL.search(text):
            return Fact(frozenset({"train"}), (("train", f"{text[:60]} (the training files)"),))
        if isinstance(node, cst.SimpleString) and DATA_FILE.search(text.strip("\"'")) and not _HELD_OUT.search(text):
            return Fact(frozenset({"file"}), (("file", f"{text[:60]} (another file)"),))
    elif isinstance(node, cst.Attribute):
        if VAL_SETTING.search(node.attr.value):
            return Fact(frozenset({"val", "val:files"}), (("val", f"{dotted(node) or node.attr.value} (the validation files setting)"),))
        if TRAIN_SETTING.search(node.attr.value):
            return Fact(frozenset({"train"}), (("train", f"{dotted(node) or node.attr.value} (the training files setting)"),))
    return EMPTY


def class_settings(index: SourceIndex) -> dict[str, Fact]:
    """Class-level settings whose value names the validation or the training files, by
    attribute: ``shards = os.path.join(data_path, "fineweb_val_*.bin")`` in a configuration
    class gives ``args.shards`` its role, whatever the attribute is called. Over the classes of
    the submission's sources; an attribute that two classes define with different roles has
    none."""

    def compute() -> dict[str, Fact]:
        indexes = index.program.indexes if index.program is not None else [index]
        found: dict[str, Fact] = {}
        clashes: set[str] = set()
        for source_index in indexes:
            for info in source_index.classes.values():
                roles = {attr: _files_role(value) for attr, value in info.attributes.items()}
                for attr, value in info.attributes.items():  # an alias of another setting (train = val)
                    if roles[attr] is None and isinstance(value, cst.Name) and roles.get(value.value) is not None:
                        roles[attr] = roles[value.value]
                for attr, role in roles.items():
                    if role is None:
                        continue
                    label, literal = role
                    what = "validation" if label == "val" else "training"
                    labels = frozenset({"val", "val:files"}) if label == "val" else frozenset({"train"})
                    fact = Fact(labels, ((label, f"{info.name}.{attr} = …{literal[:50]}… (the {what} files setting)"),))
                    if attr in found and found[attr].labels != labels:
                        clashes.add(attr)
                    found.setdefault(attr, fact)
        return {attr: fact for attr, fact in found.items() if attr not in clashes}

    return index.cached("class_settings", compute)


def _files_role(value: cst.BaseExpression) -> tuple[str, str] | None:
    """("val" or "train", the literal) when the string literals of an expression name exactly
    one of the two file sets."""
    roles: dict[str, str] = {}
    for node in walk(value):
        if isinstance(node, (cst.SimpleString, cst.FormattedStringText)):
            fact = literal_role(node)
            for label in ("val", "train"):
                if fact.has(label):
                    roles.setdefault(label, node.value)
    return next(iter(roles.items())) if len(roles) == 1 else None


def setting_role(node: cst.Attribute, index: SourceIndex) -> Fact:
    """The role of ``obj.attr``: by the setting's name (``args.val_files``), else by the value
    a configuration class gives that attribute (:func:`class_settings`)."""
    fact = literal_role(node)
    if fact.labels:
        return fact
    return class_settings(index).get(node.attr.value, EMPTY)

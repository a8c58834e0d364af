"""Loading a submission's script for a run on the CPU (runs inside the sandbox).

The script is executed as the ``__main__`` module, as ``python train_gpt.py`` runs it, from an
AST that the loader adjusts without changing what the evaluation computes:

- the body of ``if __name__ == "__main__":`` becomes a function, ``__pg_entry__``, that the
  driver calls when it is ready (scripts that call ``main()`` at import time are covered:
  a bare top-level ``main()`` call moves into the entry too);
- every function whose name says it evaluates (``eval_val``, ``eval_val_sliding_ttt``,
  ``eval_ngram_two_pass`` ...) is wrapped right after its definition so that the driver sees
  each call, its arguments and its return value;
- hashed-table sizes written as literals (``BUCKETS = 4_194_304``, ``1 << 22``) are scaled to
  the short stream, so that tables are as full as they are on the real validation set;
- GPU-only kernel switches (``self.use_fused = True``) are turned off: they pick Triton
  kernels that compute what the eager path computes.

Knobs are read statically: every ``os.environ.get("NAME", default)`` / ``os.getenv`` names a
knob the harness may set to shrink the run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from auditor.runtime.inline import Lifted, lift
from auditor.runtime.protocol import InlineSite

EVAL_NAME = re.compile(r"(^|_)eval($|_)|^eval|^evaluate($|_)|(^|_)score_(val|stream|chunks?|windows?)($|_)", re.I)
NOT_EVAL = re.compile(r"hessian|calib|gptq|quant|compile|warm|log|print|should|interval|every|_time$|_times$"
                      r"|^(train|run|main|setup|build|load)|_and_eval$", re.I)
BUCKET_NAME = re.compile(r"bucket|table_size|hash_size|num_slots|n_slots|tbl_size", re.I)
ENTRY = "__pg_entry__"
WRAP = "__pg_wrap__"


@dataclass
class Knob:
    name: str
    default: str | None  # the literal default as text, None when it is not a literal
    line: int
    #: The default on the challenge's 8 GPUs when it depends on the world size
    #: (``_default = "1" if world_size > 1 else "0"``), else None.
    multi_gpu_default: str | None = None
    #: The name the script binds the value to, when one assignment (or keyword, or dict key)
    #: takes it: ``vocab_size`` for ``vocab_size = int(os.environ.get("V", "1024"))``, whatever
    #: the variable is called. What the harness shrinks it by (:func:`auditor.runtime.knobs.role_of`).
    bound: str | None = None


WORLD = re.compile(r"world_size|distributed|WORLD_SIZE|nproc|num_gpus|n_gpus", re.I)


def _multi_gpu_value(node: ast.AST, assignments: dict[str, ast.AST]) -> str | None:
    """The value of a default expression on several GPUs, if it is ``a if <world test> else b``."""
    if isinstance(node, ast.Name) and node.id in assignments:
        node = assignments[node.id]
    if isinstance(node, ast.IfExp) and WORLD.search(ast.unparse(node.test)):
        test = ast.unparse(node.test).replace(" ", "")
        many = not re.search(r"==1\b|<=1\b|<2\b|\bnot\b", test)  # "world_size > 1", "distributed"
        return _literal(node.body if many else node.orelse)
    return None


@dataclass
class Prepared:
    """A script ready to execute: its code object, knobs, wrapped functions and adjustments."""

    code: object
    knobs: dict[str, Knob]
    wrapped: list[str]
    has_entry: bool
    adjustments: list[str] = field(default_factory=list)
    triton_optional: bool = False  # Triton is imported inside try: (the script has a fallback)


def import_places(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Top-level packages imported inside a ``try:`` block, and those imported outside one."""
    inside: set[str] = set()
    outside: set[str] = set()

    def visit(node: ast.AST, in_try: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [node.module]
        for name in names:
            (inside if in_try else outside).add(name.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, in_try or (isinstance(node, ast.Try) and child in node.body))

    visit(tree, False)
    return inside, outside


def _optional_import(tree: ast.AST, package: str) -> bool:
    """Whether every import of ``package`` sits inside a ``try:`` block."""
    inside, outside = import_places(tree)
    return package in inside and package not in outside


def is_eval_name(name: str) -> bool:
    return bool(EVAL_NAME.search(name)) and not NOT_EVAL.search(name)


def _literal(node: ast.AST) -> str | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return str(value)


def _env_key(node: ast.AST) -> str | None:
    """The variable an ``os.environ.get("NAME", ...)`` / ``os.getenv`` / ``os.environ["NAME"]``
    reads, when ``node`` is one."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        func = node.func
        if (isinstance(func, ast.Attribute) and ((func.attr == "get" and isinstance(func.value, ast.Attribute)
                                                  and func.value.attr == "environ") or func.attr == "getenv")) \
                or (isinstance(func, ast.Name) and func.id == "getenv"):
            return node.args[0].value
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ"
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        return node.slice.value
    return None


def _one_env_key(value: ast.AST) -> str | None:
    """The one variable an expression reads (``int(os.environ.get("X", "8"))``, ``getenv("X") ==
    "1"``); None when it reads none or several (then no single value is bound)."""
    keys = {key for node in ast.walk(value) if (key := _env_key(node)) is not None}
    return keys.pop() if len(keys) == 1 else None


def _bindings(tree: ast.AST) -> dict[str, str]:
    """Variable -> the name its value is bound to, by the innermost binding around its read: an
    assignment's target (a name, or the attribute of ``self.vocab_size = ...``), a keyword
    argument, a dict key (``{"seq_len": int(os.environ.get(...))}`` binds ``seq_len``, not the
    dict's variable). A binding whose value reads several variables binds none of them."""
    out: dict[str, str] = {}

    def name_of(target: ast.AST) -> str | None:
        return target.id if isinstance(target, ast.Name) else target.attr if isinstance(target, ast.Attribute) else None

    def visit(node: ast.AST, bound: str | None) -> None:
        key = _env_key(node)
        if key is not None and bound:
            out.setdefault(key, bound)
        pairs: list[tuple[ast.AST, str | None]] = []
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            pairs = [(node.value, name_of(node.targets[0]))]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.value, name_of(node.target))]
        elif isinstance(node, ast.keyword):
            pairs = [(node.value, node.arg)]
        elif isinstance(node, ast.Dict):
            pairs = [(v, k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value.isidentifier()
                      else None) for k, v in zip(node.keys, node.values)]
        inner = {id(child): (name if name and _one_env_key(child) else None) for child, name in pairs}
        for child in ast.iter_child_nodes(node):
            visit(child, inner.get(id(child), bound if not pairs else None))

    visit(tree, None)
    return out


def scan_knobs(tree: ast.AST) -> dict[str, Knob]:
    """Environment variables the script reads, with their literal defaults and the names their
    values are bound to."""
    knobs: dict[str, Knob] = {}
    assignments: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assignments.setdefault(node.targets[0].id, node.value)
    for node in ast.walk(tree):  # os.environ.get("NAME", default), os.getenv(...)
        key = _env_key(node) if isinstance(node, ast.Call) else None
        if key is not None:
            assert isinstance(node, ast.Call)
            default = _literal(node.args[1]) if len(node.args) > 1 else None
            multi = _multi_gpu_value(node.args[1], assignments) if len(node.args) > 1 and default is None else None
            knobs.setdefault(key, Knob(key, default, node.lineno, multi))
    for node in ast.walk(tree):  # os.environ["NAME"]
        key = _env_key(node) if isinstance(node, ast.Subscript) else None
        if key is not None:
            knobs.setdefault(key, Knob(key, None, node.lineno))
    try:
        bindings = _bindings(tree)
    except RecursionError:  # an expression nested too deeply to follow: no knob is bound by name
        bindings = {}
    for key, name in bindings.items():
        if key in knobs:
            knobs[key].bound = name
    return knobs


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
        sides = [test.left, *test.comparators]
        names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
        consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
        return bool(names and consts)
    return False


def _is_bare_entry_call(node: ast.stmt, defined: set[str]) -> bool:
    """A top-level ``main()`` (or ``sys.exit(main())``) call outside any guard."""
    if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call):
        return False
    call = node.value
    if isinstance(call.func, ast.Name) and call.func.id in defined and call.func.id in ("main", "run", "train", "cli"):
        return True
    if (isinstance(call.func, ast.Attribute) and call.func.attr == "exit" and call.args
            and isinstance(call.args[0], ast.Call) and isinstance(call.args[0].func, ast.Name)
            and call.args[0].func.id in defined):
        return True
    return False


def _int_literal(node: ast.AST) -> int | None:
    """The value of an int literal, ``1 << k`` or ``2 ** k`` (literal operands only)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if (isinstance(node, ast.BinOp) and isinstance(node.op, (ast.LShift, ast.Pow))
            and isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)):
        left, right = node.left.value, node.right.value
        if isinstance(left, int) and isinstance(right, int) and 0 <= right < 63:
            return left << right if isinstance(node.op, ast.LShift) else left**right
    return None


def _scaled_int(node: ast.AST, scale: float) -> ast.AST | None:
    """A scaled copy of an int literal (or ``1 << k`` / ``2 ** k``) of at least 4096."""
    value = _int_literal(node)
    if value is None or value < 4096:
        return None
    return ast.copy_location(ast.Constant(scaled_buckets(value, scale)), node)


def scaled_buckets(value: int, scale: float) -> int:
    """Bucket count for a stream ``scale`` times as long as the real one (a power of two, >= 64)."""
    target = max(64.0, value * scale)
    power = 1 << max(6, round(target).bit_length() - 1)
    if target / power > 1.5:
        power <<= 1
    return power


class _Transformer(ast.NodeTransformer):
    def __init__(self, bucket_scale: float | None, scorers: frozenset[str] = frozenset()) -> None:
        self.scorers = scorers
        self.wrapped: list[str] = []
        self.adjustments: list[str] = []
        self.bucket_scale = bucket_scale
        self._class_depth = 0

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self._class_depth += 1
        self.generic_visit(node)
        self._class_depth -= 1
        return node

    def _visit_body(self, body: list[ast.stmt], in_class: bool) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for stmt in body:
            new = self.visit(stmt)
            items = new if isinstance(new, list) else [new] if new is not None else []
            out.extend(items)
            if (not in_class and isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and (is_eval_name(stmt.name) or stmt.name in self.scorers)):
                wrap = ast.parse(f"{stmt.name} = {WRAP}({stmt.name}, {stmt.name!r})").body[0]
                for n in ast.walk(wrap):
                    ast.copy_location(n, stmt)
                    n.end_lineno = stmt.lineno  # type: ignore[attr-defined]
                out.append(wrap)
                self.wrapped.append(stmt.name)
        return out

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        if self.bucket_scale:
            self._scale_defaults(node.args)
        node.body = self._visit_body(node.body, in_class=False)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def _scale_defaults(self, args: ast.arguments) -> None:
        positional = args.posonlyargs + args.args
        for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
            if BUCKET_NAME.search(arg.arg):
                scaled = _scaled_int(default, self.bucket_scale or 1.0)
                if scaled is not None:
                    args.defaults[args.defaults.index(default)] = scaled
                    self.adjustments.append(f"line {default.lineno}: {arg.arg} default scaled to {scaled.value}")
        for i, (arg, default) in enumerate(zip(args.kwonlyargs, args.kw_defaults)):
            if default is not None and BUCKET_NAME.search(arg.arg):
                scaled = _scaled_int(default, self.bucket_scale or 1.0)
                if scaled is not None:
                    args.kw_defaults[i] = scaled
                    self.adjustments.append(f"line {default.lineno}: {arg.arg} default scaled to {scaled.value}")

    def _target_names(self, targets: list[ast.expr]) -> list[str]:
        names = []
        for t in targets:
            if isinstance(t, ast.Name):
                names.append(t.id)
            elif isinstance(t, ast.Attribute):
                names.append(t.attr)
        return names

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        names = self._target_names(node.targets)
        if self.bucket_scale and any(BUCKET_NAME.search(n) for n in names):
            scaled = _scaled_int(node.value, self.bucket_scale)
            if scaled is not None:
                self.adjustments.append(f"line {node.lineno}: {names[0]} scaled to {scaled.value}")
                node.value = scaled
        if ("use_fused" in names and isinstance(node.value, ast.Constant) and node.value.value is True):
            node.value = ast.copy_location(ast.Constant(False), node.value)
            self.adjustments.append(f"line {node.lineno}: use_fused set to False (Triton kernel, eager path used)")
        self.generic_visit(node)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        names = self._target_names([node.target])
        if self.bucket_scale and node.value is not None and any(BUCKET_NAME.search(n) for n in names):
            scaled = _scaled_int(node.value, self.bucket_scale)
            if scaled is not None:
                self.adjustments.append(f"line {node.lineno}: {names[0]} scaled to {scaled.value}")
                node.value = scaled
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for fieldname, old in ast.iter_fields(node):
            if fieldname in ("body", "orelse", "finalbody") and isinstance(old, list) and old and isinstance(old[0], ast.stmt):
                setattr(node, fieldname, self._visit_body(old, in_class=isinstance(node, ast.ClassDef)))
            elif isinstance(old, list):
                new_values = []
                for value in old:
                    if isinstance(value, ast.AST):
                        value = self.visit(value)
                        if value is None:
                            continue
                        if not isinstance(value, ast.AST):
                            new_values.extend(value)
                            continue
                    new_values.append(value)
                old[:] = new_values
            elif isinstance(old, ast.AST):
                new_node = self.visit(old)
                if new_node is None:
                    delattr(node, fieldname)
                else:
                    setattr(node, fieldname, new_node)
        return node


#: Table sizes are powers of two at least this large (smaller moduli are vocabularies, heads, ...)
#: and at most this (larger ones are integer wrap-arounds, ``% (1 << 64)``, not tables).
MIN_TABLE, MAX_TABLE = 1 << 16, 1 << 36


def _power_value(node: ast.AST) -> int | None:
    """The value of ``1 << k``, ``2 ** k`` or an int literal, when it is a power of two between
    :data:`MIN_TABLE` and :data:`MAX_TABLE`."""
    value = _int_literal(node)
    if value is not None and MIN_TABLE <= value <= MAX_TABLE and value & (value - 1) == 0:
        return value
    return None


def hash_table_sizes(tree: ast.AST) -> set[int]:
    """Sizes of hashed tables, read from how keys are reduced into them: the modulus of
    ``key % SIZE``, the mask of ``key & (SIZE - 1)`` (written as literals or through a name
    assigned one, whatever the name), and a mask written ``(1 << k) - 1`` wherever it goes."""
    assigned: dict[str, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            assigned.setdefault(node.targets[0].id, node.value)

    def value_of(node: ast.AST, minus_one: bool) -> int | None:
        if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:  # np.uint64(...)
            node = node.args[0]
        if isinstance(node, ast.Name) and node.id in assigned:
            node = assigned[node.id]
            if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
                node = node.args[0]
        if minus_one:
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and isinstance(node.right, ast.Constant) \
                    and node.right.value == 1:
                return _power_value(node.left)
            if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
                return _power_value(ast.Constant(node.value + 1))
            return None
        return _power_value(node)

    sizes: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub) and isinstance(node.left, ast.BinOp)
                and isinstance(node.right, ast.Constant) and node.right.value == 1):
            size = _power_value(node.left)  # (1 << 22) - 1: a mask, wherever it is passed
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            size = value_of(node.right, minus_one=False)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
            size = value_of(node.right, minus_one=True) or value_of(node.left, minus_one=True)
        else:
            continue
        if size is not None:
            sizes.add(size)
    return sizes


class _TableSizes(ast.NodeTransformer):
    """Every literal of a hashed table's size (and of its mask, size - 1) scaled alike."""

    def __init__(self, sizes: set[int], scale: float) -> None:
        self.scaled = {size: scaled_buckets(size, scale) for size in sizes}
        self.adjustments: list[str] = []

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        value = _power_value(node)
        if value in self.scaled:
            self.adjustments.append(f"line {node.lineno}: hashed table size {value} scaled to {self.scaled[value]}")
            return ast.copy_location(ast.Constant(self.scaled[value]), node)
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            for size, new in self.scaled.items():
                if node.value in (size, size - 1):
                    self.adjustments.append(f"line {node.lineno}: hashed table size {size} scaled to {new}")
                    return ast.copy_location(ast.Constant(new if node.value == size else new - 1), node)
        return node


def prepare(text: str, filename: str, bucket_scale: float | None = None, scorers: frozenset[str] = frozenset(),
            inline: Sequence[InlineSite] = ()) -> Prepared:
    """Parse and adjust a script; raises SyntaxError when it does not parse. Functions named
    like an evaluation, and those in ``scorers``, are wrapped to be captured; so is the block
    that computes each ``inline`` site's printed values, once lifted into a function."""
    tree = ast.parse(text, filename=filename)
    lifted: list[str] = []
    for site in inline:
        done = lift(tree, site.function, site.line, list(site.printed), WRAP)
        if isinstance(done, Lifted):
            lifted.append(f"{done.shown}: the claimed line's values are computed inline; the block runs as one "
                          "function to be captured")
    knobs = scan_knobs(tree)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    entry_body: list[ast.stmt] = []
    body: list[ast.stmt] = []
    for stmt in tree.body:
        if _is_main_guard(stmt):
            entry_body.extend(stmt.body)  # type: ignore[attr-defined]
        elif _is_bare_entry_call(stmt, defined):
            entry_body.append(stmt)
        else:
            body.append(stmt)
    transformer = _Transformer(bucket_scale, scorers)
    transformer.adjustments.extend(lifted)
    tree.body = transformer._visit_body(body, in_class=False)
    has_entry = bool(entry_body)
    if has_entry:
        entry = ast.FunctionDef(
            name=ENTRY, args=ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                                           kwarg=None, defaults=[]),
            body=transformer._visit_body(entry_body, in_class=False), decorator_list=[], returns=None, type_params=[],
        )
        ast.copy_location(entry, entry_body[0])
        tree.body.append(entry)
    if bucket_scale and not any("scaled" in a for a in transformer.adjustments):
        # no table size is named as one (BUCKETS = ...): the sizes the hashes are reduced into
        sizes = hash_table_sizes(tree)
        if sizes:
            tables = _TableSizes(sizes, bucket_scale)
            tree = tables.visit(tree)
            transformer.adjustments.extend(dict.fromkeys(tables.adjustments))
    ast.fix_missing_locations(tree)
    code = compile(tree, filename, "exec")
    return Prepared(code, knobs, transformer.wrapped, has_entry, transformer.adjustments,
                    _optional_import(tree, "triton"))

"""Semantics-preserving rewrites of a submission, for metamorphic testing of the static rules.

A detection that rests on what the code computes survives every rewrite here; one that rests
on an identifier, a file boundary, the formatting or an env variable's name does not. Each
rewrite takes and returns the Python files of a folder as ``{relative path: text}`` (the
rewrites that touch only one file take its text):

``rename_locals``
    every local variable and parameter inside functions gets an opaque name (``v0``, ``v1``,
    …; one name per original identifier, so closures and keyword arguments stay consistent).
    ``self``/``cls`` and names bound by ``import`` stay; globals, attributes, functions and
    classes keep their names.
``toggle_wrapper``
    a plain file is wrapped in ``exec(lzma.decompress(base64.b85decode(...)))``; a wrapped one
    is unwrapped (its payload spliced in place of the ``exec`` statement). Wrappers are
    decoded with :func:`auditor.unpack.unpack`, never executed.
``move_function``
    a top-level function or class moves into a sibling module, which the file imports back.
``minify`` / ``expand``
    one-space indentation with simple statements joined by ``;`` / one statement per line.
``rename_env``
    every environment variable the code reads gets a new name, in the code, the README, the
    shell scripts and the logs alike.

A rewrite of a wrapped file rewrites its payload and wraps the result again with the same
codec (:func:`on_payload`). :func:`effective_ast` is what a file runs (payloads spliced in);
the wrapper and style rewrites must leave it unchanged.
"""

from __future__ import annotations

import ast
import base64
import builtins
import io
import lzma
import re
import tokenize
import zlib
from collections.abc import Callable

from auditor.unpack import unpack

_BUILTINS = frozenset(dir(builtins))


# -- rename locals -------------------------------------------------------------------------


def _bound_in(node: ast.AST, params: list[str]) -> set[str]:
    """The names a function (or lambda, or comprehension) binds in its own scope."""
    bound = set(params)
    declared: set[str] = set()
    imported: set[str] = set()
    stack = list(ast.iter_child_nodes(node)) if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else list(node.body)
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        stack = [g.target for g in node.generators] + [g for gen in node.generators for g in gen.ifs] + [
            getattr(node, "elt", None) or node.key, getattr(node, "value", None)
        ]
        stack = [s for s in stack if s is not None]
    while stack:
        sub = stack.pop()
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            imported.add(sub.name)  # a nested def keeps its name
            stack.extend(sub.decorator_list)
            if not isinstance(sub, ast.ClassDef):
                stack.extend(d for d in sub.args.defaults + sub.args.kw_defaults if d is not None)
            continue
        if isinstance(sub, (ast.Lambda, ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            # their own scope; only a walrus inside a comprehension binds here
            for inner in ast.walk(sub):
                if isinstance(inner, ast.NamedExpr) and isinstance(inner.target, ast.Name):
                    bound.add(inner.target.id)
            if isinstance(sub, ast.Lambda):
                stack.extend(d for d in sub.args.defaults + sub.args.kw_defaults if d is not None)
            else:
                stack.append(sub.generators[0].iter)
            continue
        if isinstance(sub, (ast.Global, ast.Nonlocal)):
            declared.update(sub.names)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in sub.names)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            bound.add(sub.id)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            bound.add(sub.name)
        elif isinstance(sub, (ast.MatchAs, ast.MatchStar)) and sub.name:
            bound.add(sub.name)
        elif isinstance(sub, ast.MatchMapping) and sub.rest:
            bound.add(sub.rest)
        stack.extend(ast.iter_child_nodes(sub))
    return bound - declared - imported - {"self", "cls", "__class__"}


def _params(args: ast.arguments) -> list[str]:
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return names


#: Marks, in a scope's set of renamed locals, a parameter that keeps its name.
KEPT = "="


class _Renamer(ast.NodeTransformer):
    """Renames the locals of every function; ``mapping`` gives one opaque name per identifier."""

    def __init__(self, taken: set[str], kept: frozenset[str] = frozenset()) -> None:
        self.mapping: dict[str, str] = {}
        self.taken = taken
        #: parameter names kept as they are: keywords at calls the rewrite cannot follow
        self.kept = kept
        self.scopes: list[set[str]] = []  # locals of the enclosing function scopes (innermost last)
        self.class_depth: list[bool] = []
        #: function name -> its parameters renamed (for keyword arguments at call sites)
        self.signatures: dict[str, dict[str, str]] = {}

    def opaque(self, name: str) -> str:
        if name not in self.mapping:
            n = len(self.mapping)
            while f"v{n}" in self.taken:
                n += 1000
            self.mapping[name] = f"v{n}"
            self.taken.add(self.mapping[name])
        return self.mapping[name]

    def _renamed(self, name: str) -> str:
        for scope in reversed(self.scopes):
            if name in scope:
                return self.opaque(name)
            if KEPT + name in scope:  # a parameter that keeps its name shadows the outer one
                return name
        return name

    def _function(self, node: ast.AST, args: ast.arguments, body: list[ast.AST] | ast.AST) -> None:
        # defaults, annotations and decorators are evaluated in the enclosing scope
        every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
        for default in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(default)
        for arg in every:  # kept: code may read them (torch.library.custom_op infers its schema from them)
            if arg.annotation is not None:
                self.visit(arg.annotation)
        params = _params(args)
        kept_here = self.kept & set(params)
        local = (_bound_in(node, params) - kept_here) | {KEPT + name for name in kept_here}
        for arg in every:
            if arg.arg in local:
                arg.arg = self.opaque(arg.arg)
        self.scopes.append(local)
        try:
            for stmt in body if isinstance(body, list) else [body]:
                self.visit(stmt)
        finally:
            self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        for decorator in node.decorator_list:
            self.visit(decorator)
        if node.returns is not None:  # evaluated where the function is defined
            self.visit(node.returns)
        if node.name not in self.signatures:
            self.signatures[node.name] = {}
        for name in _params(node.args):
            if name not in ("self", "cls") and name not in self.kept:
                self.signatures[node.name][name] = self.opaque(name)
        self._function(node, node.args, node.body)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self._function(node, node.args, node.body)
        return node

    def _comprehension(self, node: ast.AST) -> ast.AST:
        if not self.scopes:
            return self.generic_visit(node)
        self.visit(node.generators[0].iter)
        local = _bound_in(node, [])
        self.scopes.append(local)
        try:
            for i, gen in enumerate(node.generators):
                self.visit(gen.target)
                if i:
                    self.visit(gen.iter)
                for cond in gen.ifs:
                    self.visit(cond)
            for field in ("elt", "key", "value"):
                if getattr(node, field, None) is not None:
                    self.visit(getattr(node, field))
        finally:
            self.scopes.pop()
        return node

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        # a class body is not a scope its methods see; its own names are attributes
        for part in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(part)
        saved = self.scopes
        self.scopes = [s - _class_names(node) for s in saved]
        try:
            for stmt in node.body:
                self.visit(stmt)
        finally:
            self.scopes = saved
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._renamed(node.id)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._renamed(node.name)
        return self.generic_visit(node)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        node.names = [self._renamed(n) for n in node.names]
        return node

    def visit_MatchAs(self, node: ast.MatchAs) -> ast.AST:
        if node.name:
            node.name = self._renamed(node.name)
        return self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> ast.AST:
        if node.name:
            node.name = self._renamed(node.name)
        return node


def _class_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for stmt in node.body:
        for sub in ast.walk(stmt):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                names.add(sub.id)
    return names


def _callee(func: ast.expr) -> str | None:
    """The name a call's keywords are matched against: a plain function's, or a method called
    on ``self``/``cls``; None for anything else (a method of some other object, a module called
    through ``__call__``: it may be a library's, or ``forward`` reached by ``block(x, v=...)``)."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in ("self", "cls"):
        return func.attr
    return None


def _unfollowed_keywords(tree: ast.AST, own: set[str]) -> frozenset[str]:
    """Keywords passed at calls whose callee is not one of the file's own functions by name:
    a parameter with such a name keeps it, or the call would no longer bind it."""
    return frozenset(kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) and _callee(node.func) not in own
                     for kw in node.keywords if kw.arg)


class _Keywords(ast.NodeTransformer):
    """Keyword arguments of calls to the file's own functions follow their parameters."""

    def __init__(self, signatures: dict[str, dict[str, str]]) -> None:
        self.signatures = signatures

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        name = _callee(node.func)
        signature = self.signatures.get(name or "")
        if signature:
            for kw in node.keywords:
                if kw.arg in signature:
                    kw.arg = signature[kw.arg]
        return node


def keywords_used(text: str) -> frozenset[str]:
    """Every keyword passed at a call in ``text`` (a wrapped file's payload included)."""
    code = unwrap(text) or text
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return frozenset()
    return frozenset(kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords if kw.arg)


def rename_locals(text: str, keep: frozenset[str] = frozenset()) -> str:
    """Every local variable and parameter inside functions renamed to an opaque name, keyword
    arguments at calls of the file's own functions with them. A parameter that some call passes
    by keyword where the callee cannot be told (``block(x, v_embed=ve)`` reaches ``forward``
    through ``__call__``) keeps its name, so that the code still runs as before; so does every
    name in ``keep`` (the keywords other files of the submission pass)."""
    tree = ast.parse(text)
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
    } | _BUILTINS
    own = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    renamer = _Renamer(taken, _unfollowed_keywords(tree, own) | keep)
    for stmt in tree.body:
        renamer.visit(stmt)
    # class names used as constructors: their __init__ parameters are keyword targets too
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
            if init is not None and "__init__" in renamer.signatures:
                renamer.signatures.setdefault(node.name, renamer.signatures["__init__"])
    _Keywords(renamer.signatures).visit(tree)
    return ast.unparse(tree) + "\n"


# -- wrappers ------------------------------------------------------------------------------

#: Encoders for the layers :func:`auditor.unpack.unpack` names, outermost call last.
_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "lzma": lzma.compress,
    "zlib": zlib.compress,
    "b85": base64.b85encode,
    "a85": base64.a85encode,
    "b64": base64.b64encode,
    "b32": base64.b32encode,
    "b16": base64.b16encode,
}


def _top_wrappers(text: str) -> list[tuple[ast.stmt, str, tuple[str, ...]]]:
    """The module-level ``exec(...)`` statements whose payload decodes: (statement, payload, layers)."""
    tree = ast.parse(text)
    found = unpack(text, "<rewrite>", tree=tree)
    by_line = {p.origin.line: p for p in found.payloads if p.depth == 1}
    out = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and stmt.lineno in by_line:
            payload = by_line[stmt.lineno]
            out.append((stmt, payload.text, payload.origin.layers))
    return out


def _splice(text: str, replacements: list[tuple[ast.stmt, str]]) -> str:
    lines = text.splitlines(keepends=True)
    for stmt, new in sorted(replacements, key=lambda r: -r[0].lineno):
        lines[stmt.lineno - 1 : stmt.end_lineno] = [new if new.endswith("\n") else new + "\n"]
    return "".join(lines)


def unwrap(text: str) -> str | None:
    """The file with every module-level wrapper replaced by its payload (None: no wrapper)."""
    wrappers = _top_wrappers(text)
    if not wrappers:
        return None
    return _hoist_future(_splice(text, [(stmt, payload) for stmt, payload, _ in wrappers]))


_FUTURE = re.compile(r"^from __future__ import [^\n]*\n", re.M)


def _hoist_future(text: str) -> str:
    """``from __future__`` imports of a spliced payload moved to the top, where Python wants them."""
    futures = _FUTURE.findall(text)
    if not futures:
        return text
    return "".join(dict.fromkeys(futures)) + _FUTURE.sub("", text)


def _with_import(text: str) -> str:
    """``text`` with the decoders' import added after its ``from __future__`` imports."""
    head = "import base64, lzma, zlib\n"
    futures = _FUTURE.findall(text)
    return _hoist_future(head + text) if futures else head + text


def wrap(text: str, layers: tuple[str, ...] = ("b85", "lzma")) -> str:
    """``text`` as a self-extracting ``exec`` of its encoding by ``layers`` (innermost decode first).

    ``layers`` is in the order :func:`auditor.unpack.unpack` reports them: the decode applied
    first (to the literal) comes first.
    """
    data = text.encode("utf-8")
    for layer in reversed(layers):
        if layer not in _ENCODERS:
            raise ValueError(f"no encoder for layer {layer!r}")
        data = _ENCODERS[layer](data)
    calls = {
        "lzma": "lzma.decompress", "zlib": "zlib.decompress", "b85": "base64.b85decode", "a85": "base64.a85decode",
        "b64": "base64.b64decode", "b32": "base64.b32decode", "b16": "base64.b16decode",
    }
    expr = repr(data.decode("ascii")) if layers[0] in ("b85", "a85", "b64", "b32", "b16") else repr(data)
    for layer in layers:
        expr = f"{calls[layer]}({expr})"
    return f"import base64, lzma, zlib\nexec({expr})\n"


def on_payload(text: str, rewrite: Callable[[str], str]) -> str:
    """Apply ``rewrite`` to what a file runs: a wrapped file's payload is rewritten and wrapped
    again with the same codec; a plain file is rewritten directly."""
    wrappers = _top_wrappers(text)
    if not wrappers:
        return rewrite(text)
    replacements = []
    for stmt, payload, layers in wrappers:
        new = on_payload(payload, rewrite)
        replacements.append((stmt, wrap(new, layers).split("\n", 1)[1]))
    return _with_import(_splice(text, replacements))


def toggle_wrapper(text: str) -> str:
    """Unwrap a wrapped file; wrap a plain one in lzma + base85."""
    plain = unwrap(text)
    return plain if plain is not None else wrap(text)


def effective_ast(text: str) -> str:
    """The AST a file runs, payloads spliced in (the wrapper's own imports left out), as a string."""
    for _ in range(8):
        plain = unwrap(text)
        if plain is None:
            break
        text = plain
    tree = ast.parse(text)
    body = [s for s in tree.body if not _wrapper_import(s)]
    # ``from __future__`` imports are flags of the whole file: where they stand does not matter
    futures = [s for s in body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
    rest = [s for s in body if s not in futures]
    return ast.dump(ast.Module(body=futures + rest, type_ignores=[]))


def _wrapper_import(stmt: ast.stmt) -> bool:
    """An import of decoding modules only (what a wrapper needs, and nothing its payload runs)."""
    codecs = {"base64", "lzma", "zlib", "gzip", "bz2", "brotli", "codecs", "binascii"}
    if isinstance(stmt, ast.Import):
        return all(a.name in codecs for a in stmt.names)
    if isinstance(stmt, ast.ImportFrom):
        return stmt.module in codecs
    return False


# -- style ---------------------------------------------------------------------------------


def expand(text: str) -> str:
    """One statement per line, four-space indents (the AST's own rendering)."""
    return ast.unparse(ast.parse(text)) + "\n"


def minify(text: str) -> str:
    """One-space indents; consecutive simple statements of a block joined with ``;``, and a
    block of simple statements only moved onto its header's line (``class H:a=1;b=2``,
    ``if c:x=1``), as minifiers write them."""
    expanded = expand(text)
    tokens = list(tokenize.generate_tokens(io.StringIO(expanded).readline))
    lines = expanded.splitlines(keepends=True)
    # logical lines: (depth, first row, last row, last column, is simple)
    logical: list[list] = []
    depth = 0
    start = None
    last_op = ""
    first_tok = ""
    for tok in tokens:
        if tok.type == tokenize.INDENT:
            depth += 1
        elif tok.type == tokenize.DEDENT:
            depth -= 1
        elif tok.type in (tokenize.NEWLINE,):
            if start is not None:
                simple = last_op != ":" and first_tok != "@"
                logical.append([depth, start[0], tok.start[0], simple])
            start, last_op, first_tok = None, "", ""
        elif tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        else:
            if start is None:
                start, first_tok = tok.start, tok.string
            last_op = tok.string if tok.type == tokenize.OP else "x"
    joined: list[list] = []  # [depth, text, simple]
    for depth, first, last, simple in logical:
        body = "".join(lines[first - 1 : last]).strip(" ").rstrip("\n")
        body = body.lstrip()
        if joined and joined[-1][0] == depth and joined[-1][2] and simple:
            joined[-1][1] += ";" + body
        else:
            joined.append([depth, body, simple])
    out: list[str] = []
    i = 0
    while i < len(joined):
        depth, body, simple = joined[i]
        # a header whose whole block is one joined line of simple statements (and no
        # decorator line): the block goes on the header's line
        follows = joined[i + 1] if i + 1 < len(joined) else None
        after = joined[i + 2] if i + 2 < len(joined) else None
        if (not simple and not body.startswith("@") and follows is not None and follows[0] == depth + 1
                and follows[2] and "\n" not in follows[1] and (after is None or after[0] <= depth)):
            out.append(" " * depth + body + follows[1])
            i += 2
            continue
        out.append(" " * depth + body)
        i += 1
    return "\n".join(out) + "\n"


# -- move a function -----------------------------------------------------------------------


def module_imports_and_names(tree: ast.Module) -> tuple[list[ast.stmt], set[str]]:
    """A module's top-level imports (``from __future__`` left out) and the names its top level
    defines (functions, classes, assigned names): what a function moved out of it needs."""
    imports = [st for st in tree.body if isinstance(st, (ast.Import, ast.ImportFrom))
               and not (isinstance(st, ast.ImportFrom) and st.module == "__future__")]
    defined: set[str] = set()
    for st in tree.body:
        if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(st.name)
        elif isinstance(st, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for t in st.targets if isinstance(st, ast.Assign) else [st.target]:
                defined.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return imports, defined


def move_function(files: dict[str, str], path: str, name: str, helper: str = "aux_mod") -> dict[str, str] | None:
    """Move the top-level function or class ``name`` of ``path`` into a sibling module ``helper``.

    The helper gets the file's imports and imports back the file's other module-level names
    it uses (``from train_gpt import X``: the script runs as ``__main__``, so this does not
    re-run it); the file imports the moved definition. A wrapped file is moved inside its
    payload and wrapped again. Returns None when ``path`` defines no such top-level name.
    """
    text = files[path]
    module = path.rsplit("/", 1)[-1].removesuffix(".py")
    folder = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    moved: dict[str, str] = {}

    def rewrite(code: str) -> str:
        tree = ast.parse(code)
        target = next(
            (s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and s.name == name),
            None,
        )
        if target is None:
            return code
        imports, defined = module_imports_and_names(tree)
        used = {n.id for n in ast.walk(target) if isinstance(n, ast.Name)} & (defined - {name})
        lines = [ast.unparse(s) for s in imports]
        if used:
            lines.append(f"from {module} import {', '.join(sorted(used))}")
        lines.append(ast.unparse(target))
        moved[folder + helper + ".py"] = "\n".join(lines) + "\n"
        index = tree.body.index(target)
        tree.body[index] = ast.ImportFrom(module=helper, names=[ast.alias(name=name)], level=0)
        return ast.unparse(ast.fix_missing_locations(tree)) + "\n"

    new = on_payload(text, rewrite)
    if not moved:
        return None
    return {**files, path: new, **moved}


# -- env variables -------------------------------------------------------------------------

_ENV_READ = re.compile(r"""(?:environ\.get|getenv|environ\.setdefault|environ\[)\s*\(?\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")


def env_names(texts: list[str]) -> set[str]:
    """The environment variables the code reads (``os.environ.get("X")``, ``os.getenv("X")``, ``os.environ["X"]``)."""
    names: set[str] = set()
    for text in texts:
        names.update(_ENV_READ.findall(text))
    return names


def rename_env(files: dict[str, str]) -> dict[str, str]:
    """Every env variable the Python files read renamed (``E0_``, ``E1_``, …) in every text file.

    Names of common system variables (``PATH``, ``HOME``, the distributed launcher's ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK`` …) are kept: the launcher sets them, not the submission.
    """
    py = [text for rel, text in files.items() if rel.endswith(".py")]
    plain = [unwrap(t) or t for t in py]
    keep = {"PATH", "HOME", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
            "CUDA_VISIBLE_DEVICES", "PYTHONPATH", "USER", "TMPDIR"}
    names = sorted(n for n in env_names(plain) if n not in keep and not n.startswith(("TORCH", "CUDA", "NCCL", "OMP")))
    if not names:
        return dict(files)
    mapping = {n: f"E{i}_{len(n)}" for i, n in enumerate(names)}
    pattern = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")(?![A-Za-z0-9_])")

    def sub(text: str) -> str:
        return pattern.sub(lambda m: mapping[m.group(1)], text)

    def in_strings(code: str) -> str:
        """``code`` with the names replaced inside its string literals only, formatting kept."""
        starts = [0]
        for line in code.splitlines(keepends=True):
            starts.append(starts[-1] + len(line))
        spans = [
            (starts[tok.start[0] - 1] + tok.start[1], starts[tok.end[0] - 1] + tok.end[1])
            for tok in tokenize.generate_tokens(io.StringIO(code).readline)
            if tok.type == tokenize.STRING
        ]
        for begin, end in reversed(spans):
            code = code[:begin] + sub(code[begin:end]) + code[end:]
        return code

    result = {}
    for rel, text in files.items():
        if rel.endswith(".py"):
            try:
                result[rel] = on_payload(text, in_strings)
            except (SyntaxError, tokenize.TokenError, ValueError):
                result[rel] = text  # a file that does not parse is left as it is
        else:
            result[rel] = sub(text)
    return result


# -- configuration attributes ----------------------------------------------------------------


def _config_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """Module-level classes that hold settings: no base class (or ``object``), three or more
    class-level ``name = value`` assignments (a ``Hyperparameters`` class, whatever its name)."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if any(not (isinstance(b, ast.Name) and b.id == "object") for b in node.bases):
            continue
        assigned = [s for s in node.body if isinstance(s, (ast.Assign, ast.AnnAssign))]
        if len(assigned) >= 3:
            found.append(node)
    return found


def _module_aliases(tree: ast.Module) -> set[str]:
    """Names bound to imported modules (``np``, ``torch``, ``os``): their attributes are a library's."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names)
    return names


class _Settings(ast.NodeTransformer):
    def __init__(self, mapping: dict[str, str], classes: set[str], modules: set[str]) -> None:
        self.mapping, self.classes, self.modules = mapping, classes, modules

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        if node.name in self.classes:  # names read and stored in the class body are its settings
            for stmt in node.body:
                for sub in ast.walk(stmt):
                    if isinstance(sub, ast.Name) and sub.id in self.mapping:
                        sub.id = self.mapping[sub.id]
        return self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if node.attr in self.mapping and not (isinstance(node.value, ast.Name) and node.value.id in self.modules):
            node.attr = self.mapping[node.attr]
        return node


def rename_settings(files: dict[str, str]) -> dict[str, str]:
    """Every class-level setting of the submission's configuration classes renamed (``S0_``,
    ``S1_``, …) where it is defined and wherever an attribute of that name is read or set
    (attributes of imported modules excepted), in every Python file and in the logs (the
    hyperparameter dumps the script prints)."""
    py = {rel: text for rel, text in files.items() if rel.endswith(".py")}
    names: set[str] = set()
    classes: set[str] = set()
    for text in py.values():
        try:
            tree = ast.parse(unwrap(text) or text)
        except SyntaxError:
            continue
        for cls in _config_classes(tree):
            classes.add(cls.name)
            for stmt in cls.body:
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                names.update(t.id for t in targets if isinstance(t, ast.Name) and not t.id.startswith("__"))
    if not names:
        return dict(files)
    mapping = {n: f"S{i}_{len(n)}" for i, n in enumerate(sorted(names))}

    def apply(text: str) -> str:
        tree = ast.parse(text)
        _Settings(mapping, classes, _module_aliases(tree)).visit(tree)
        return ast.unparse(tree) + "\n"

    pattern = re.compile(r"(?<![A-Za-z0-9_.])(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
                         + r")(?=\s*[:=])")
    result = {}
    for rel, text in files.items():
        if rel.endswith(".py"):
            try:
                result[rel] = on_payload(text, apply)
            except (SyntaxError, ValueError, RecursionError):
                result[rel] = text
        elif rel.endswith((".log", ".txt")):
            result[rel] = pattern.sub(lambda m: mapping[m.group(1)], text)
        else:
            result[rel] = text
    return result

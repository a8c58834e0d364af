"""One cheap traversal of a source that every static rule queries: the shared index.

A libcst visitor visits every node of a module, whitespace and tokens included, and costs
about as much as the parse itself (0.2–0.4 s for an 1,800-line script); ten rules with a
visitor each would cost seconds. This module walks the tree once, follows only the fields
that hold code (never whitespace, commas or brackets), and records what the rules ask about:

- scopes: the module and every function (methods included) with its parameters and class;
- statements in source order, each with the ``if`` guards, loops and ``with`` blocks around
  it inside its scope, and the early ``if …: return`` exits above it;
- assignments (plain, augmented, annotated, ``for`` targets, ``with … as``, walrus);
- calls (with the dotted and import-qualified name of the callee) and subscripts (read or
  written);
- every identifier referenced, for the call graph of :mod:`auditor.static.reach`.

The index is built on first use and cached per source object (:func:`index_of`).
Positions are not computed here; :meth:`SourceIndex.position` resolves the positions of all
recorded calls, subscripts and statements in one code-generation pass the first time a rule
reports something, so a clean source never pays for it.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import libcst as cst

from auditor.static.names import ImportTable, callee_name, dotted

if TYPE_CHECKING:
    from auditor.source import PythonSource
    from auditor.static.reach import Program

Loop = cst.For | cst.While | cst.CompFor

# -- the pruned walk ----------------------------------------------------------------------------

#: Field names that never hold code: whitespace, punctuation, brackets, string quotes.
_NOT_CODE = (
    "whitespace",
    "lpar",
    "rpar",
    "comma",
    "semicolon",
    "colon",
    "equal",
    "dot",
    "lbracket",
    "rbracket",
    "lbrace",
    "rbrace",
    "leading_lines",
    "trailing_whitespace",
    "header",
    "footer",
    "newline",
    "asynchronous",
    "star",
    "prefix",
    "quote",
    "string_start",
    "string_end",
    "arrow",
    "walrus",
)
_FIELDS: dict[type, tuple[str, ...]] = {}
_LITERALS = frozenset({cst.SimpleString, cst.Integer, cst.Float})


def _code_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(cls)
            if not any(part in f.name for part in _NOT_CODE) and f.name not in ("operator", "default_indent", "default_newline", "encoding", "has_trailing_newline")
        )
        _FIELDS[cls] = names
    return names


#: Whether a type is a libcst node. ``isinstance(x, cst.CSTNode)`` goes through the ABC machinery,
#: which is slow in the hottest loop of the index; the answer per type never changes.
_IS_NODE: dict[type, bool] = {}


def _is_node_type(cls: type) -> bool:
    known = _IS_NODE.get(cls)
    if known is None:
        known = _IS_NODE[cls] = issubclass(cls, cst.CSTNode)
    return known


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The child nodes of ``node`` that hold code, in source order."""
    out: list[cst.CSTNode] = []
    for name in _code_fields(type(node)):
        value = getattr(node, name)
        cls = type(value)
        if cls is tuple or cls is list:
            if value and _is_node_type(type(value[0])):  # libcst's sequences hold nodes only
                out.extend(value)
        elif _is_node_type(cls):
            out.append(value)
    return out


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """``node`` and every code node below it, depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        kids = children(current)
        kids.reverse()
        stack.extend(kids)


#: Nodes where a statement's own expressions end and another statement begins.
_STATEMENTS = (cst.BaseSmallStatement, cst.BaseCompoundStatement, cst.SimpleStatementLine)


def own_nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The nodes of a statement that no statement inside it holds, depth first (a compound
    statement's header: its test, its target and iterable; not its body). A scope's
    statements each walked this way visit every node of the scope once."""
    stack: list[cst.CSTNode] = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed([c for c in children(current) if not _is_statement_type(type(c))]))


#: Whether a node type is a statement (the answer per type never changes; see _IS_NODE).
_IS_STATEMENT: dict[type, bool] = {}


def _is_statement_type(cls: type) -> bool:
    known = _IS_STATEMENT.get(cls)
    if known is None:
        known = _IS_STATEMENT[cls] = issubclass(cls, _STATEMENTS)
    return known


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Guard:
    """A condition a statement runs under: ``test`` must evaluate to ``polarity``.

    ``kind`` is ``if`` (an ``if``/``elif``/``else`` branch), ``while``, ``range`` (the body
    of ``for … in range(n)`` runs only when n > 0; ``test`` is n) or ``exit`` (an earlier
    ``if test: return`` in the same block). ``at`` is the statement that holds the test.
    """

    test: cst.BaseExpression
    polarity: bool
    kind: str
    at: cst.CSTNode


@dataclass(eq=False)
class Stmt:
    """A statement (a small statement, or the header of a compound one) in its context."""

    node: cst.CSTNode
    scope: Scope
    order: int  # position in the scope, in source order
    guards: tuple[Guard, ...]
    loops: tuple[Loop, ...]
    withs: tuple[str, ...]  # dotted names of the context managers around it (in this scope)


@dataclass(eq=False)
class Assignment:
    """``target = value`` in some form; ``op`` is the operator of ``+=``-style assignments."""

    target: cst.BaseExpression
    value: cst.BaseExpression | None
    stmt: Stmt
    kind: str  # assign | aug | ann | for | with | walrus | comp | unpack
    op: type | None = None  # operator class of an augmented assignment (cst.AddAssign, …)
    #: For a tuple target unpacked from a value, the position of this target in the tuple.
    position: int | None = None


@dataclass(eq=False)
class CallSite:
    node: cst.Call
    name: str  # dotted name as written ("self.mixer.update", "np.add.at"); "" when not a name
    qualified: str  # through the import aliases ("numpy.add.at")
    stmt: Stmt

    @property
    def method(self) -> str:
        """The last part of the callee's name (``update`` for ``self.mixer.update``)."""
        return callee_name(self.node)

    def arg(self, index: int, keyword: str | None = None) -> cst.BaseExpression | None:
        """A positional argument by index, or a keyword argument by name."""
        positional = [a for a in self.node.args if a.keyword is None and not a.star]
        if keyword is not None:
            for a in self.node.args:
                if a.keyword is not None and a.keyword.value == keyword:
                    return a.value
        if 0 <= index < len(positional):
            return positional[index].value
        return None

    def keyword(self, name: str) -> cst.BaseExpression | None:
        for a in self.node.args:
            if a.keyword is not None and a.keyword.value == name:
                return a.value
        return None


@dataclass(eq=False)
class SubscriptSite:
    node: cst.Subscript
    stmt: Stmt
    store: bool  # written (assignment target, augmented assignment, del)


@dataclass(eq=False)
class ClassInfo:
    node: cst.ClassDef
    name: str
    bases: tuple[str, ...]
    methods: dict[str, Scope] = field(default_factory=dict)
    #: Class-level ``name = value`` assignments (Hyperparameters-style configuration).
    attributes: dict[str, cst.BaseExpression] = field(default_factory=dict)
    is_module: bool = False  # a torch.nn.Module subclass


@dataclass(eq=False)
class Scope:
    """The module, or one function or method."""

    name: str
    qualname: str
    node: cst.CSTNode
    parent: Scope | None = None
    cls: ClassInfo | None = None
    def_stmt: Stmt | None = None  # the statement that defines it, in the parent scope
    params: list[tuple[str, cst.BaseExpression | None]] = field(default_factory=list)
    decorators: tuple[str, ...] = ()
    stmts: list[Stmt] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    subscripts: list[SubscriptSite] = field(default_factory=list)
    returns: list[tuple[cst.BaseExpression, Stmt]] = field(default_factory=list)
    children: list[Scope] = field(default_factory=list)
    #: identifier -> statements that reference it (names and attribute names)
    refs: dict[str, list[Stmt]] = field(default_factory=dict)
    #: Analyses of this function that several rules ask for, computed once. They live as long
    #: as the scope: a module-level weak map would keep every scope alive instead, since what
    #: it holds refers back to its key.
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_module(self) -> bool:
        return self.parent is None

    @property
    def param_names(self) -> list[str]:
        return [p for p, _ in self.params]

    def assigned(self, name: str) -> list[Assignment]:
        """Assignments to a plain name in this scope."""
        by_name: dict[str, list[Assignment]] | None = self.cache.get("assigned")
        if by_name is None:
            by_name = {}
            for a in self.assignments:
                if type(a.target) is cst.Name:
                    by_name.setdefault(a.target.value, []).append(a)
            self.cache["assigned"] = by_name
        return list(by_name.get(name, ()))


# -- the walker -----------------------------------------------------------------------------


def _exits(block: cst.BaseSuite) -> bool:
    """Whether a block always leaves its function or loop (return, raise, continue, break)."""
    body = block.body
    if not body:
        return False
    last = body[-1]
    if isinstance(last, cst.SimpleStatementLine):
        return any(isinstance(s, (cst.Return, cst.Raise, cst.Continue, cst.Break)) for s in last.body)
    if isinstance(last, (cst.Return, cst.Raise, cst.Continue, cst.Break)):
        return True
    return False


def _block_items(block: cst.BaseSuite) -> list[cst.CSTNode]:
    return list(block.body)


def small_statements(block: cst.BaseSuite) -> list[cst.BaseSmallStatement]:
    """The simple statements directly in a block, whether it is indented (``if c:`` then
    lines) or on the header's line (``if c: a = 1; b = 2``): minified scripts use both."""
    out: list[cst.BaseSmallStatement] = []
    for item in block.body:
        if isinstance(item, cst.SimpleStatementLine):
            out.extend(item.body)
        elif isinstance(item, cst.BaseSmallStatement):
            out.append(item)
    return out


class _Builder:
    """Fills a :class:`SourceIndex` in one pass over the module."""

    def __init__(self, index: SourceIndex) -> None:
        self.index = index

    # statements -------------------------------------------------------------------------

    def block(self, items: list[cst.CSTNode], scope: Scope, guards: tuple, loops: tuple, withs: tuple) -> None:
        guards = tuple(guards)
        for item in items:
            self.statement(item, scope, guards, loops, withs)
            # ``if cond: return`` (or continue/raise) guards what follows in the block.
            if isinstance(item, cst.If) and item.orelse is None and _exits(item.body):
                guards = guards + (Guard(item.test, False, "exit", item),)

    def new_stmt(self, node: cst.CSTNode, scope: Scope, guards: tuple, loops: tuple, withs: tuple) -> Stmt:
        stmt = Stmt(node, scope, len(scope.stmts), guards, loops, withs)
        scope.stmts.append(stmt)
        self.index.stmt_of[node] = stmt
        return stmt

    def statement(self, node: cst.CSTNode, scope: Scope, guards: tuple, loops: tuple, withs: tuple) -> None:
        if isinstance(node, cst.SimpleStatementLine):
            for small in node.body:
                self.small(small, scope, guards, loops, withs)
        elif isinstance(node, cst.BaseSmallStatement):
            self.small(node, scope, guards, loops, withs)
        elif isinstance(node, cst.FunctionDef):
            self.function(node, scope, guards, loops, withs)
        elif isinstance(node, cst.ClassDef):
            self.klass(node, scope, guards, loops, withs)
        elif isinstance(node, cst.If):
            self.if_chain(node, scope, guards, loops, withs)
        elif isinstance(node, cst.For):
            stmt = self.new_stmt(node, scope, guards, loops, withs)
            self.expression(node.iter, stmt)
            self.targets(node.target, node.iter, stmt, "for")
            inner = guards
            if isinstance(node.iter, cst.Call) and dotted(node.iter.func) == "range":
                args = [a.value for a in node.iter.args if a.keyword is None]
                if len(args) == 1:
                    inner = guards + (Guard(args[0], True, "range", node),)
            self.block(_block_items(node.body), scope, inner, loops + (node,), withs)
            if node.orelse is not None:
                self.block(_block_items(node.orelse.body), scope, guards, loops, withs)
        elif isinstance(node, cst.While):
            stmt = self.new_stmt(node, scope, guards, loops, withs)
            self.expression(node.test, stmt)
            inner = guards + (Guard(node.test, True, "while", node),)
            self.block(_block_items(node.body), scope, inner, loops + (node,), withs)
            if node.orelse is not None:
                self.block(_block_items(node.orelse.body), scope, guards, loops, withs)
        elif isinstance(node, cst.With):
            stmt = self.new_stmt(node, scope, guards, loops, withs)
            names = []
            for item in node.items:
                self.expression(item.item, stmt)
                expr = item.item.func if isinstance(item.item, cst.Call) else item.item
                names.append(self.index.imports.qualify(expr) or "")
                if item.asname is not None:
                    self.targets(item.asname.name, item.item, stmt, "with")
            self.block(_block_items(node.body), scope, guards, loops, withs + tuple(names))
        elif isinstance(node, (cst.Try, cst.TryStar)):
            self.block(_block_items(node.body), scope, guards, loops, withs)
            for handler in node.handlers:
                stmt = self.new_stmt(handler, scope, guards, loops, withs)
                if handler.type is not None:
                    self.expression(handler.type, stmt)
                self.block(_block_items(handler.body), scope, guards, loops, withs)
            if node.orelse is not None:
                self.block(_block_items(node.orelse.body), scope, guards, loops, withs)
            if node.finalbody is not None:
                self.block(_block_items(node.finalbody.body), scope, guards, loops, withs)
        elif isinstance(node, cst.Match):
            stmt = self.new_stmt(node, scope, guards, loops, withs)
            self.expression(node.subject, stmt)
            for case in node.cases:
                self.block(_block_items(case.body), scope, guards, loops, withs)
        else:  # an unknown compound statement: still record its code
            stmt = self.new_stmt(node, scope, guards, loops, withs)
            for child in children(node):
                if isinstance(child, cst.BaseExpression):
                    self.expression(child, stmt)

    def if_chain(self, node: cst.If, scope: Scope, guards: tuple, loops: tuple, withs: tuple) -> None:
        stmt = self.new_stmt(node, scope, guards, loops, withs)
        self.expression(node.test, stmt)
        self.block(_block_items(node.body), scope, guards + (Guard(node.test, True, "if", node),), loops, withs)
        rest = guards + (Guard(node.test, False, "if", node),)
        orelse = node.orelse
        if isinstance(orelse, cst.If):
            self.if_chain(orelse, scope, rest, loops, withs)
        elif orelse is not None:
            self.block(_block_items(orelse.body), scope, rest, loops, withs)

    def small(self, node: cst.BaseSmallStatement, scope: Scope, guards: tuple, loops: tuple, withs: tuple) -> None:
        stmt = self.new_stmt(node, scope, guards, loops, withs)
        if isinstance(node, cst.Assign):
            self.expression(node.value, stmt)
            for target in node.targets:
                self.targets(target.target, node.value, stmt, "assign")
        elif isinstance(node, cst.AugAssign):
            self.expression(node.value, stmt)
            self.store(node.target, stmt)
            scope.assignments.append(Assignment(node.target, node.value, stmt, "aug", type(node.operator)))
        elif isinstance(node, cst.AnnAssign):
            if node.value is not None:
                self.expression(node.value, stmt)
            self.targets(node.target, node.value, stmt, "ann")
        elif isinstance(node, cst.Return):
            if node.value is not None:
                self.expression(node.value, stmt)
                scope.returns.append((node.value, stmt))
        elif isinstance(node, cst.Del):
            self.store(node.target, stmt)
        elif isinstance(node, cst.Import):
            self.index.imports.visit_Import(node)
        elif isinstance(node, cst.ImportFrom):
            self.index.imports.visit_ImportFrom(node)
        else:
            for child in children(node):
                if isinstance(child, cst.BaseExpression):
                    self.expression(child, stmt)

    def targets(self, target: cst.BaseExpression, value: cst.BaseExpression | None, stmt: Stmt, kind: str) -> None:
        scope = stmt.scope
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = [e.value for e in target.elements]
            for position, element in enumerate(elements):
                if isinstance(element, (cst.Tuple, cst.List)):
                    self.targets(element, None, stmt, "unpack")
                    continue
                self.store(element, stmt)
                scope.assignments.append(Assignment(element, value, stmt, kind, None, position))
            return
        self.store(target, stmt)
        scope.assignments.append(Assignment(target, value, stmt, kind))

    def store(self, target: cst.BaseExpression, stmt: Stmt) -> None:
        """Record a written target; its subexpressions (indices, bases) are reads."""
        if isinstance(target, cst.Subscript):
            stmt.scope.subscripts.append(SubscriptSite(target, stmt, True))
            self.expression(target.value, stmt)
            for element in target.slice:
                self.expression(element.slice, stmt)
        elif isinstance(target, cst.Attribute):
            self.expression(target.value, stmt)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.store(element.value, stmt)
        elif isinstance(target, cst.StarredElement):
            self.store(target.value, stmt)

    # expressions ------------------------------------------------------------------------

    def expression(self, node: cst.CSTNode, stmt: Stmt) -> None:
        scope = stmt.scope
        refs = scope.refs
        imports = self.index.imports
        stack = [node]
        # Dispatch on the exact type (these node classes have no subclasses): isinstance against
        # libcst's ABC-based classes costs several times more, and this loop sees every node.
        while stack:
            current = stack.pop()
            cls = type(current)
            if cls is cst.Name:
                refs.setdefault(current.value, []).append(stmt)
                continue
            if cls is cst.Attribute:
                refs.setdefault(current.attr.value, []).append(stmt)
                stack.append(current.value)
                continue
            if cls is cst.Call:
                name = dotted(current.func) or ""
                qualified = imports.qualify(current.func) or name if name else ""
                scope.calls.append(CallSite(current, name, qualified, stmt))
            elif cls is cst.Subscript:
                scope.subscripts.append(SubscriptSite(current, stmt, False))
            elif cls is cst.NamedExpr:
                scope.assignments.append(Assignment(current.target, current.value, stmt, "walrus"))
            elif cls is cst.CompFor:
                scope.assignments.append(Assignment(current.target, current.iter, stmt, "comp"))
            elif cls is cst.Lambda:
                stack.append(current.body)
                continue
            elif cls in _LITERALS:
                continue
            stack.extend(children(current))

    # definitions ------------------------------------------------------------------------

    def function(self, node: cst.FunctionDef, parent: Scope, guards: tuple, loops: tuple, withs: tuple) -> None:
        def_stmt = self.new_stmt(node, parent, guards, loops, withs)
        decorators = []
        for decorator in node.decorators:
            self.expression(decorator.decorator, def_stmt)
            expr = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            decorators.append(self.index.imports.qualify(expr) or "")
        params: list[tuple[str, cst.BaseExpression | None]] = []
        p = node.params
        for param in (*p.posonly_params, *p.params, *p.kwonly_params):
            params.append((param.name.value, param.default))
            if param.default is not None:
                self.expression(param.default, def_stmt)
        for extra in (p.star_arg, p.star_kwarg):
            if isinstance(extra, cst.Param):
                params.append((extra.name.value, None))
        owner = self._class_stack[-1] if self._class_stack and self._class_stack[-1][1] is parent else None
        cls = owner[0] if owner else None
        name = node.name.value
        prefix = f"{cls.name}." if cls else (f"{parent.qualname}." if not parent.is_module else "")
        scope = Scope(
            name=name,
            qualname=prefix + name,
            node=node,
            parent=parent,
            cls=cls,
            def_stmt=def_stmt,
            params=params,
            decorators=tuple(decorators),
        )
        if cls is not None:
            cls.methods.setdefault(name, scope)
        parent.children.append(scope)
        self.index.functions.append(scope)
        self.index.by_name.setdefault(name, []).append(scope)
        self.index.scope_of[node] = scope
        self.block(_block_items(node.body), scope, (), (), ())

    _class_stack: list[tuple[ClassInfo, Scope]]

    def klass(self, node: cst.ClassDef, parent: Scope, guards: tuple, loops: tuple, withs: tuple) -> None:
        def_stmt = self.new_stmt(node, parent, guards, loops, withs)
        bases = []
        for arg in node.bases:
            self.expression(arg.value, def_stmt)
            bases.append(self.index.imports.qualify(arg.value) or "")
        info = ClassInfo(node, node.name.value, tuple(bases))
        self.index.classes.setdefault(info.name, info)
        self._class_stack.append((info, parent))
        # Class bodies run in the enclosing scope at definition time; their statements are
        # recorded there, with the class attributes kept on the class.
        for small in small_statements(node.body):
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                info.attributes[small.targets[0].target.value] = small.value
            elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and small.value is not None:
                info.attributes[small.target.value] = small.value
        for item in _block_items(node.body):
            self.statement(item, parent, guards, loops, withs)
        self._class_stack.pop()


@dataclass(eq=False)
class SourceIndex:
    """What the static rules know about one source, computed in one walk."""

    source: PythonSource
    module_scope: Scope
    imports: ImportTable = field(default_factory=ImportTable)
    functions: list[Scope] = field(default_factory=list)
    by_name: dict[str, list[Scope]] = field(default_factory=dict)
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    scope_of: dict[cst.CSTNode, Scope] = field(default_factory=dict)
    stmt_of: dict[cst.CSTNode, Stmt] = field(default_factory=dict)
    #: The program (this source with the submission's other sources) that decides which of
    #: its code runs; set by :meth:`auditor.static.reach.Program.attach`.
    program: Program | None = None
    _cache: dict[str, object] = field(default_factory=dict)

    @property
    def scopes(self) -> list[Scope]:
        return [self.module_scope, *self.functions]

    def cached(self, key: str, compute):  # a small memo for derived analyses
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # positions --------------------------------------------------------------------------

    def statement_positions(self) -> dict[cst.CSTNode, tuple[int, int]] | None:
        """(line, column) of every statement, from the standard library's AST of the same text.

        ``ast`` records line numbers while it parses (about 0.05 s for an 1,800-line script),
        where libcst needs a code-generation pass over the whole module; statements of both
        trees come in the same order. ``None`` when the two trees do not line up.
        """
        if "stmt_positions" not in self._cache:
            tree = self.source.ast_tree
            positions: dict[cst.CSTNode, tuple[int, int]] | None = None
            if tree is not None and self.source.module is not None:
                positions = {}
                try:
                    _pair_block(list(self.source.module.body), list(tree.body), positions)
                except _Mismatch:
                    positions = None
            self._cache["stmt_positions"] = positions
        return self._cache["stmt_positions"]  # type: ignore[return-value]

    def _owner(self, node: cst.CSTNode) -> Stmt | None:
        owners = self._cache.get("owners")
        if owners is None:
            owners = {}
            for scope in self.scopes:
                for call in scope.calls:
                    owners[call.node] = call.stmt
                for sub in scope.subscripts:
                    owners[sub.node] = sub.stmt
                for assignment in scope.assignments:
                    if assignment.value is not None:
                        owners.setdefault(assignment.value, assignment.stmt)
                    owners.setdefault(assignment.target, assignment.stmt)
                for value, stmt in scope.returns:
                    owners[value] = stmt
            self._cache["owners"] = owners
        return owners.get(node)  # type: ignore[union-attr]

    def stmt_position(self, stmt: Stmt) -> tuple[int, int]:
        """(line, column) of a statement (1-based line, 0-based column)."""
        positions = self.statement_positions()
        if positions is not None and stmt.node in positions:
            return positions[stmt.node]
        self._resolve_all()
        return self.source.position(stmt.node)

    def _resolve_all(self) -> None:
        if self._cache.get("positions"):
            return
        nodes: list[cst.CSTNode] = []
        for scope in self.scopes:
            nodes.extend(s.node for s in scope.stmts)
            nodes.extend(c.node for c in scope.calls)
            nodes.extend(s.node for s in scope.subscripts)
            nodes.extend(a.value for a in scope.assignments if a.value is not None)
        self.source.resolve_positions(nodes)
        self._cache["positions"] = True

    def line(self, node: cst.CSTNode) -> int:
        """The line of a node: its statement's first line (multi-line statements report where
        they start); a node the index did not record costs a code-generation pass."""
        positions = self.statement_positions()
        if positions is not None:
            if node in positions:
                return positions[node][0]
            owner = self.stmt_of.get(node) or self._owner(node)
            if owner is not None and owner.node in positions:
                return positions[owner.node][0]
        self._resolve_all()
        return self.source.position(node)[0]

    def code(self, node: cst.CSTNode, limit: int = 160) -> str:
        """The code of a node on one line, shortened."""
        text = " ".join(self.source.code_for(node).split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    # lookups ----------------------------------------------------------------------------

    def scope_named(self, qualname: str) -> Scope | None:
        for scope in self.functions:
            if scope.qualname == qualname:
                return scope
        return None

    def class_is_module(self, info: ClassInfo, _seen: set[str] | None = None) -> bool:
        """Whether a class derives from torch.nn.Module (directly or through classes of this file)."""
        seen = _seen or set()
        if info.name in seen:
            return False
        seen.add(info.name)
        for base in info.bases:
            if base.endswith("nn.Module") or base in ("Module", "torch.nn.Module"):
                return True
            parent = self.classes.get(base.rsplit(".", 1)[-1])
            if parent is not None and self.class_is_module(parent, seen):
                return True
        return False


class _Mismatch(Exception):
    """The libcst and ast statement trees do not line up."""


_COMPOUND = {
    cst.FunctionDef: (ast.FunctionDef, ast.AsyncFunctionDef),
    cst.ClassDef: (ast.ClassDef,),
    cst.If: (ast.If,),
    cst.For: (ast.For, ast.AsyncFor),
    cst.While: (ast.While,),
    cst.With: (ast.With, ast.AsyncWith),
    cst.Try: (ast.Try,),
    cst.Match: (ast.Match,),
}
if hasattr(cst, "TryStar") and hasattr(ast, "TryStar"):
    _COMPOUND[cst.TryStar] = (ast.TryStar,)


def _suite(body: cst.BaseSuite) -> list[cst.CSTNode]:
    return list(body.body)


def _pair_block(items: list[cst.CSTNode], nodes: list[ast.stmt], out: dict) -> None:
    i = 0
    for item in items:
        if isinstance(item, (cst.SimpleStatementLine, cst.BaseSmallStatement)):
            smalls = item.body if isinstance(item, cst.SimpleStatementLine) else [item]
            for small in smalls:
                if i >= len(nodes):
                    raise _Mismatch
                out[small] = (nodes[i].lineno, nodes[i].col_offset)
                i += 1
            if isinstance(item, cst.SimpleStatementLine) and smalls:
                out[item] = out[smalls[0]]
            continue
        if i >= len(nodes) or not isinstance(nodes[i], _COMPOUND.get(type(item), ())):
            raise _Mismatch
        _pair_compound(item, nodes[i], out)
        i += 1
    if i != len(nodes):
        raise _Mismatch


def _pair_compound(item: cst.CSTNode, node: ast.stmt, out: dict) -> None:
    out[item] = (node.lineno, node.col_offset)
    if isinstance(item, (cst.FunctionDef, cst.ClassDef, cst.With)):
        _pair_block(_suite(item.body), node.body, out)
    elif isinstance(item, cst.If):
        _pair_block(_suite(item.body), node.body, out)
        if isinstance(item.orelse, cst.If):
            if len(node.orelse) != 1 or not isinstance(node.orelse[0], ast.If):
                raise _Mismatch
            _pair_compound(item.orelse, node.orelse[0], out)
        elif item.orelse is not None:
            _pair_block(_suite(item.orelse.body), node.orelse, out)
    elif isinstance(item, (cst.For, cst.While)):
        _pair_block(_suite(item.body), node.body, out)
        if item.orelse is not None:
            _pair_block(_suite(item.orelse.body), node.orelse, out)
    elif isinstance(item, cst.Match):
        if len(item.cases) != len(node.cases):
            raise _Mismatch
        for case, acase in zip(item.cases, node.cases):
            _pair_block(_suite(case.body), acase.body, out)
    else:  # Try / TryStar
        _pair_block(_suite(item.body), node.body, out)
        if len(item.handlers) != len(node.handlers):
            raise _Mismatch
        for handler, ahandler in zip(item.handlers, node.handlers):
            out[handler] = (ahandler.lineno, ahandler.col_offset)
            _pair_block(_suite(handler.body), ahandler.body, out)
        if item.orelse is not None:
            _pair_block(_suite(item.orelse.body), node.orelse, out)
        if item.finalbody is not None:
            _pair_block(_suite(item.finalbody.body), node.finalbody, out)


def build_index(source: PythonSource) -> SourceIndex:
    """Walk a parsed source once and return its index."""
    module = source.module
    assert module is not None, "the engine only passes sources that parse"
    scope = Scope(name="<module>", qualname="<module>", node=module)
    index = SourceIndex(source=source, module_scope=scope)
    builder = _Builder(index)
    builder._class_stack = []
    builder.block(list(module.body), scope, (), (), ())
    for info in index.classes.values():
        info.is_module = index.class_is_module(info)
    return index


def index_of(source: PythonSource) -> SourceIndex:
    """The index of a source, built once however many rules ask for it."""
    return source.cached("static:index", lambda: build_index(source))

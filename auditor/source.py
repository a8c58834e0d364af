"""A Python source of a submission: a script, a helper module, or a decoded payload.

Parsing is lazy and done once; a source that does not parse (a syntax error, Python 2, a
file too large to analyse) carries the reason instead of a tree, and the engine turns that
into a PG9xx finding.
"""

from __future__ import annotations

import ast
import enum
import gc
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import libcst as cst

from auditor.findings import Location, Origin
from auditor.positions import node_starts

if TYPE_CHECKING:
    from auditor.bundle import Bundle

T = TypeVar("T")

#: How many recently parsed trees are kept for reuse, counted apart by kind (libcst tree,
#: stdlib tree, the stdlib tree's node list): the three kinds of two texts, a script and a helper.
RECENT_TREES = 6
_RECENT_TREES: OrderedDict[tuple[str, bytes], Any] = OrderedDict()

#: Larger Python files are not parsed: no real submission comes near (the largest is ~160 KB).
MAX_PARSE_BYTES = 4_000_000

#: libcst's native parser recurses on the C stack with no limit of its own: a few thousand nested
#: brackets or operators overflow a thread's usual 8 MB and kill the process (SIGSEGV). So it runs
#: on a thread with this much stack (reserved, not used: pages are touched only as deep as the
#: parse goes), and only on text whose depth Python's own parser bounds (see ``_too_deep``).
PARSER_STACK_BYTES = 256 * 1024 * 1024
#: ``a and b and …`` is one flat node to Python's parser but one level of libcst's recursion per
#: operator (~1.2 KB of stack each; an 8 MB stack overflows near 6,800): longer chains are refused.
MAX_BOOL_CHAIN = 5_000
_STACK_SIZE_LOCK = threading.Lock()
_BOOL_WORDS = re.compile(r"\b(?:and|or)\b")
#: Python's own refusals of nesting (its tokenizer stops at 200 brackets, 100 indents).
_TOO_DEEP = ("too many nested parentheses", "too many levels of indentation")

_PY2_HINTS = re.compile(r"^\s*(print\s+[^\s(=]|exec\s+[\"']|raise\s+\w+\s*,)|\bur[\"']|\b0[0-7]+L?\b|<>", re.M)


class Role(str, enum.Enum):
    """What a Python source is to its submission."""

    MAIN = "main"  # the script that is run (train_gpt.py)
    MODULE = "module"  # imported, exec'd or loaded by the main script
    AUXILIARY = "auxiliary"  # in the folder but never referenced (a data-prep script, say)

    def __str__(self) -> str:
        return self.value


@dataclass(eq=False)
class PythonSource:
    """One Python text to analyse, with lazy libcst parsing and cheap positions."""

    path: str  # display path of the file on disk (the wrapper's, for a decoded payload)
    text: str
    role: Role = Role.MAIN
    origin: Origin | None = None  # set when the text is the decoded payload of a wrapper
    bundle: Bundle | None = field(default=None, repr=False)
    #: Lines of ``exec`` calls whose argument was decoded statically (see auditor.unpack).
    decoded_exec_lines: set[int] = field(default_factory=set)
    _positions: dict[cst.CSTNode, tuple[int, int]] = field(default_factory=dict, repr=False)
    #: What analyses derived from this source (its index, its flow …), kept as long as the source is.
    _derived: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_decoded(self) -> bool:
        return self.origin is not None

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    @property
    def module(self) -> cst.Module | None:
        """The libcst tree, or ``None`` when the source does not parse."""
        return self._parsed[0]

    @property
    def parse_error(self) -> str | None:
        """Why the source cannot be analysed, or ``None`` when it parses."""
        return self._parsed[1]

    @cached_property
    def _parsed(self) -> tuple[cst.Module | None, str | None]:
        return self._shared("cst", self._parse_cst)

    def _parse_cst(self) -> tuple[cst.Module | None, str | None]:
        size = len(self.text.encode("utf-8", "surrogateescape"))
        if size > MAX_PARSE_BYTES:
            return None, f"{size:,} bytes is larger than the {MAX_PARSE_BYTES:,}-byte parse limit"
        too_deep = self._too_deep()
        if too_deep:
            return None, too_deep
        try:
            with nodes_unchecked(), _collector_paused():
                return _on_a_deep_stack(cst.parse_module, self.text), None
        except cst.ParserSyntaxError as exc:
            return None, _describe_syntax_error(self.text, exc)
        except (RecursionError, MemoryError, ValueError, cst.CSTValidationError) as exc:
            return None, f"the parser gave up: {type(exc).__name__}"

    def _too_deep(self) -> str | None:
        """Why libcst must not see this text (it would overflow the stack), or ``None``.

        Python's parser bounds the nesting it accepts (200 brackets, about 3,000 levels of
        expressions): what it accepts, or rejects for an ordinary syntax error further on, is
        within libcst's reach on :data:`PARSER_STACK_BYTES`; ``and``/``or`` chains are counted apart.
        """
        tree = self.ast_tree
        error: SyntaxError | None = None
        if tree is None:
            try:
                ast.parse(self.text)
            except (RecursionError, MemoryError) as exc:
                return f"nested too deeply for Python's parser ({type(exc).__name__})"
            except SyntaxError as exc:
                if exc.msg in _TOO_DEEP:
                    return f"{exc.msg} at line {exc.lineno} (Python's parser stops there)"
                error = exc
            except ValueError:  # NUL bytes: libcst reports them
                pass
        words = len(_BOOL_WORDS.findall(self.text))  # at least the longest chain
        if words <= MAX_BOOL_CHAIN:
            return None
        if tree is not None:
            chain = _longest_bool_chain(tree)
            if chain <= MAX_BOOL_CHAIN:
                return None
            return f"a chain of {chain:,} and/or operators, longer than the {MAX_BOOL_CHAIN:,} the parser takes"
        if error is not None:  # it does not parse anyway: Python's reason, without libcst's
            return f"{error.msg} at line {error.lineno}, column {error.offset}"
        return f"{words:,} and/or operators, more than the {MAX_BOOL_CHAIN:,} the parser takes in one chain"

    @cached_property
    def ast_tree(self) -> ast.Module | None:
        """The stdlib AST, for quick structural scans (imports, literals); ``None`` if it fails.
        Shared between sources of the same text: treat it as read-only."""
        return self._shared("ast", self._parse_ast)

    @cached_property
    def ast_nodes(self) -> list[ast.AST]:
        """Every node of :attr:`ast_tree` in ``ast.walk``'s order (empty when it does not parse);
        shared like the tree, read-only."""
        tree = self.ast_tree
        return [] if tree is None else self._shared("ast nodes", lambda: ast_nodes(tree))

    def _parse_ast(self) -> ast.Module | None:
        try:
            return ast.parse(self.text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    def _shared(self, kind: str, parse: Callable[[], T]) -> T:
        """``parse()``, or the tree of the same text parsed for another submission just before.

        A triage audits folders that ship the same script one after another (a record's script
        copied unchanged with new logs): their trees are parsed once. Trees are immutable (libcst)
        or only read (ast), and every analysis keeps its own maps per source. Two sources of one
        submission never share a tree, so that the nodes of one program stay distinct.
        """
        if self._share_key is None:
            return parse()
        key = (kind, self._share_key)
        if key in _RECENT_TREES:
            _RECENT_TREES.move_to_end(key)
            return _RECENT_TREES[key]
        tree = _RECENT_TREES[key] = parse()
        while len(_RECENT_TREES) > RECENT_TREES:
            _RECENT_TREES.popitem(last=False)
        return tree

    @cached_property
    def _share_key(self) -> bytes | None:
        """The digest under which this source's trees are shared; ``None`` when another source
        of its submission has the same text (see :meth:`_shared`)."""
        bundle = self.bundle
        if bundle is not None and any(s is not self and s.text == self.text for s in bundle.sources):
            return None
        return hashlib.blake2b(self.text.encode("utf-8", "surrogateescape"), digest_size=16).digest()

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """``build()`` once per source. The result lives as long as the source does: a module-level
        weak map would keep every source alive instead, since what it holds refers back to it."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    # -- positions ---------------------------------------------------------------------------

    def resolve_positions(self, nodes: Iterable[cst.CSTNode]) -> None:
        """Compute positions of many nodes in one pass (call before :meth:`location` in loops)."""
        missing = [n for n in nodes if n not in self._positions]
        if missing and self.module is not None:
            self._positions.update(node_starts(self.module, missing))

    def position(self, node: cst.CSTNode) -> tuple[int, int]:
        """(line, column) of a node: 1-based line, 0-based column."""
        if node not in self._positions:
            self.resolve_positions([node])
        return self._positions.get(node, (1, 0))

    def location(self, node: cst.CSTNode | None = None, *, line: int | None = None) -> Location:
        """A finding location for a node (or a line) of this source."""
        column: int | None = None
        if node is not None:
            line, column = self.position(node)
        return Location(path=self.path, line=line, column=column, decoded_from=self.origin)

    def snippet(self, node: cst.CSTNode | None = None, *, line: int | None = None, max_chars: int = 240) -> str:
        """The source line of a node (or a line number), stripped and shortened."""
        if node is not None:
            line = self.position(node)[0]
        if line is None or not 1 <= line <= len(self.lines):
            return ""
        text = self.lines[line - 1].strip()
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    def code_for(self, node: cst.CSTNode) -> str:
        """The code of a node as written."""
        assert self.module is not None
        return self.module.code_for_node(node)

    def describe(self) -> str:
        """How the source is named in messages."""
        if self.origin is not None:
            return f"{self.path} (decoded from line {self.origin.line})"
        return self.path

    def evidence_base(self) -> dict[str, Any]:
        return {"decoded": True, "wrapper_line": self.origin.line} if self.origin else {}


_DETACHED = cst.Module(body=[])


def code_of(node: cst.CSTNode) -> str:
    """The code of a node as written, without its source (default whitespace conventions)."""
    return _DETACHED.code_for_node(node)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the parser builds a tree.

    A parse allocates hundreds of thousands of nodes that all survive it; each allocation
    threshold crossed starts a collection that finds nothing to free, and in a process that
    already holds other trees the oldest generation is traversed again and again. Measured on
    a triage's folders, that was over a quarter of the parse time. The tree has no cycles to
    collect, and the collector is back on (as it was) once the parse returns.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def nodes_unchecked() -> Iterator[None]:
    """Skip libcst's per-node validation while its parser builds a tree.

    Every libcst node checks itself when constructed (``CSTNode.__post_init__`` calls
    ``_validate``: whitespace regexes, balanced parentheses, …). Nodes the parser builds from
    text it accepted pass by construction, and the checks are about a tenth of the parse time,
    which is the largest cost of a triage. libcst's own comment on the hook says as much ("avoid
    validating the tree when parsing a file"). Some checks also reject spellings Python
    accepts (``sum((a if b else c)for x in y)`` in minified code). Nodes built outside this
    context are still checked; a transform run inside it must compile its result.
    """
    base = cst.CSTNode
    checked = base.__dict__.get("__post_init__")
    if checked is None:  # another libcst layout: keep its behaviour
        yield
        return
    base.__post_init__ = _unchecked  # type: ignore[method-assign]
    try:
        yield
    finally:
        base.__post_init__ = checked  # type: ignore[method-assign]


def ast_nodes(tree: ast.AST) -> list[ast.AST]:
    """``list(ast.walk(tree))`` (the same nodes, breadth first, in the same order), several
    times faster: the fields are read directly instead of through ``iter_child_nodes``'
    generators, which dominated reading a triage's folders."""
    out: list[ast.AST] = [tree]
    node_type = ast.AST
    i = 0
    while i < len(out):
        node = out[i]
        i += 1
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                out.extend(item for item in value if isinstance(item, node_type))
            elif isinstance(value, node_type):
                out.append(value)
    return out


def _longest_bool_chain(tree: ast.AST) -> int:
    """The most ``and``/``or`` operators on one path of nested boolean operations (no recursion)."""
    longest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, chain = stack.pop()
        if isinstance(node, ast.BoolOp):
            chain += len(node.values) - 1
            longest = max(longest, chain)
        stack.extend((child, chain) for child in ast.iter_child_nodes(node))
    return longest


def _on_a_deep_stack(parse: Callable[[str], T], text: str) -> T:
    """``parse(text)`` on a thread with :data:`PARSER_STACK_BYTES` of stack (here when none starts)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, parse(text)))
        except BaseException as exc:  # handed to the caller as it is
            outcome.append((False, exc))

    with _STACK_SIZE_LOCK:  # the size is process-wide: set and put back by one thread at a time
        previous = threading.stack_size()
        try:
            threading.stack_size(PARSER_STACK_BYTES)
            worker = threading.Thread(target=run, name="pgolf-audit-parse", daemon=True)
            worker.start()
        except (RuntimeError, ValueError, MemoryError):  # no thread of that size here
            worker = None
        finally:
            threading.stack_size(previous)
    if worker is None:
        return parse(text)
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _unchecked(self: cst.CSTNode) -> None:
    return None


def _describe_syntax_error(text: str, exc: cst.ParserSyntaxError) -> str:
    where = f"line {exc.raw_line}, column {exc.raw_column + 1}"
    reason = exc.message.splitlines()[0] if exc.message else "syntax error"
    if _PY2_HINTS.search(text):
        try:
            ast.parse(text)
        except SyntaxError:
            return f"looks like Python 2 source, which Python 3 cannot parse ({reason} at {where})"
    return f"{reason} at {where}"

"""Run Python 3.12 f-strings on an older interpreter: rewrite them, line for line, as ``str.format``.

Python 3.12 (PEP 701) lets an f-string reuse its own quote inside a replacement field
(``f"{", ".join(names)}"``), put backslashes and comments there and nest f-strings freely. A
submission written that way does not compile on 3.11, so the runtime harness could not run it
unless ``PGOLF_AUDIT_RUNTIME_PYTHON`` named a 3.12 interpreter. libcst parses the new syntax,
so the harness rewrites each f-string that the running interpreter rejects into the
``str.format`` call that computes the same string::

    f"  {cat}: {", ".join(sorted(names))}"   ->   "  {}: {}".format((cat), (", ".join(sorted(names))))
    f"{x = !r:>{width}}"                     ->   "x = {!r:>{}}".format((x), (width))

The literal text keeps its prefix, quotes and escapes (``{{``/``}}`` mean the same to
``str.format``), each replacement field keeps its conversion and format spec, and the
expressions, parenthesised, become the arguments in the order Python evaluates them. No line
is added or removed, so line numbers in tracebacks and probe results still point at the
submission's own lines. F-strings the interpreter accepts are left exactly as written, and the
audited files are never touched: the rewrite is of the copy the sandbox runs.
"""

from __future__ import annotations

import libcst as cst

from auditor.source import code_of, nodes_unchecked

def _compiles(expression: str) -> bool:
    try:
        compile(expression, "<f-string>", "eval")
    except SyntaxError:
        return False
    except (ValueError, RecursionError, MemoryError):
        return True  # not a syntax problem: leave it to the run
    return True


def _template(parts: tuple[cst.BaseFormattedStringContent, ...], args: list[str]) -> str:
    """The ``str.format`` template of f-string parts; appends the argument expressions to ``args``."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, cst.FormattedStringText):
            out.append(part.value)  # escapes and {{ }} mean the same in a str.format template
            continue
        assert isinstance(part, cst.FormattedStringExpression)
        expression = code_of(part.expression)
        field = "{"
        if part.equal is not None:
            # "=" prints the expression as written, then its repr unless a conversion or spec is given
            shown = (code_of(part.whitespace_before_expression) + expression + code_of(part.whitespace_after_expression)
                     + code_of(part.equal.whitespace_before) + "=" + code_of(part.equal.whitespace_after))
            out.append(shown.replace("{", "{{").replace("}", "}}"))
            if part.conversion is None and part.format_spec is None:
                field += "!r"
        if part.conversion is not None:
            field += "!" + part.conversion
        args.append(f"({expression})")
        if part.format_spec is not None:
            field += ":" + _template(tuple(part.format_spec), args)
        out.append(field + "}")
    return "".join(out)


def format_call(node: cst.FormattedString) -> cst.BaseExpression:
    """The ``"template".format(args)`` expression equal to an f-string."""
    args: list[str] = []
    template = _template(tuple(node.parts), args)
    prefix = node.start[: len(node.start) - len(node.quote)].replace("f", "").replace("F", "")
    literal = f"{prefix}{node.quote}{template}{node.quote}"
    call = cst.parse_expression(f"{literal}.format({', '.join(args)})")
    return call.with_changes(lpar=node.lpar, rpar=node.rpar)


class _Backport(cst.CSTTransformer):
    def __init__(self) -> None:
        super().__init__()
        self.rewritten = 0

    def leave_FormattedString(  # libcst's visitor naming
        self, original_node: cst.FormattedString, updated_node: cst.FormattedString
    ) -> cst.BaseExpression:
        # inner f-strings are rewritten first; the outer one may compile once they are
        if _compiles(code_of(updated_node.with_changes(lpar=[], rpar=[]))):
            return updated_node
        self.rewritten += 1
        return format_call(updated_node)

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        return False  # its pieces are rewritten together in leave_ConcatenatedString

    def leave_ConcatenatedString(
        self, original_node: cst.ConcatenatedString, updated_node: cst.ConcatenatedString
    ) -> cst.BaseExpression:
        # "a" f"{...}" juxtaposes literals; once a piece is a call, the pieces are added instead,
        # each "+" taking the whitespace (line breaks included) that stood between two pieces
        pieces, gaps = _pieces(updated_node)
        rewritten = [piece.visit(self) for piece in pieces]
        if all(new is old for new, old in zip(rewritten, pieces)):
            return updated_node
        expression = rewritten[0]
        for gap, piece in zip(gaps, rewritten[1:]):
            operator = cst.Add(whitespace_before=gap, whitespace_after=cst.SimpleWhitespace(" "))
            expression = cst.BinaryOperation(left=expression, operator=operator, right=piece)
        return expression.with_changes(lpar=updated_node.lpar or [cst.LeftParen()],
                                       rpar=updated_node.rpar or [cst.RightParen()])


def _pieces(node: cst.ConcatenatedString) -> tuple[list[cst.BaseExpression], list[cst.BaseParenthesizableWhitespace]]:
    """The literals of an implicit concatenation, in order, and the whitespace between them."""
    pieces: list[cst.BaseExpression] = []
    gaps: list[cst.BaseParenthesizableWhitespace] = []
    current: cst.BaseExpression = node
    while isinstance(current, cst.ConcatenatedString):
        left = current.left
        if isinstance(left, cst.ConcatenatedString):
            inner, inner_gaps = _pieces(left)
            pieces.extend(inner)
            gaps.extend(inner_gaps)
        else:
            pieces.append(left)
        gaps.append(current.whitespace_between)
        current = current.right
    pieces.append(current)
    return pieces, gaps


def backport_fstrings(text: str) -> tuple[str, int] | None:
    """``text`` with the f-strings this interpreter cannot compile rewritten as ``str.format``
    calls, and how many were rewritten; ``None`` when libcst cannot parse the text or the result
    still does not compile (another construct is newer than this interpreter)."""
    backport = _Backport()
    # parsed and rewritten as the analyzer parses (libcst's node checks reject some spellings
    # Python accepts); the result is compiled below
    try:
        with nodes_unchecked():
            rewritten = cst.parse_module(text).visit(backport).code
    except (cst.ParserSyntaxError, cst.CSTValidationError, RecursionError, MemoryError, ValueError):
        return None
    if rewritten.count("\n") != text.count("\n"):
        return None  # never shift the submission's lines
    try:
        compile(rewritten, "<backported>", "exec")
    except SyntaxError:
        return None
    except (ValueError, RecursionError, MemoryError):
        pass
    return rewritten, backport.rewritten

"""The lines a script can print: the format strings of its own print and log calls.

A log line is evidence about the code that printed it. Every expression statement that calls
something with a string it builds (``print(f"ngram_eval:order={args.order}")``,
``log0("ttt:epoch=%d/%d" % (e, n))``, ``logger.info("slot lr %s", lr)``,
``print("final {} val_bpb:{:.8f}".format(tag, bpb))``, or a plain message) gives a
:class:`LogFormat`: a regular expression for the whole line, and for each interpolated value
the code of the expression it comes from. Nothing here depends on the callee's name: which
calls write to the logs is decided by what the logs contain (:mod:`auditor.scored.logmatch`).

Formats with too little literal text (``print(f"{k}: {v}")``) are skipped: a line of them
proves nothing about where it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from auditor.source import PythonSource
from auditor.static.index import SourceIndex, Stmt
from auditor.static.names import dotted

#: At least this many letters and digits of literal text, else a format proves nothing.
MIN_LITERAL = 6
#: A format without any interpolated value must be this long (a plain message).
MIN_PLAIN = 12
#: More interpolated values than this: not a line shape worth a regular expression.
MAX_FIELDS = 24
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
_BRACE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_SPACE = re.compile(r"(?:\s|\\[ntr])+")
#: What a torchrun worker or a logging handler may put before a line.
_PREFIX = r"^\s*(?:\[[^\]\n]{0,40}\]:?\s*)?"


@dataclass(frozen=True, eq=False)
class LogFormat:
    """A line shape one statement prints, and the expressions of its interpolated values."""

    source: PythonSource
    index: SourceIndex
    stmt: Stmt
    line: int  # line of the statement in the source (decoded line for a payload)
    callee: str  # the called name as written ("print", "log0", "logger.info"), "" when none
    #: The callee with the keyword arguments of the call (``log0|console=False``): calls of one
    #: route write to the same place (a keyword such as ``file=`` or ``console=`` may not).
    route: str
    template: str  # readable shape, values as {expr}
    pattern: re.Pattern[str]
    fields: tuple[str, ...]  # code of each interpolated expression, in group order
    key: str  # the longest literal piece: a cheap first filter for lines

    def where(self) -> str:
        return f"{self.source.path}:{self.line}"


def _pieces_fstring(node: cst.FormattedString) -> list[str | cst.BaseExpression] | None:
    out: list[str | cst.BaseExpression] = []
    for part in node.parts:
        if isinstance(part, cst.FormattedStringText):
            out.append(part.value.replace("{{", "{").replace("}}", "}"))
        elif isinstance(part, cst.FormattedStringExpression):
            out.append(part.expression)
        else:  # pragma: no cover - libcst has no other part kinds
            return None
    return out


def _pieces_template(text: str, values: list[cst.BaseExpression], named: dict[str, cst.BaseExpression]) -> list[str | cst.BaseExpression] | None:
    """``"a {} b {name:.3f}".format(x, name=y)`` as literal pieces and expressions."""
    out: list[str | cst.BaseExpression] = []
    pos, auto = 0, 0
    for m in _BRACE.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        if m.group(1) is None:
            out.append(m.group(0)[0])
            continue
        field = m.group(1).split(":", 1)[0].split("!", 1)[0].strip()
        if field == "":
            if auto >= len(values):
                return None
            out.append(values[auto])
            auto += 1
        elif field.isdigit():
            if int(field) >= len(values):
                return None
            out.append(values[int(field)])
        elif field in named:
            out.append(named[field])
        else:
            return None
    out.append(text[pos:])
    return out


def _pieces_percent(text: str, values: list[cst.BaseExpression]) -> list[str | cst.BaseExpression] | None:
    out: list[str | cst.BaseExpression] = []
    pos, i = 0, 0
    for m in _PERCENT.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        if m.group(0) == "%%":
            out.append("%")
            continue
        if i >= len(values):
            return None
        out.append(values[i])
        i += 1
    out.append(text[pos:])
    return out if i == len(values) else None


def _string(node: cst.BaseExpression) -> str | None:
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def _pieces(call: cst.Call) -> list[str | cst.BaseExpression] | None:
    """The literal pieces and interpolated expressions of a call's first argument."""
    args = [a for a in call.args if a.keyword is None and not a.star]
    if not args:
        return None
    first = args[0].value
    if isinstance(first, cst.FormattedString):
        return _pieces_fstring(first)
    if isinstance(first, cst.ConcatenatedString):
        parts: list[str | cst.BaseExpression] = []
        node: cst.BaseExpression = first
        stack = [node]
        while stack:
            cur = stack.pop()
            if isinstance(cur, cst.ConcatenatedString):
                stack.extend([cur.right, cur.left])
            elif isinstance(cur, cst.FormattedString):
                sub = _pieces_fstring(cur)
                if sub is None:
                    return None
                parts.extend(sub)
            elif isinstance(cur, cst.SimpleString) and isinstance(cur.evaluated_value, str):
                parts.append(cur.evaluated_value)
            else:
                return None
        if len(args) > 1 and all(isinstance(p, str) for p in parts):
            return _pieces_percent("".join(parts), [a.value for a in args[1:]])  # type: ignore[arg-type]
        return parts
    if isinstance(first, cst.BinaryOperation) and isinstance(first.operator, cst.Modulo):
        text = _string(first.left)
        if text is None:
            return None
        right = first.right
        values = [e.value for e in right.elements] if isinstance(right, cst.Tuple) else [right]
        return _pieces_percent(text, values)
    if isinstance(first, cst.Call) and isinstance(first.func, cst.Attribute) and first.func.attr.value == "format":
        text = _string(first.func.value)
        if text is None:
            return None
        positional = [a.value for a in first.args if a.keyword is None and not a.star]
        named = {a.keyword.value: a.value for a in first.args if a.keyword is not None}
        return _pieces_template(text, positional, named)
    text = _string(first)
    if text is None:
        return None
    if len(args) > 1:  # logging style: logger.info("x=%d", x)
        return _pieces_percent(text, [a.value for a in args[1:]])
    return [text]


def _literal_regex(text: str) -> str:
    return r"\s*".join(re.escape(p) for p in _SPACE.split(text))


def build(pieces: list[str | cst.BaseExpression], code) -> tuple[str, str, tuple[str, ...], str] | None:
    """(regex, template, fields, key) of a line made of ``pieces``; None when it proves little."""
    literal = "".join(p for p in pieces if isinstance(p, str))
    if "\n" in literal.strip("\n") or "\r" in literal:
        return None  # several lines: not matched line by line
    values = [p for p in pieces if not isinstance(p, str)]
    if len(values) > MAX_FIELDS:
        return None
    letters = sum(c.isalnum() for c in literal)
    if letters < (MIN_LITERAL if values else MIN_PLAIN):
        return None
    regex, template, fields = [], [], []
    for i, piece in enumerate(pieces):
        if isinstance(piece, str):
            regex.append(_literal_regex(piece.strip("\n")))
            template.append(piece.strip("\n"))
        else:
            last = all(isinstance(p, str) and not p.strip() for p in pieces[i + 1:])
            regex.append(r"(.+?)" if last else r"(.*?)")
            text = code(piece)
            fields.append(text)
            template.append("{" + text + "}")
    key = max((p.strip() for p in pieces if isinstance(p, str)), key=len)
    if sum(c.isalnum() for c in key) < 3:
        return None
    return _PREFIX + "".join(regex) + r"\s*$", "".join(template), tuple(fields), key


def formats_of(source: PythonSource, index: SourceIndex) -> list[LogFormat]:
    """Every line shape the statements of a source print (or may print)."""
    out: list[LogFormat] = []
    for scope in index.scopes:
        for call in scope.calls:
            stmt = call.stmt
            if not isinstance(stmt.node, cst.Expr) or stmt.node.value is not call.node:
                continue  # only a call that is a statement of its own writes a line
            pieces = _pieces(call.node)
            if pieces is None:
                continue
            built = build(pieces, lambda n: index.code(n, 80))
            if built is None:
                continue
            regex, template, fields, key = built
            try:
                pattern = re.compile(regex)
            except re.error:
                continue
            line, _ = index.stmt_position(stmt)
            callee = dotted(call.node.func) or ""
            keywords = sorted(f"{a.keyword.value}={index.code(a.value, 40)}" for a in call.node.args if a.keyword is not None)
            route = "|".join([callee, *keywords])
            out.append(LogFormat(source, index, stmt, line, callee, route, template, pattern, fields, key))
    return out

"""Static decoding of self-extracting wrappers, without executing anything.

About one real script in six is a wrapper such as::

    import lzma as L,base64 as B
    exec(L.decompress(B.b85decode("..."),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))

A checker that does not unpack sees two lines and reports nothing. This module finds
``exec``/``eval`` calls whose argument is built only from literals and known decoders
(lzma, zlib, gzip, bz2, brotli; base64/b32/b16/b85/a85, hex; ``.decode()``, ``compile``,
concatenation), evaluates that argument with a small interpreter that knows nothing else,
and returns the decoded source. Nested wrappers are followed. Every decompression is bounded
(output size, depth, total), so a decompression bomb is refused, not expanded.
"""

from __future__ import annotations

import ast
import base64
import binascii
import bz2
import codecs
import lzma
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auditor.findings import Origin
from auditor.source import ast_nodes

#: Largest decoded payload accepted from one layer, and from one wrapper in total.
MAX_LAYER_BYTES = 8_000_000
MAX_TOTAL_BYTES = 32_000_000
#: Deepest nesting of exec-wrappers followed.
MAX_DEPTH = 6
#: Literals longer than this are not decoded (no real wrapper comes near).
MAX_LITERAL_BYTES = 16_000_000

EXEC_FUNCTIONS = frozenset({"exec", "eval", "builtins.exec", "builtins.eval"})


class DecodeError(Exception):
    """A wrapper could not be decoded; the message says why."""


class _NotLiteral(Exception):
    """The expression uses something the interpreter does not know (it is not a wrapper)."""


@dataclass(frozen=True)
class Unpacked:
    """A decoded payload and where it came from."""

    text: str
    origin: Origin
    depth: int = 1
    #: Lines, in this payload, of nested ``exec`` calls that were decoded in turn.
    decoded_exec_lines: frozenset[int] = frozenset()


@dataclass(frozen=True)
class UnpackFailure:
    """An ``exec`` of a decode chain that could not be decoded."""

    line: int
    column: int
    reason: str
    layers: tuple[str, ...] = ()
    snippet: str = ""
    #: Set when the failing ``exec`` is itself inside a decoded payload.
    origin: Origin | None = None


@dataclass
class UnpackResult:
    """Everything found in one source: payloads, failures, and which exec lines were decoded."""

    payloads: list[Unpacked] = field(default_factory=list)
    failures: list[UnpackFailure] = field(default_factory=list)
    decoded_exec_lines: set[int] = field(default_factory=set)


# -- bounded decoders ---------------------------------------------------------------------------


class _Budget:
    """Tracks the bytes produced across all layers of one wrapper."""

    def __init__(self) -> None:
        self.total = 0

    def take(self, data: bytes, layer: str) -> bytes:
        if len(data) > MAX_LAYER_BYTES:
            raise DecodeError(f"{layer} output exceeds the {MAX_LAYER_BYTES:,}-byte limit (decompression bomb?)")
        self.total += len(data)
        if self.total > MAX_TOTAL_BYTES:
            raise DecodeError(f"decoded data exceeds the {MAX_TOTAL_BYTES:,}-byte total limit")
        return data


def _bounded(decompressor: Any, data: bytes, layer: str) -> bytes:
    """Run a stdlib incremental decompressor with an output cap one byte above the limit."""
    try:
        out = decompressor.decompress(data, MAX_LAYER_BYTES + 1)
    except (lzma.LZMAError, zlib.error, OSError, EOFError, ValueError) as exc:
        raise DecodeError(f"{layer}: corrupt data ({exc})") from exc
    if len(out) > MAX_LAYER_BYTES:
        raise DecodeError(f"{layer} output exceeds the {MAX_LAYER_BYTES:,}-byte limit (decompression bomb?)")
    return out


def _lzma(data: bytes, format: int = lzma.FORMAT_AUTO, filters: Any = None, **_: Any) -> bytes:
    kwargs: dict[str, Any] = {"format": format}
    if filters is not None:
        kwargs["filters"] = filters
    try:
        decompressor = lzma.LZMADecompressor(**kwargs)
    except (ValueError, TypeError, lzma.LZMAError) as exc:
        raise DecodeError(f"lzma: unsupported format or filters ({exc})") from exc
    return _bounded(decompressor, data, "lzma")


def _zlib(data: bytes, wbits: int = zlib.MAX_WBITS, *_: Any, **__: Any) -> bytes:
    try:
        decompressor = zlib.decompressobj(wbits)
    except (ValueError, zlib.error) as exc:
        raise DecodeError(f"zlib: bad wbits ({exc})") from exc
    return _bounded(decompressor, data, "zlib")


def _gzip(data: bytes, *_: Any, **__: Any) -> bytes:
    return _bounded(zlib.decompressobj(zlib.MAX_WBITS | 16), data, "gzip")


def _bz2(data: bytes, *_: Any, **__: Any) -> bytes:
    return _bounded(bz2.BZ2Decompressor(), data, "bz2")


def _brotli(data: bytes, *_: Any, **__: Any) -> bytes:
    try:
        import brotli
    except ImportError as exc:  # pragma: no cover - brotli is a core dependency
        raise DecodeError("brotli payload, but the 'brotli' package is not installed") from exc
    decompressor = brotli.Decompressor()
    chunks: list[bytes] = []
    size = 0
    step = 1 << 16
    try:  # feed the input in pieces so that output is produced, and checked, in pieces
        for start in range(0, len(data), step):
            piece = decompressor.process(data[start : start + step])
            size += len(piece)
            if size > MAX_LAYER_BYTES:
                raise DecodeError(f"brotli output exceeds the {MAX_LAYER_BYTES:,}-byte limit (decompression bomb?)")
            chunks.append(piece)
    except brotli.error as exc:
        raise DecodeError(f"brotli: corrupt data ({exc})") from exc
    return b"".join(chunks)


def _base(name: str, fn: Callable[..., bytes]) -> Callable[..., bytes]:
    def decode(data: Any, *args: Any, **kwargs: Any) -> bytes:
        try:
            return fn(data, *args, **kwargs)
        except (ValueError, TypeError, binascii.Error) as exc:
            raise DecodeError(f"{name}: invalid input ({exc})") from exc

    return decode


def _codecs_decode(data: Any, encoding: str = "utf-8", errors: str = "strict") -> Any:
    codec = encoding.lower().replace("-", "_")
    table: dict[str, Callable[..., Any]] = {
        "base64": DECODERS["base64.b64decode"],
        "base64_codec": DECODERS["base64.b64decode"],
        "zlib": _zlib,
        "zlib_codec": _zlib,
        "bz2": _bz2,
        "bz2_codec": _bz2,
        "hex": DECODERS["bytes.fromhex"],
        "hex_codec": DECODERS["bytes.fromhex"],
    }
    if codec in table:
        return table[codec](data)
    if codec in {"rot13", "rot_13"} and isinstance(data, str):
        return codecs.decode(data, "rot13")
    if isinstance(data, bytes):
        try:
            return data.decode(encoding, errors)
        except (LookupError, UnicodeDecodeError) as exc:
            raise DecodeError(f"codecs.decode({encoding!r}): {exc}") from exc
    raise DecodeError(f"codecs.decode with {encoding!r} is not supported")


#: Qualified name -> decoder. Names are resolved through the wrapper's own import aliases.
DECODERS: dict[str, Callable[..., Any]] = {
    "lzma.decompress": _lzma,
    "zlib.decompress": _zlib,
    "gzip.decompress": _gzip,
    "bz2.decompress": _bz2,
    "brotli.decompress": _brotli,
    "base64.b85decode": _base("b85", base64.b85decode),
    "base64.a85decode": _base("a85", base64.a85decode),
    "base64.b64decode": _base("b64", base64.b64decode),
    "base64.standard_b64decode": _base("b64", base64.standard_b64decode),
    "base64.urlsafe_b64decode": _base("b64", base64.urlsafe_b64decode),
    "base64.decodebytes": _base("b64", base64.decodebytes),
    "base64.b32decode": _base("b32", base64.b32decode),
    "base64.b16decode": _base("b16", base64.b16decode),
    "binascii.a2b_base64": _base("b64", binascii.a2b_base64),
    "binascii.unhexlify": _base("hex", binascii.unhexlify),
    "binascii.a2b_hex": _base("hex", binascii.a2b_hex),
    "bytes.fromhex": _base("hex", lambda s: bytes.fromhex(s if isinstance(s, str) else s.decode())),
}
DECODERS["codecs.decode"] = _codecs_decode

#: Module constants a decoder call may name (``format=L.FORMAT_RAW``).
CONSTANTS: dict[str, Any] = {
    f"lzma.{name}": getattr(lzma, name)
    for name in dir(lzma)
    if name.isupper() and isinstance(getattr(lzma, name), int)
}
CONSTANTS.update({"zlib.MAX_WBITS": zlib.MAX_WBITS})

_LAYER_NAMES = {
    "lzma.decompress": "lzma",
    "zlib.decompress": "zlib",
    "gzip.decompress": "gzip",
    "bz2.decompress": "bz2",
    "brotli.decompress": "brotli",
    "codecs.decode": "codecs",
}


def _layer_name(qualname: str) -> str:
    if qualname in _LAYER_NAMES:
        return _LAYER_NAMES[qualname]
    tail = qualname.rsplit(".", 1)[-1]
    return tail.replace("decode", "").replace("a2b_", "").replace("fromhex", "hex").replace("unhexlify", "hex") or tail


# -- the interpreter ---------------------------------------------------------------------------


#: Methods of str and bytes a wrapper applies to its literal before decoding it.
_TEXT_METHODS = frozenset({"replace", "strip", "lstrip", "rstrip"})


class _Interpreter:
    """Evaluates literal-only decode chains; anything else raises :class:`_NotLiteral`."""

    def __init__(self, aliases: dict[str, str], names: dict[str, ast.expr]) -> None:
        self.aliases = aliases
        self.names = names
        self.layers: list[str] = []
        self.budget = _Budget()
        self._resolving: set[str] = set()

    def qualname(self, node: ast.expr) -> str | None:
        """The dotted name of a function or constant reference, through import aliases."""
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return None if base is None else f"{base}.{node.attr}"
        if (  # __import__("lzma").decompress
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            return node.args[0].value
        return None

    def eval(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, (str, bytes)) and len(node.value) > MAX_LITERAL_BYTES:
                raise DecodeError(f"literal of {len(node.value):,} characters exceeds the decoding limit")
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise _NotLiteral
            return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.BitOr)):
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, (str, bytes)):
                if len(left) + len(right) > MAX_LITERAL_BYTES:
                    raise DecodeError("concatenated literal exceeds the decoding limit")
                return left + right
            if isinstance(left, int) and isinstance(right, int):
                return left | right if isinstance(node.op, ast.BitOr) else left + right
            raise _NotLiteral
        if isinstance(node, ast.Name):
            if node.id in self.names and node.id not in self._resolving:
                self._resolving.add(node.id)
                try:
                    return self.eval(self.names[node.id])
                finally:
                    self._resolving.discard(node.id)
            raise _NotLiteral
        if isinstance(node, ast.Attribute):
            name = self.qualname(node)
            if name in CONSTANTS:
                return CONSTANTS[name]
            raise _NotLiteral
        if isinstance(node, ast.Call):
            return self.call(node)
        raise _NotLiteral

    def call(self, node: ast.Call) -> Any:
        func = node.func
        # Methods on a decoded value: data.decode(), text.encode()
        if isinstance(func, ast.Attribute) and func.attr in {"decode", "encode"}:
            name = self.qualname(func)
            if name is None or name not in DECODERS:
                receiver = self.eval(func.value)
                args = [self.eval(a) for a in node.args]
                try:
                    if func.attr == "decode" and isinstance(receiver, bytes):
                        return receiver.decode(*args)
                    if func.attr == "encode" and isinstance(receiver, str):
                        return receiver.encode(*args)
                except (LookupError, UnicodeError) as exc:
                    raise DecodeError(f".{func.attr}(): {exc}") from exc
                raise _NotLiteral
        # Cleaning a literal before decoding it: _b.replace(b"\n", b""), text.strip()
        if isinstance(func, ast.Attribute) and func.attr in _TEXT_METHODS and not node.keywords:
            receiver = self.eval(func.value)
            args = [self.eval(a) for a in node.args]
            if not isinstance(receiver, (str, bytes)) or any(type(a) is not type(receiver) for a in args[:2]):
                raise _NotLiteral
            if func.attr == "replace" and len(args) in (2, 3):
                if len(args) == 3 and not isinstance(args[2], int):
                    raise _NotLiteral
                if not args[0]:  # an empty pattern inserts between every character
                    raise _NotLiteral
                if len(receiver) + max(0, len(args[1]) - len(args[0])) * receiver.count(args[0]) > MAX_LITERAL_BYTES:
                    raise DecodeError("replace() on a literal exceeds the decoding limit")
                return receiver.replace(*args)
            if func.attr != "replace" and len(args) <= 1:
                return getattr(receiver, func.attr)(*args)
            raise _NotLiteral
        name = self.qualname(func)
        if name is None:
            raise _NotLiteral
        if name in {"compile", "builtins.compile"} and node.args:
            # compile(source, filename, "exec") -> the source; the file name may be anything
            # (wrappers often pass __file__ + ".decompressed.py")
            return self.eval(node.args[0])
        args = [self.eval(a) for a in node.args if not isinstance(a, ast.Starred)]
        kwargs = {kw.arg: self.eval(kw.value) for kw in node.keywords if kw.arg is not None}
        if name in {"str", "builtins.str"} and args:
            if isinstance(args[0], bytes) and len(args) >= 2:
                return args[0].decode(*args[1:])
            if isinstance(args[0], str):
                return args[0]
            raise _NotLiteral
        if name in {"bytes", "builtins.bytes"} and args:
            if isinstance(args[0], bytes):
                return args[0]
            if isinstance(args[0], str) and len(args) >= 2:
                return args[0].encode(args[1])
            raise _NotLiteral
        decoder = DECODERS.get(name)
        if decoder is None:
            raise _NotLiteral
        layer = _layer_name(name)
        self.layers.append(layer)
        if not args:
            raise DecodeError(f"{layer}: called without data")
        data = args[0]
        if isinstance(data, str) and layer not in {"codecs"}:
            try:
                data = data.encode("ascii")
            except UnicodeEncodeError as exc:
                raise DecodeError(f"{layer}: input is not ASCII text") from exc
        try:
            out = decoder(data, *args[1:], **kwargs)
        except TypeError as exc:
            raise DecodeError(f"{layer}: unsupported arguments ({exc})") from exc
        if isinstance(out, bytes):
            self.budget.take(out, layer)
        return out


def _aliases_and_names(tree: ast.Module, nodes: list[ast.AST]) -> tuple[dict[str, str], dict[str, ast.expr]]:
    """Import aliases (``L`` -> ``lzma``) and module-level single-name assignments."""
    aliases: dict[str, str] = {}
    names: dict[str, ast.expr] = {}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    aliases.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            names[stmt.targets[0].id] = stmt.value
    return aliases, names


def _mentions_decoder(interp: _Interpreter, node: ast.expr) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            name = interp.qualname(sub.func)
            if name in DECODERS:
                return True
    return False


def _exec_calls(nodes: list[ast.AST], interp: _Interpreter) -> list[ast.Call]:
    calls = []
    for node in nodes:
        if isinstance(node, ast.Call) and node.args and interp.qualname(node.func) in EXEC_FUNCTIONS:
            calls.append(node)
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


#: Every way to reach an EXEC_FUNCTIONS name spells "exec" or "eval" as a bare name (not an
#: attribute such as ``model.eval``) or names ``builtins``; a source without any of them has
#: nothing to unpack, and is not parsed for it.
_MAY_EXEC = re.compile(r"(?<![.\w])(?:exec|eval)\b|builtins")


def unpack(text: str, path: str, *, tree: ast.Module | None = None, nodes: list[ast.AST] | None = None,
           _depth: int = 1, _outer: Origin | None = None) -> UnpackResult:
    """Decode every self-extracting ``exec`` in ``text`` (a Python source shown as ``path``).

    ``tree`` is ``text``'s stdlib AST when the caller has it already (``nodes``: its nodes in
    ``ast.walk``'s order, :func:`auditor.source.ast_nodes`). Returns the payloads
    (each with the wrapper line it came from; nested payloads keep the outermost wrapper line,
    the one that exists on disk), the wrappers that could not be decoded, and the lines of the
    ``exec`` calls that were decoded.
    """
    result = UnpackResult()
    if not _MAY_EXEC.search(text):
        return result
    if tree is None:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return result
    if nodes is None:
        nodes = ast_nodes(tree)
    aliases, names = _aliases_and_names(tree, nodes)
    lines = text.splitlines()

    def fail(call: ast.Call, reason: str, layers: tuple[str, ...], snippet: str) -> None:
        result.failures.append(UnpackFailure(call.lineno, call.col_offset, reason, layers, snippet, _outer))

    for call in _exec_calls(nodes, _Interpreter(aliases, names)):
        interp = _Interpreter(aliases, names)
        snippet = lines[call.lineno - 1].strip() if call.lineno <= len(lines) else ""
        snippet = snippet if len(snippet) <= 200 else snippet[:199] + "…"
        try:
            value = interp.eval(call.args[0])
        except _NotLiteral:
            if _mentions_decoder(interp, call.args[0]):
                fail(call, "the data to decode is not a literal", tuple(interp.layers), snippet)
            continue
        except DecodeError as exc:
            fail(call, str(exc), tuple(interp.layers), snippet)
            continue
        except RecursionError:
            fail(call, "expression nested too deeply", (), snippet)
            continue
        if not interp.layers:
            continue  # exec of a plain literal string is not a wrapper; the static rules see it
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                fail(call, "decoded bytes are not UTF-8 text", tuple(interp.layers), snippet)
                continue
        if not isinstance(value, str):
            continue
        layers = tuple(interp.layers)
        if _outer is None:
            origin = Origin(path=path, line=call.lineno, column=call.col_offset, layers=layers)
        else:
            origin = Origin(path=path, line=_outer.line, column=_outer.column, layers=_outer.layers + layers)
        result.decoded_exec_lines.add(call.lineno)
        if _depth < MAX_DEPTH:
            inner = unpack(value, path, _depth=_depth + 1, _outer=origin)
            payload = Unpacked(value, origin, _depth, frozenset(inner.decoded_exec_lines))
            result.payloads.append(payload)
            result.payloads.extend(inner.payloads)
            result.failures.extend(inner.failures)
        else:
            result.payloads.append(Unpacked(value, origin, _depth))
            if "exec(" in value:
                result.failures.append(
                    UnpackFailure(1, 0, f"wrappers nested deeper than {MAX_DEPTH} levels", origin.layers, "", origin)
                )
    return result

"""Qualified names of calls, resolved through the imports of the module.

``import urllib.request as ur; ur.urlopen(u)`` calls ``urllib.request.urlopen``;
``from huggingface_hub import snapshot_download as sd; sd(...)`` calls
``huggingface_hub.snapshot_download``. Resolution is syntactic and per module — cheaper than
libcst's QualifiedNameProvider, which costs about a second on a large script.
"""

from __future__ import annotations

import libcst as cst


def dotted(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    cls = type(node)  # exact types: faster than isinstance against libcst's ABCs, and neither has subclasses
    if cls is cst.Name:
        return node.value
    if cls is cst.Attribute:
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def callee_name(node: cst.CSTNode) -> str:
    """The last part of a call's callee (``exp`` for ``np.exp(x)``, ``x.exp()`` and ``exp(x)``);
    "" for anything but a call of a name or an attribute."""
    if type(node) is not cst.Call:
        return ""
    func = node.func
    cls = type(func)
    return func.attr.value if cls is cst.Attribute else func.value if cls is cst.Name else ""


def _module_name(node: cst.BaseExpression) -> str:
    return dotted(node) or ""


class ImportTable(cst.CSTVisitor):
    """Maps local names to what they were imported as, anywhere in the module."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = _module_name(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.aliases[alias.asname.name.value] = full
            else:
                top = full.split(".")[0]
                self.aliases.setdefault(top, top)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        module = _module_name(node.module)
        for alias in node.names:
            name = _module_name(alias.name)
            local = alias.asname.name.value if alias.asname and isinstance(alias.asname.name, cst.Name) else name
            self.aliases[local] = f"{module}.{name}"

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """The qualified name of a reference, through the import aliases."""
        name = dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head in self.aliases:
            base = self.aliases[head]
            return f"{base}.{rest}" if rest else base
        return name

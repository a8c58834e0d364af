"""Cheap positions must equal libcst's PositionProvider on every node."""

from __future__ import annotations

import libcst as cst

from auditor.positions import node_starts

from .conftest import EXAMPLE, FIXTURES


def _all_nodes(module: cst.Module) -> list[cst.CSTNode]:
    nodes: list[cst.CSTNode] = []

    class Collect(cst.CSTVisitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            nodes.append(node)
            return True

    module.visit(Collect())
    return nodes


def test_positions_match_libcst_provider():
    for path in (EXAMPLE / "train_gpt.py", FIXTURES / "wrappers" / "src" / "lzma_b85.py"):
        module = cst.parse_module(path.read_text())
        nodes = _all_nodes(module)
        expected = cst.MetadataWrapper(module, unsafe_skip_copy=True).resolve(cst.metadata.PositionProvider)
        got = node_starts(module, nodes)
        mismatches = [
            (type(n).__name__, got.get(n), (expected[n].start.line, expected[n].start.column))
            for n in nodes
            if got.get(n) != (expected[n].start.line, expected[n].start.column)
        ]
        assert not mismatches, mismatches[:5]


def test_positions_of_a_few_nodes_with_crlf_and_comments():
    text = "# c\r\nx = 1\r\n\r\ndef f():\r\n    # comment\r\n    return g(x)\r\n"
    module = cst.parse_module(text)
    calls = [n for n in _all_nodes(module) if isinstance(n, cst.Call)]
    assert node_starts(module, calls) == {calls[0]: (6, 11)}

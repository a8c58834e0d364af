"""PythonSource parsing: the tree equals libcst's own, and libcst's node checks stay on elsewhere."""

from __future__ import annotations

import libcst as cst
import pytest

from auditor.source import PythonSource

from .conftest import EXAMPLE, FIXTURES


@pytest.mark.parametrize("path", [EXAMPLE / "train_gpt.py", FIXTURES / "wrappers" / "src" / "lzma_b85.py"])
def test_tree_is_the_one_libcst_builds(path):
    text = path.read_text()
    module = PythonSource(path.name, text).module
    assert module is not None and module.code == text
    assert module.deep_equals(cst.parse_module(text))


def test_node_checks_are_back_on_after_a_parse_and_after_a_failed_one():
    assert PythonSource("ok.py", "x = 1\n").module is not None
    assert PythonSource("bad.py", "def f(:\n").parse_error is not None
    with pytest.raises(cst.CSTValidationError):
        cst.Name("two words")


def test_sources_of_the_same_text_share_their_trees_but_not_within_one_submission():
    from types import SimpleNamespace

    text = "def f(x):\n    return x + 1\n"
    first, second = PythonSource("a/train_gpt.py", text), PythonSource("b/train_gpt.py", text)
    assert first.module is second.module and first.ast_tree is second.ast_tree  # two submissions, one parse
    twins = [PythonSource("c/train_gpt.py", text), PythonSource("c/copy.py", text)]
    bundle = SimpleNamespace(sources=twins)
    for source in twins:
        source.bundle = bundle  # type: ignore[assignment]
    assert twins[0].module is not twins[1].module  # one program's nodes stay distinct
    assert twins[0].module.deep_equals(twins[1].module)
    assert first.location(first.module.body[0]).path == "a/train_gpt.py"
    assert second.location(second.module.body[0]).path == "b/train_gpt.py"


@pytest.mark.parametrize("path", [EXAMPLE / "train_gpt.py", FIXTURES / "wrappers" / "src" / "lzma_b85.py"])
def test_ast_nodes_are_ast_walk_in_its_order(path):
    import ast

    source = PythonSource(path.name, path.read_text())
    expected = list(ast.walk(source.ast_tree))
    assert len(source.ast_nodes) == len(expected) > 50
    assert all(a is b for a, b in zip(source.ast_nodes, expected))
    assert PythonSource("bad.py", "def f(:\n").ast_nodes == []


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_as_it_was_after_a_parse(enabled):
    import gc

    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        assert PythonSource("ok.py", "x = [1, 2]\n").module is not None
        assert PythonSource("bad.py", "def f(:\n").parse_error is not None
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()

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

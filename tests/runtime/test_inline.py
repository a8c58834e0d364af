"""Lifting an inline evaluation into a function keeps what the enclosing function computes."""

from __future__ import annotations

import ast
import textwrap

import pytest

from auditor.runtime.inline import Lifted, lift


def run(source: str, function: str, line: int, printed: list[str], *args):
    """Lift, run the function with ``args``; (what it returned, the wrapped calls, the lift)."""
    tree = ast.parse(textwrap.dedent(source))
    calls = []

    def wrap(fn, name):
        def wrapper(*a, **k):
            result = fn(*a, **k)
            calls.append((name, result))
            return result
        return wrapper

    done = lift(tree, function, line, printed, "WRAP")
    ast.fix_missing_locations(tree)
    namespace = {"WRAP": wrap, "G": 10}
    exec(compile(tree, "<fixture>", "exec"), namespace)
    return namespace[function](*args), calls, done


SCORED_INLINE = """
def main(n):
    total = 0
    stream = list(range(n))
    if n > 2:
        acc = 0.0
        for t in stream[1:]:
            acc += t * 0.5
        bpb = acc / len(stream)
        total += 1
        print(f"final val_bpb:{bpb:.4f}")
    return total, bpb, acc
"""


def test_the_block_runs_as_a_captured_function_and_its_locals_come_back():
    result, calls, done = run(SCORED_INLINE, "main", 11, ["bpb"], 5)
    assert isinstance(done, Lifted) and done.shown == "main, lines 5-11"
    assert result == (1, 1.0, 5.0)  # as without the lift
    assert calls == [("main, lines 5-11", (1.0,))]  # the printed value is what the call returns


def test_a_local_the_block_reads_before_it_is_bound_still_raises():
    source = """
    def main(n):
        if n:
            acc = late + 1
            print(f"val_bpb:{acc}")
        late = 2
    """
    with pytest.raises(UnboundLocalError):
        run(source, "main", 5, ["acc"], 1)


def test_globals_the_function_declares_stay_global():
    source = """
    def main():
        global G
        if True:
            G = G + 1
            bpb = G / 4
            print(f"val_bpb:{bpb}")
        return G
    """
    result, calls, done = run(source, "main", 7, ["bpb"])
    assert isinstance(done, Lifted)
    assert result == 11 and calls == [("main, lines 4-7", (2.75,))]


def test_a_global_the_block_reads_stays_global_when_a_nested_function_binds_the_name():
    source = """
    def main():
        def helper():
            G = 0
            return G
        if True:
            bpb = G / 4 + helper()
            print(f"val_bpb:{bpb}")
        return bpb
    """
    result, calls, done = run(source, "main", 8, ["bpb"])
    assert isinstance(done, Lifted)
    assert result == 2.5 and calls == [("main, lines 6-8", (2.5,))]


def test_the_innermost_block_that_assigns_every_printed_name_is_lifted():
    source = """
    def main(stream):
        for epoch in range(2):
            if epoch == 1:
                bpb = sum(stream) / len(stream)
                if True:
                    print(f"val_bpb:{bpb}")
        return bpb
    """
    result, calls, done = run(source, "main", 7, ["bpb"], [1, 2, 3])
    assert isinstance(done, Lifted) and done.shown == "main, lines 4-7"  # not the epoch loop
    # the lifted block runs at each pass of the loop, as the block did (the first prints nothing)
    assert result == 2.0 and calls == [("main, lines 4-7", (None,)), ("main, lines 4-7", (2.0,))]


@pytest.mark.parametrize("body, why", [
    ("        return bpb\n", "returns from its function"),
    ("        del stream\n", "deletes a local"),
    ("        yield bpb\n", "yields or awaits"),
])
def test_a_block_that_would_change_meaning_in_a_function_is_not_lifted(body, why):
    source = ("def main(stream):\n    if stream:\n        bpb = sum(stream)\n        print(f'val_bpb:{bpb}')\n"
              + body + "    return 0\n")
    done = lift(ast.parse(source), "main", 4, ["bpb"], "WRAP")
    assert isinstance(done, str) and why in done


def test_a_break_of_an_outer_loop_is_not_lifted_but_one_of_its_own_loop_is():
    outer = ("def main(stream):\n    for s in stream:\n        if s:\n            bpb = s\n"
             "            print(f'val_bpb:{bpb}')\n            break\n")
    assert "breaks out" in lift(ast.parse(outer), "main", 5, ["bpb"], "WRAP")
    own = ("def main(stream):\n    if stream:\n        for s in stream:\n            break\n        bpb = 1.0\n"
           "        print(f'val_bpb:{bpb}')\n")
    assert isinstance(lift(ast.parse(own), "main", 6, ["bpb"], "WRAP"), Lifted)


def test_values_computed_in_the_functions_own_body_are_not_lifted():
    source = "def main(stream):\n    bpb = sum(stream)\n    print(f'val_bpb:{bpb}')\n"
    done = lift(ast.parse(source), "main", 3, ["bpb"], "WRAP")
    assert isinstance(done, str) and "not all assigned in one block" in done

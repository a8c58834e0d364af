"""The shared index: one walk, statements with their guards, loops and positions."""

from __future__ import annotations

import libcst as cst

from auditor.static.index import index_of

from .helpers import function, indexed, source_of


def test_scopes_calls_and_qualified_names():
    _, index = indexed(
        """
        import numpy as np
        import torch.nn.functional as F
        class Cache:
            def update(self, t):
                np.add.at(self.table, t, 1)
        def score(logits, y):
            return F.cross_entropy(logits, y)
        """
    )
    assert [s.qualname for s in index.functions] == ["Cache.update", "score"]
    update = function(index, "update")
    assert update.cls is not None and update.cls.name == "Cache"
    assert [c.qualified for c in update.calls] == ["numpy.add.at"]
    assert [c.qualified for c in function(index, "score").calls] == ["torch.nn.functional.cross_entropy"]


def test_guards_follow_elif_else_and_early_exits():
    _, index = indexed(
        """
        def f(args):
            if args.a:
                x = 1
            elif args.b:
                x = 2
            else:
                x = 3
            if not args.enabled:
                return None
            y = x
            for i in range(args.n):
                z = i
        """
    )
    scope = function(index, "f")
    kinds = {
        index.code(s.node): [(index.code(g.test), g.polarity, g.kind) for g in s.guards]
        for s in scope.stmts
        if isinstance(s.node, cst.Assign)
    }
    assert kinds["x = 1"] == [("args.a", True, "if")]
    assert kinds["x = 2"] == [("args.a", False, "if"), ("args.b", True, "if")]
    assert kinds["x = 3"] == [("args.a", False, "if"), ("args.b", False, "if")]
    assert kinds["y = x"] == [("not args.enabled", False, "exit")]
    assert kinds["z = i"] == [("not args.enabled", False, "exit"), ("args.n", True, "range")]


def test_with_blocks_and_loops_are_recorded():
    _, index = indexed(
        """
        import torch
        def f(model, xs):
            for x in xs:
                with torch.no_grad(), torch.autocast("cuda"):
                    y = model(x)
        """
    )
    stmt = next(s for s in function(index, "f").stmts if isinstance(s.node, cst.Assign))
    assert stmt.withs == ("torch.no_grad", "torch.autocast")
    assert len(stmt.loops) == 1


def test_statement_positions_come_from_the_stdlib_ast():
    code = """
    import os
    @decorator
    def f(a,
          b):
        try:
            x = a; y = b
        except ValueError:
            x = 0
        finally:
            pass
        match a:
            case 1:
                z = (1 +
                     2)
        if a: w = 1
        return x
    """
    source, index = indexed(code)
    positions = index.statement_positions()
    assert positions is not None
    lines = source.text.splitlines()
    for stmt in (s for scope in index.scopes for s in scope.stmts):
        if isinstance(stmt.node, (cst.FunctionDef,)):
            continue  # ast puts a decorated def on its `def` line
        line, column = positions[stmt.node]
        first = index.code(stmt.node, 400).split()[0]
        assert lines[line - 1][column:].startswith(first.rstrip(":")), (line, first)


def test_line_of_a_call_is_the_line_of_its_statement():
    _, index = indexed(
        """
        x = 1
        y = f(
            g(x),
        )
        """
    )
    call = next(c for c in index.module_scope.calls if c.name == "g")
    assert index.line(call.node) == 2


def test_the_index_is_built_once_per_source():
    source = source_of("x = 1\n")
    assert index_of(source) is index_of(source)


def test_analyses_cached_per_function_do_not_keep_an_audited_source_alive():
    """A triage audits thousands of folders in one process: what the rules cache per function
    (mixtures, dependencies) must go when the source goes."""
    import gc
    import weakref

    from auditor.static.deps import depends
    from auditor.static.mixtures import mixtures

    source, index = indexed(
        """
        import torch
        def mix(lp_model, lp_cache, y):
            both = torch.logaddexp(lp_model, lp_cache)
            loss = -both.gather(-1, y)
            return loss
        """
    )
    scope = function(index, "mix")
    assert mixtures(scope) and "lp_cache" in depends(scope, ["loss"])  # both analyses cached
    alive = weakref.ref(scope)
    del scope, index, source
    gc.collect()
    assert alive() is None

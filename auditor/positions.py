"""Line and column numbers for chosen libcst nodes, in one cheap code-generation pass.

libcst's ``PositionProvider`` records a range for every node of a module, which costs
about 0.45 s on an 1,800-line script — more than the rest of a static audit. A check only
needs the positions of the nodes it reports, so this module regenerates the code once and
records, for those nodes alone, the token index where each starts; token indices then become
line and column numbers in a single scan. The result equals ``PositionProvider``'s start
position (the syntactic start, without leading whitespace or comments); a test checks that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import libcst as cst
from libcst.metadata import PositionProvider

try:  # the codegen state is internal to libcst; fall back to the public provider without it
    from libcst._nodes.internal import CodegenState
except ImportError:  # pragma: no cover - depends on the installed libcst
    CodegenState = None  # type: ignore[assignment,misc]


if CodegenState is not None:

    class _StartRecorder(CodegenState):
        """Records the token index where each wanted node starts during codegen."""

        def setup(self, wanted: set[cst.CSTNode]) -> None:
            self.wanted = wanted
            self.loose: dict[cst.CSTNode, int] = {}  # start including owned whitespace
            self.exact: dict[cst.CSTNode, int] = {}  # syntactic start
            self.hoisted: dict[cst.CSTNode, cst.CSTNode] = {}  # node -> start_node

        def before_codegen(self, node: cst.CSTNode) -> None:
            if node in self.wanted and node not in self.loose:
                self.loose[node] = len(self.tokens)

        @contextmanager
        def record_syntactic_position(
            self,
            node: cst.CSTNode,
            *,
            start_node: cst.CSTNode | None = None,
            end_node: cst.CSTNode | None = None,
        ) -> Iterator[None]:
            if node not in self.wanted:
                yield
                return
            if start_node is not None:
                # The node starts where start_node starts; make sure that one is recorded.
                self.wanted.add(start_node)
                self.hoisted[node] = start_node
            self.exact[node] = len(self.tokens)
            yield


def node_starts(module: cst.Module, nodes: Iterable[cst.CSTNode]) -> dict[cst.CSTNode, tuple[int, int]]:
    """``{node: (line, column)}`` (1-based line, 0-based column) for the given nodes of ``module``."""
    wanted = set(nodes)
    if not wanted:
        return {}
    if CodegenState is None:  # pragma: no cover
        return _via_provider(module, wanted)
    state = _StartRecorder(default_indent=module.default_indent, default_newline=module.default_newline)
    state.setup(set(wanted))
    module._codegen(state)
    index: dict[cst.CSTNode, int] = {}
    for node in wanted:
        start = state.hoisted.get(node)
        source = start if start is not None else node
        if source in state.exact:
            index[node] = state.exact[source]
        elif source in state.loose:
            index[node] = state.loose[source]
    return _indices_to_positions(state.tokens, index)


def _indices_to_positions(tokens: list[str], index: dict[cst.CSTNode, int]) -> dict[cst.CSTNode, tuple[int, int]]:
    order = sorted(set(index.values()))
    at: dict[int, tuple[int, int]] = {}
    line, column, cursor = 1, 0, 0
    for target in order:
        while cursor < target:
            token = tokens[cursor]
            newlines = token.count("\n")
            if newlines:
                line += newlines
                column = len(token) - token.rfind("\n") - 1
            else:
                column += len(token)
            cursor += 1
        at[target] = (line, column)
    return {node: at[i] for node, i in index.items()}


def _via_provider(module: cst.Module, wanted: set[cst.CSTNode]) -> dict[cst.CSTNode, tuple[int, int]]:
    wrapper = cst.MetadataWrapper(module, unsafe_skip_copy=True)
    ranges = wrapper.resolve(PositionProvider)
    return {n: (ranges[n].start.line, ranges[n].start.column) for n in wanted if n in ranges}

"""PG102 boundary-plus-one."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.roles import int_value as _int_value
from auditor.static.index import Scope, SourceIndex
from auditor.static.training import score_events

#: Calls that put tokens into adaptive state.
_UPDATE = re.compile(r"^(update\w*|add\w*|observe\w*|push|extend|ingest|record|count\w*|feed|absorb|learn|train_on\w*)$", re.I)
#: How windows are assigned to chunks when the assignment uses the first scored position.
_BY_SCORED_START = re.compile(r"scored_start|score_start|\(\s*ws\s*\+\s*s\s*\)|ws\s*\+\s*s\b")


def _plus_one(node: cst.BaseExpression | None) -> bool:
    return (
        isinstance(node, cst.BinaryOperation)
        and isinstance(node.operator, cst.Add)
        and _int_value(node.right) == 1
    )


class BoundaryPlusOne(StaticRule):
    """
    ## What it does
    Finds updates of adaptive state (an n-gram cache, a mixer, counts) whose slice of the
    validation tokens reaches one token past the chunk that was just scored:
    `mixer.update(val_tokens[chunk_start:chunk_end + 1])`. It reports a *hypothesis*, as a
    warning: whether that extra token is already scored depends on how windows are assigned
    to chunks, which only running the code settles.

    ## Why is this bad?
    If the token at `chunk_end` is not yet scored when it enters the cache, the next chunk's
    first prediction can see its own target (issue #1017, condition C3: score before
    update). In openai/parameter-golf PR #825 and PR #779, however, windows are assigned to
    chunks by their first scored position, so the extra token had already been scored and
    the `+ 1` is not a leak there; reviewers disagreed and no maintainer ruled on it. The
    rule therefore lowers its confidence when it sees that assignment, and the runtime
    harness (a change of the first token after each boundary must not move the scores
    before it) decides.

    ## Example
    ```python
    for ci in range(num_chunks):
        loss_sum += score_windows(chunk_windows[ci])
        mixer.update(val_tokens[ci * chunk:(ci + 1) * chunk + 1])   # one token past the chunk
    ```

    ## Use instead
    Update with exactly the tokens whose scores are already in the total
    (`val_tokens[chunk_start:chunk_end]`), or document (and test) why the boundary token was
    scored before the update.

    ## Known problems
    A hypothesis, not a verdict: in the corpus the pattern is usually harmless (#825,
    #779's first commit). The warning never makes a submission a violation.

    ## References
    - R-BOUNDARY-PLUS1: PR #779 commit c58742a3e (removed the `+ 1` after review), PR #825,
      PR #798 review.
    - Issue #1017, condition C3.
    """

    CODE = "PG102"
    NAME = "boundary-plus-one"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("#779", "#825", "#1017", "R-BOUNDARY-PLUS1")
    TAGS = ("boundary_plus1",)
    VALID = (
        Valid(
            code="""
            import torch
            def eval_cache(mixer, val_tokens, chunks, n, score):
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(ci)
                    mixer.update(val_tokens[ci * n:(ci + 1) * n])
                return loss_sum
            """,
            note="the update covers exactly the scored chunk",
        ),
        Valid(
            code="""
            def windows(val_tokens, ws, end):
                chunk = val_tokens[ws:end + 1]
                return chunk[:-1], chunk[1:]
            """,
            note="reading one more token to form (input, target) pairs is not an update",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            def eval_cache(mixer, val_tokens, chunks, n, score):
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(ci)
                    start, end = ci * n, (ci + 1) * n
                    mixer.update(val_tokens[start:end + 1])
                return loss_sum
            eval_cache(None, torch.load("fineweb_val_000000.pt"), 1, 1, None)
            """,
            lines=(8,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        for scope in index.scopes:
            candidates = []
            for call in scope.calls:
                if not isinstance(call.node.func, cst.Attribute) or not _UPDATE.match(call.method):
                    continue
                for arg in call.node.args:
                    value = arg.value
                    if not isinstance(value, cst.Subscript) or len(value.slice) != 1:
                        continue
                    element = value.slice[0].slice
                    if not isinstance(element, cst.Slice) or not _plus_one(element.upper) or element.lower is None:
                        continue
                    if not flow.fact(value.value, scope).has("val", "tok"):
                        continue
                    candidates.append((call, value))
            if not candidates:
                continue
            events = score_events(index, scope, evidence.program)
            by_scored_start = self._assigned_by_scored_start(index, scope)
            for call, value in candidates:
                if not any(e.stmt.order < call.stmt.order for e in events):
                    continue  # no scoring before it in this function: not a post-score update
                details = {"update": index.code(call.node, 120), "slice_end": index.code(value.slice[0].slice.upper, 60)}
                note = ""
                confidence = Confidence.MEDIUM
                if by_scored_start is not None:
                    confidence = Confidence.LOW
                    details["windows_assigned_by"] = by_scored_start
                    note = (
                        f"; windows are assigned to chunks by their first scored position (line {by_scored_start['line']}), "
                        "so the extra token may already be scored, as in PR #825: the runtime probe decides"
                    )
                yield self.report(
                    source, call.node, call.stmt,
                    f"the state update `{index.code(call.node, 80)}` reaches one token past the chunk it just scored"
                    + note,
                    evidence=details, confidence=confidence,
                )

    @staticmethod
    def _assigned_by_scored_start(index: SourceIndex, scope: Scope) -> dict | None:
        for assignment in scope.assignments:
            if assignment.value is None or not isinstance(assignment.target, cst.Name):
                continue
            text = index.code(assignment.value, 200)
            if "//" in text and _BY_SCORED_START.search(text):
                return {"code": index.code(assignment.stmt.node, 120), "line": index.line(assignment.stmt.node)}
        return None

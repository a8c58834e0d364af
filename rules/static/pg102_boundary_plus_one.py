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
from auditor.static.effects import fills
from auditor.static.roles import int_value as _int_value
from auditor.static.training import score_events
from auditor.static.windows import by_scored_start

#: Tie-breaker only: how an update of state the submission does not define (a library's
#: object) is usually called. The submission's own callees are judged by what they write.
_UPDATE_NAME = re.compile(r"^(update\w*|add\w*|observe\w*|push|extend|ingest|record|count\w*|feed|absorb|learn|train_on\w*)$", re.I)


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
    `mixer.update(val_tokens[chunk_start:chunk_end + 1])`. A call is an update when the
    submission's callee keeps the sliced tokens — writes them, or statistics of them, into
    its object or into a table its caller passed (:mod:`auditor.static.effects`) — whatever
    the method is called (`put`, `tally(tab, toks)`). It reports a *hypothesis*, as a
    warning: whether that extra token is already scored depends on how windows are assigned
    to chunks, which only running the code settles.

    ## Why is this bad?
    If the token at `chunk_end` is not yet scored when it enters the cache, the next chunk's
    first prediction can see its own target (issue #1017, condition C3: score before
    update). In openai/parameter-golf PR #825 and PR #779, however, windows are assigned to
    chunks by their first scored position, so the extra token had already been scored and
    the `+ 1` is not a leak there; reviewers disagreed and no maintainer ruled on it. The
    rule therefore lowers its confidence when it sees that assignment — a floor division
    whose numerator is computed from the offset the window's scored losses are sliced from
    (`nll[i, s:wlen]` summed into the loss, and `(ws + s) // chunk_tokens`), by provenance,
    not by the variables' names — and the runtime harness (a change of the first token after
    each boundary must not move the scores before it) decides.

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
    #779's first commit). The warning never makes a submission a violation. An update of an
    object the submission does not define is recognized by its method's name only, at low
    confidence. The scored start is matched within one function by name, and across
    functions by an identical defining expression; a window assignment that recomputes the
    offset differently is not seen, and the confidence stays medium.

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
        Valid(
            code="""
            import numpy as np
            import torch
            class Stats:
                def __init__(self, n):
                    self.hits = np.zeros(n)
                def update(self, seq):
                    return float(self.hits[seq].mean())
            def eval_stats(stats, val_tokens, chunks, n, score):
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(ci)
                    stats.update(val_tokens[ci * n:(ci + 1) * n + 1])
                return loss_sum
            eval_stats(Stats(8), torch.load("fineweb_val_000000.pt"), 1, 1, None)
            """,
            note="a method named `update` that only reads its state: nothing enters it",
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
        Invalid(
            code="""
            import numpy as np
            import torch
            class Memo:
                def __init__(self, n):
                    self.hits = np.zeros(n)
                def put(self, seq):
                    np.add.at(self.hits, seq, 1)
            def eval_memo(memo, val_tokens, chunks, n, score):
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(ci)
                    lo, hi = ci * n, (ci + 1) * n
                    memo.put(val_tokens[lo:hi + 1])
                return loss_sum
            eval_memo(Memo(8), torch.load("fineweb_val_000000.pt"), 1, 1, None)
            """,
            lines=(14,),
        ),
        Invalid(
            code="""
            import numpy as np
            import torch
            def tally(tab, toks):
                for a, b in zip(toks[:-1], toks[1:]):
                    tab[a, b] += 1
            def eval_bigram(tab, val_tokens, chunks, n, score):
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(tab, ci)
                    lo, hi = ci * n, (ci + 1) * n
                    tally(tab, val_tokens[lo:hi + 1])
                return loss_sum
            eval_bigram(np.zeros((8, 8)), torch.load("fineweb_val_000000.pt"), 1, 1, None)
            """,
            lines=(12,),
        ),
        Invalid(
            code="""
            import numpy as np
            import torch
            import torch.nn.functional as F
            class Memo:
                def __init__(self, n):
                    self.hits = np.zeros(n)
                def put(self, seq):
                    np.add.at(self.hits, seq, 1)
            def eval_windows(model, memo, val_tokens, starts, span, stride, n, chunks):
                groups = [[] for _ in range(chunks)]
                for ws in starts:
                    off = 0 if ws == 0 else span - stride
                    first = ws + off
                    groups[min(first // n, chunks - 1)].append(ws)
                loss_sum = 0.0
                for ci in range(chunks):
                    for ws in groups[ci]:
                        w = val_tokens[ws:ws + span + 1]
                        with torch.no_grad():
                            nll = F.cross_entropy(model(w[:-1]), w[1:], reduction="none")
                        s = 0 if ws == 0 else span - stride
                        loss_sum += nll[s:span].sum()
                    memo.put(val_tokens[ci * n:(ci + 1) * n + 1])
                return loss_sum
            eval_windows(None, Memo(8), torch.load("fineweb_val_000000.pt"), [0], 4, 2, 4, 1)
            """,
            lines=(23,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        for scope in index.scopes:
            candidates = []
            for call in scope.calls:
                for arg in call.node.args:
                    value = arg.value
                    if not isinstance(value, cst.Subscript) or len(value.slice) != 1:
                        continue
                    element = value.slice[0].slice
                    if not isinstance(element, cst.Slice) or not _plus_one(element.upper) or element.lower is None:
                        continue
                    if not flow.fact(value.value, scope).has("val", "tok"):
                        continue
                    how = self._fills(flow, call, value)
                    if how is not None:
                        candidates.append((call, value, how))
            if not candidates:
                continue
            events = score_events(index, scope, evidence.program)
            assigned = None
            for call, value, (how, confidence) in candidates:
                if not any(e.stmt.order < call.stmt.order for e in events):
                    continue  # no scoring before it in this function: not a post-score update
                details = {"update": index.code(call.node, 120), "slice_end": index.code(value.slice[0].slice.upper, 60), "fills": how}
                note = ""
                if assigned is None:
                    assigned = by_scored_start(index, scope, evidence.program) or False
                if assigned:
                    confidence = Confidence.LOW
                    line = index.line(assigned.stmt.node)
                    details["windows_assigned_by"] = {
                        "code": index.code(assigned.stmt.node, 120), "line": line,
                        "scored_start": assigned.offset, "scored_slice_line": assigned.scored_at,
                    }
                    note = (
                        f"; windows are assigned to chunks by their first scored position (line {line}), "
                        "so the extra token may already be scored, as in PR #825: the runtime probe decides"
                    )
                yield self.report(
                    source, call.node, call.stmt,
                    f"the state update `{index.code(call.node, 80)}` reaches one token past the chunk it just scored"
                    + note,
                    evidence=details, confidence=confidence,
                )

    @staticmethod
    def _fills(flow, call, value: cst.Subscript) -> tuple[str, Confidence] | None:
        """How a call puts the sliced tokens into state, and how sure that is: the submission's
        own callee by what it writes, another object's method by its name (less sure)."""
        made = fills(flow, call, labels=("val", "tok"))
        if made is None:
            if isinstance(call.node.func, cst.Attribute) and _UPDATE_NAME.match(call.method):
                return "a method of an object the submission does not define", Confidence.LOW
            return None
        for fill in made:
            if fill.argument is value:
                return fill.where, Confidence.MEDIUM
        return None

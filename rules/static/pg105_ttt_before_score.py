"""PG105 ttt-before-score."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.flow import names_in
from auditor.static.index import SourceIndex
from auditor.static.training import (
    common_loop,
    is_epoch_loop,
    loss_names,
    score_events,
    scored_after,
    scored_before,
    training_sites,
)

#: Calls that fill a cache or table from a token stream.
_FILL = re.compile(r"^(update|update_range|build|build_full|build_cache|add|add_tokens|fit|prefill|observe|count|ingest|extend|warm|warm_start|accumulate)\w*$", re.I)
_NLL_NAME = re.compile(r"nll|loss|bits|logp|log_prob|lp\b", re.I)


class TttBeforeScore(StaticRule):
    """
    ## What it does
    Finds evaluation loops that score a token after state built from it already exists:

    - test-time training that trains on a chunk and scores that chunk afterwards, inside the
      same loop (train first, score second);
    - multi-epoch TTT that scores in every epoch, so that from the second epoch on every
      token is scored by a model already trained on it;
    - two-pass rescoring: a cache filled from the whole validation stream, then the stream
      scored against it;
    - the minimum over several passes' per-token losses (`torch.stack(nlls).min(0)`).

    ## Why is this bad?
    Each validation token must be scored once, left to right, before it enters any state
    (issue #1017, conditions C3 and C4). PR #568 reported the last of 5 TTT epochs
    ("multi-epoch TTT … training on eval data", valerio-oai); the two-pass rescoring PRs
    #846–#959 were closed, #959 noting that the logical endpoint is near-zero BPB; PR #573's
    per-token `min(NLL)` over three adaptation runs was closed.

    ## Example
    ```python
    for ci in range(num_chunks):
        chunk = val_tokens[ci * n:(ci + 1) * n + 1]
        model(chunk[:-1], chunk[1:]).backward()      # trains on the chunk ...
        opt.step()
        with torch.inference_mode():
            loss_sum += score(model, chunk)          # ... then scores it
    ```

    ## Use instead
    Score the chunk first (under `torch.inference_mode()`), add its loss to the total, and
    only then train on it; report that single pass.

    ## References
    - R-1017-C3, R-1017-C4, R-MULTI-EPOCH-RESCORE, R-TWO-PASS-RESCORE, R-MIN-OVER-PASSES.
    - PR #568, #573, #959; issues #677 and #1017.
    """

    CODE = "PG105"
    NAME = "ttt-before-score"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1017", "#677", "#568", "R-1017-C3", "R-1017-C4")
    TAGS = ("ttt_before_score",)
    VALID = (
        Valid(
            code="""
            import torch
            def eval_ttt(model, opt, val_tokens, chunks, span):
                loss_sum = 0.0
                for ci in range(chunks):
                    chunk = val_tokens[ci * span:(ci + 1) * span + 1]
                    with torch.inference_mode():
                        loss_sum += model(chunk[:-1], chunk[1:]).item()
                    for epoch in range(3):
                        model(chunk[:-1], chunk[1:]).backward()
                        opt.step()
                return loss_sum
            eval_ttt(None, None, None, 2, 4)
            """,
            note="score-first, then several epochs on the scored chunk",
        ),
        Valid(
            code="""
            import torch
            def eval_cache(cache, val_np, chunks, span, score):
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(val_np[ci * span:(ci + 1) * span])
                    cache.update(val_np[ci * span:(ci + 1) * span])
                return loss_sum
            eval_cache(None, None, 2, 4, None)
            """,
            note="a cache updated with each chunk after it is scored",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            def eval_ttt(model, opt, val_tokens, chunks, span):
                loss_sum = 0.0
                for ci in range(chunks):
                    chunk = val_tokens[ci * span:(ci + 1) * span + 1]
                    loss = model(chunk[:-1], chunk[1:])
                    loss.backward()
                    opt.step()
                    with torch.inference_mode():
                        loss_sum += model(chunk[:-1], chunk[1:]).item()
                return loss_sum
            eval_ttt(None, None, torch.load("fineweb_val_000000.pt"), 2, 4)
            """,
            lines=(7,),
        ),
        Invalid(
            code="""
            import torch
            def eval_two_pass(cache, val_np, chunks, span, score):
                cache.build_full(val_np)
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(cache, val_np[ci * span:(ci + 1) * span])
                return loss_sum
            eval_two_pass(None, torch.load("fineweb_val_000000.pt").numpy(), 2, 4, None)
            """,
            lines=(3,),
        ),
        Invalid(
            code="""
            import torch
            def best_of_runs(run, val_tokens, seeds):
                nlls = [run(val_tokens, seed) for seed in seeds]
                per_token = torch.stack(nlls).min(dim=0).values
                return per_token.mean()
            best_of_runs(None, torch.load("fineweb_val_000000.pt"), [1, 2, 3])
            """,
            lines=(4,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        yield from self._train_then_score(evidence, source, index)
        yield from self._two_pass(evidence, source, index)
        yield from self._min_over_passes(source, index)

    # TTT that trains before it scores, or rescores in every epoch --------------------------

    def _train_then_score(self, evidence: Evidence, source: PythonSource, index: SourceIndex) -> Iterable[Finding]:
        program = evidence.program
        for site in training_sites(index):
            if not site.fact.has("val") or site.fact.has("grad"):
                continue
            events = score_events(index, site.scope, program)
            loss = loss_names(site)
            before = scored_before(site.stmt, events, loss)
            if before is not None:
                # Score-first inside the chunk loop; an epoch loop around both rescored chunks.
                loop = common_loop(before.stmt, site.stmt)
                outer = [lp for lp in before.stmt.loops if is_epoch_loop(lp) and lp in site.stmt.loops]
                if outer and loop is not None and loop is not outer[-1]:
                    yield self.report(
                        source, before.node, before.stmt,
                        f"each epoch of `{index.code(outer[-1].iter, 60)}` scores the validation chunks again after "
                        "training on them in the previous epoch; only the first pass may be reported",
                        evidence={"scores": before.what, "trains_line": index.line(site.call.node),
                                  "epoch_loop_line": index.line(outer[-1])},
                        sources=("#568", "R-MULTI-EPOCH-RESCORE"),
                    )
                continue
            after = scored_after(site.stmt, events, loss)
            if after is None:
                continue
            loop = common_loop(site.stmt, after.stmt)
            if loop is None or is_epoch_loop(loop):
                continue  # a separate training pass: PG104
            yield self.report(
                source, site.call.node, site.stmt,
                f"{site.scope.qualname} trains on a validation chunk before scoring it in the same loop "
                f"(scored at line {index.line(after.stmt.node)}: {after.what})",
                evidence={"loss": index.code(site.loss, 80), "loop": index.code(loop.iter if isinstance(loop, cst.For) else loop.test, 80),
                          "loop_line": index.line(loop), "scored_line": index.line(after.stmt.node)},
            )

    # two-pass rescoring ----------------------------------------------------------------

    def _two_pass(self, evidence: Evidence, source: PythonSource, index: SourceIndex) -> Iterable[Finding]:
        flow = self.flow(source)
        program = evidence.program
        for scope in index.scopes:
            fills = []
            for call in scope.calls:
                if not isinstance(call.node.func, cst.Attribute) or not _FILL.match(call.method):
                    continue
                for arg in call.node.args:
                    if isinstance(arg.value, (cst.Name, cst.Attribute)):
                        fact = flow.fact(arg.value, scope)
                        if fact.has("val") and not call.stmt.loops:
                            fills.append((call, index.code(arg.value, 60)))
                            break
            if not fills:
                continue
            events = score_events(index, scope, program)
            for call, stream in fills:
                later = [e for e in events if e.stmt.order > call.stmt.order and common_loop(e.stmt, call.stmt) is None]
                if not later:
                    continue
                yield self.report(
                    source, call.node, call.stmt,
                    f"`{index.code(call.node.func, 60)}` fills its state from the whole validation stream "
                    f"(`{stream}`) before the stream is scored (line {index.line(later[0].stmt.node)}): a second pass "
                    "scores every token with statistics that include it",
                    evidence={"stream": stream, "scored_line": index.line(later[0].stmt.node), "scores": later[0].what},
                    sources=("R-TWO-PASS-RESCORE", "#959"),
                )

    # min over passes -------------------------------------------------------------------

    def _min_over_passes(self, source: PythonSource, index: SourceIndex) -> Iterable[Finding]:
        flow = self.flow(source)
        for scope in index.scopes:
            for call in scope.calls:
                node = call.node
                if call.method not in ("min", "amin", "minimum") or not isinstance(node.func, cst.Attribute):
                    continue
                receiver = node.func.value
                stacked = isinstance(receiver, cst.Call) and (getattr(receiver.func, "attr", None) is not None) and receiver.func.attr.value in ("stack", "vstack")
                if call.qualified in ("torch.min", "numpy.min", "np.min", "torch.amin", "numpy.amin") and node.args:
                    first = node.args[0].value
                    stacked = isinstance(first, cst.Call) and getattr(first.func, "attr", None) is not None and first.func.attr.value in ("stack", "vstack")
                    receiver = first
                if not stacked:
                    continue
                inner = receiver.args[0].value if isinstance(receiver, cst.Call) and receiver.args else None
                if inner is None:
                    continue
                names = names_in(inner)
                fact = flow.fact(inner, scope)
                if not (fact.has("tgtdep", "val") or any(_NLL_NAME.search(n) for n in names)):
                    continue
                yield self.report(
                    source, node, call.stmt,
                    f"per-token minimum over several passes' losses (`{index.code(node, 80)}`): each token keeps "
                    "its best score, which no single left-to-right pass produced",
                    evidence={"expression": index.code(node, 120)},
                    sources=("R-MIN-OVER-PASSES", "#573"),
                )

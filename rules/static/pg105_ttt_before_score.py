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
from auditor.static.effects import fills
from auditor.static.flow import depends, names_in
from auditor.static.index import SourceIndex
from auditor.static.names import dotted
from auditor.static.training import (
    common_loop,
    is_epoch_loop,
    loss_names,
    per_pass_losses,
    reported,
    score_events,
    scored_after,
    scored_before,
    training_sites,
)

#: Tie-breaker only: how a fill of a cache that is not the submission's own (a library's
#: object, whose code is not here) is usually called. The submission's own callees are
#: judged by what they write (:mod:`auditor.static.effects`), never by this.
_FILL_NAME = re.compile(r"^(update|build|add|fit|prefill|observe|count|ingest|extend|warm|accumulate)\w*$", re.I)
#: Tie-breaker only: per-pass losses named so, where their provenance is not visible.
_NLL_NAME = re.compile(r"nll|loss|bits|logp|log_prob|lp\b", re.I)


class TttBeforeScore(StaticRule):
    """
    ## What it does
    Finds evaluation loops that score a token after state built from it already exists:

    - test-time training that trains on a chunk and scores that chunk afterwards, inside the
      same loop (train first, score second);
    - multi-epoch TTT that scores in every epoch, so that from the second epoch on every
      token is scored by a model already trained on it;
    - two-pass rescoring: a cache filled from the whole validation stream, then that same
      stream scored (a later scoring in the function computed from it). A call fills state when it is handed validation data (by
      provenance) and the submission's callee keeps it — writes it into its object
      (`self.counts[key] += 1`, `np.add.at(self.hits, toks, 1)`, `.index_add_`,
      `.scatter_add_`, a list grown), into a table its caller passed and keeps
      (`tally(tab, toks)`), or into a table it returns — followed through the callee's own
      calls and across the submission's modules. The callee's name plays no part:
      `absorb_block`, `put` and `tally` are found like `update`, and an `update` that only
      reads its state is not a fill;
    - the minimum over several passes' per-token losses (`torch.stack(nlls).min(0)`), where
      the stacked values are losses by provenance: computed from the scored target, from a
      pass over the validation data, or returned by one of the submission's scoring
      functions.

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

    table.absorb_block(val_np)                       # the whole stream enters the table ...
    for ci in range(num_chunks):
        loss_sum += score(table, val_np[ci * n:(ci + 1) * n])   # ... then is scored with it
    ```

    ## Use instead
    Score the chunk first (under `torch.inference_mode()`), add its loss to the total, and
    only then train on it or put it into the cache; report that single pass.

    ## Known problems
    Calls are resolved by name across the submission's modules (narrowed to the receiver's
    class where the calling function constructs it); a fill of an object the submission does
    not define (a library's cache) is recognized by its method's name only, at medium
    confidence, and so is a minimum over losses whose provenance is not visible. A whole-
    stream fill counts when the stream itself is passed (`cache.put(val_np)`); a fill
    written inline in the eval function, or from a slice covering the whole stream, is not
    seen. Fills inside the chunk loop are left to the order inside the loop (score first).

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
        Valid(
            code="""
            import numpy as np
            import torch
            class Table:
                def __init__(self, n):
                    self.hits = np.zeros(n)
                def absorb_block(self, a):
                    np.add.at(self.hits, a, 1)
                def prob(self, a):
                    return self.hits[a] / max(self.hits.sum(), 1)
            def eval_cache(tab, val_np, chunks, span):
                loss_sum = 0.0
                for ci in range(chunks):
                    block = val_np[ci * span:(ci + 1) * span]
                    with torch.no_grad():
                        loss_sum += -np.log(tab.prob(block) + 1e-9).sum()
                    tab.absorb_block(block)
                return loss_sum
            eval_cache(Table(8), torch.load("fineweb_val_000000.pt").numpy(), 2, 4)
            """,
            note="score-first: each block enters the table after it is scored, in the same loop",
        ),
        Valid(
            code="""
            import numpy as np
            import torch
            def tally(tab, toks):
                for a, b in zip(toks[:-1], toks[1:]):
                    tab[a, b] += 1
            def eval_bigram(tab, val_np, score):
                tally(tab, np.load("fineweb_train_000001.npy"))
                loss_sum = 0.0
                with torch.no_grad():
                    loss_sum += score(tab, val_np)
                return loss_sum
            eval_bigram(np.zeros((8, 8)), torch.load("fineweb_val_000000.pt").numpy(), None)
            """,
            note="the table is filled from training data, not from the validation stream",
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
            def eval_stats(stats, val_np, chunks, span, score):
                prior = stats.update(val_np)
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(val_np[ci * span:(ci + 1) * span], prior)
                return loss_sum
            eval_stats(Stats(8), torch.load("fineweb_val_000000.pt").numpy(), 2, 4, None)
            """,
            note="a method named `update` that only reads its state: nothing is filled",
        ),
        Valid(
            code="""
            import torch
            def narrowest(blocks):
                widths = [b.weight.abs().amax(dim=1) for b in blocks]
                return torch.stack(widths).min(dim=0).values
            """,
            note="a minimum over stacked values that are no pass's losses",
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
            import numpy as np
            import torch
            class Table:
                def __init__(self, n):
                    self.hits = np.zeros((n, n))
                def absorb_block(self, a):
                    for i in range(len(a) - 1):
                        self.hits[a[i], a[i + 1]] += 1
            def eval_table(tab, val_np, chunks, span, score):
                tab.absorb_block(val_np)
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(tab, val_np[ci * span:(ci + 1) * span])
                return loss_sum
            eval_table(Table(8), torch.load("fineweb_val_000000.pt").numpy(), 2, 4, None)
            """,
            lines=(10,),
        ),
        Invalid(
            code="""
            import numpy as np
            import torch
            class Memo:
                def __init__(self, n):
                    self.seen = {}
                def put(self, seq):
                    for t in seq.tolist():
                        self._bump(t)
                def _bump(self, t):
                    self.seen[t] = self.seen.get(t, 0) + 1
            def eval_memo(memo, val_np, chunks, span, score):
                memo.put(val_np)
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(memo, val_np[ci * span:(ci + 1) * span])
                return loss_sum
            eval_memo(Memo(8), torch.load("fineweb_val_000000.pt").numpy(), 2, 4, None)
            """,
            lines=(12,),
        ),
        Invalid(
            code="""
            import numpy as np
            import torch
            def tally(tab, toks):
                for a, b in zip(toks[:-1], toks[1:]):
                    tab[a, b] += 1
            def eval_bigram(tab, val_np, chunks, span, score):
                tally(tab, val_np)
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(tab, val_np[ci * span:(ci + 1) * span])
                return loss_sum
            eval_bigram(np.zeros((8, 8)), torch.load("fineweb_val_000000.pt").numpy(), 2, 4, None)
            """,
            lines=(7,),
        ),
        Invalid(
            code="""
            import torch
            from ngram_tables import Counts
            def eval_counts(val_np, chunks, span, score):
                counts = Counts(8)
                counts.ingest_all(val_np)
                loss_sum = 0.0
                for ci in range(chunks):
                    with torch.no_grad():
                        loss_sum += score(counts, val_np[ci * span:(ci + 1) * span])
                return loss_sum
            eval_counts(torch.load("fineweb_val_000000.pt").numpy(), 2, 4, None)
            """,
            files={
                "ngram_tables.py": (
                    "import numpy as np\n"
                    "class Counts:\n"
                    "    def __init__(self, n):\n"
                    "        self.table = np.zeros(n)\n"
                    "    def ingest_all(self, toks):\n"
                    "        self.table.index_add_(0, toks, np.ones(len(toks)))\n"
                ),
            },
            lines=(5,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def per_position(m, a, b):
                with torch.no_grad():
                    return F.cross_entropy(m(a), b, reduction="none")
            def pick(models, a, b):
                outs = [per_position(m, a, b) for m in models]
                kept = torch.stack(outs).min(dim=0).values
                return kept.mean()
            """,
            lines=(8,),
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
        yield from self._min_over_passes(evidence, source, index)

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
            events = None
            for call in scope.calls:
                if call.stmt.loops:
                    continue  # chunk by chunk: the order inside the loop decides (score first)
                if events is None:
                    events = score_events(index, scope, program)
                later = [e for e in events if e.stmt.order > call.stmt.order and common_loop(e.stmt, call.stmt) is None]
                if not later:
                    continue  # nothing scored after it here
                whole = self._whole_stream_fill(flow, call)
                if whole is None:
                    continue
                stream, how, confidence = whole
                later = [e for e in later if stream in depends(scope, names_in(e.node), limit=200)]
                if not later:
                    continue  # what is scored afterwards is not that stream
                yield self.report(
                    source, call.node, call.stmt,
                    f"`{index.code(call.node.func, 60)}` fills its state from the whole validation stream "
                    f"(`{stream}`) before the stream is scored (line {index.line(later[0].stmt.node)}): a second pass "
                    "scores every token with statistics that include it",
                    evidence={"stream": stream, "fills": how, "scored_line": index.line(later[0].stmt.node), "scores": later[0].what},
                    confidence=confidence,
                    sources=("R-TWO-PASS-RESCORE", "#959"),
                )

    @staticmethod
    def _whole_stream_fill(flow, call) -> tuple[str, str, Confidence] | None:
        """(stream, how, confidence) when a call puts the whole validation stream into state.

        The submission's own callee decides by what it writes (a table keyed by the tokens, counts
        added, a history grown); a callee that is not the submission's is judged by its name, with
        less confidence."""
        scope = call.stmt.scope
        whole = [
            a.value for a in call.node.args
            if isinstance(a.value, (cst.Name, cst.Attribute)) and flow.fact(a.value, scope).has("val")
        ]
        if not whole:
            return None
        made = fills(flow, call)
        if made is None:
            if not isinstance(call.node.func, cst.Attribute) or not _FILL_NAME.match(call.method):
                return None
            return dotted(whole[0]) or "", "a method of an object the submission does not define", Confidence.MEDIUM
        for fill in made:
            if any(fill.argument is value for value in whole):
                return dotted(fill.argument) or "", fill.where, Confidence.HIGH
        return None

    # min over passes -------------------------------------------------------------------

    def _min_over_passes(self, evidence: Evidence, source: PythonSource, index: SourceIndex) -> Iterable[Finding]:
        flow = self.flow(source)
        program = evidence.program
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
                why = per_pass_losses(flow, scope, inner, program)
                confidence = Confidence.HIGH
                if not why:  # no provenance: the name is the tie-breaker
                    names = sorted(n for n in names_in(inner) if _NLL_NAME.search(n))
                    if not names:
                        continue
                    why, confidence = f"named `{names[0]}`", Confidence.MEDIUM
                if not reported(index, call.stmt, program):
                    confidence = Confidence.MEDIUM
                yield self.report(
                    source, node, call.stmt,
                    f"per-token minimum over several passes' losses (`{index.code(node, 80)}`): each token keeps "
                    "its best score, which no single left-to-right pass produced",
                    evidence={"expression": index.code(node, 120), "losses": why},
                    confidence=confidence,
                    sources=("R-MIN-OVER-PASSES", "#573"),
                )

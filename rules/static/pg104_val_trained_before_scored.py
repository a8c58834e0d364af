"""PG104 val-trained-before-scored."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity, Status
from auditor.rule import Invalid, Valid
from auditor.scored.producers import printed_callees
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.flow import flow_of
from auditor.static.training import (
    common_loop,
    is_epoch_loop,
    looks_like_warmup,
    loss_names,
    module_outputs_returned,
    score_events,
    scored_after,
    scored_before,
    throwaway_modules,
    training_sites,
    val_reaches,
    val_source,
)


class ValTrainedBeforeScored(StaticRule):
    """
    ## What it does
    Finds gradient steps on validation tokens that run in a pass of their own before those
    tokens are scored: "pre-quantization TTT" (`ttt_adapt_adamw(args, model, device,
    val_tokens)` for N epochs, then quantize and evaluate), full-weight TTT over the whole
    validation set before the final eval, and the same loop written inline in `main`. A
    training step counts when its loss is computed from a batch sliced out of validation
    tokens (followed through `local = val_tokens[a:b]`, `x = local[:-1]`, …) and neither
    its function nor the call site scores those tokens first inside the same loop.

    ## Why is this bad?
    The README allows test-time training only "on validation set tokens you've already
    evaluated your model on". Fine-tuning on the validation set and then scoring it measures
    memorization of the test set: the maintainers closed PR #1376 for it, cocohearts ruled
    PR #1972 "score-after-adapt on validation data", and leaderboard PR #1902 excludes
    "pre-quant/future-validation leakage". It breaks condition C3 (score before update) of
    issue #1017.

    ## Example
    ```python
    def ttt_adapt(args, model, device, val_tokens):
        for epoch in range(args.ttt_epochs):
            for start in range(0, total, step):
                local = val_tokens[start:start + span + 1].to(device)
                loss = model(local[:-1], local[1:])
                loss.backward()
                optimizer.step()

    ttt_adapt(args, model, device, val_tokens)   # adapt on val ...
    val_loss, val_bpb = eval_val(args, model, val_tokens)   # ... then score it
    ```

    ## Use instead
    Score-first TTT: split the validation tokens into chunks; score each chunk under
    `torch.inference_mode()` and add its loss to the total, then train on that chunk (any
    number of epochs); never train on the last chunk. Merged examples: PR #549, #1413,
    #1493.

    A step that updates only modules its function builds and drops (a linear probe fitted on
    frozen hidden states for a diagnostic: the optimizer is built over `probe.parameters()`,
    and `probe` is neither returned, stored, nor passed on) changes no model that is scored
    later, and is not reported, unless what the function returns is computed with it and may
    be the claimed score (the claimed line prints a value its call returned, or no seed log
    names the claimed line).

    ## Known problems
    A compile warm-up that runs a few steps on validation tokens and then discards the
    adapted weights (PR #1530, tolerated) is reported as a warning, not an error. A guard
    that cannot be evaluated (a flag passed as an argument) leaves the finding active.

    ## References
    - README, "you are only allowed to test-time train on validation set tokens you've
      already evaluated your model on".
    - R-PRE-EVAL-TTT, R-PREQUANT-TTT, R-VAL-WARMUP; issues #402 and #677; PR #1376, #1972,
      #1902; issue #1017 condition C3.
    """

    CODE = "PG104"
    NAME = "val-trained-before-scored"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "#677", "#1376", "#1972", "R-PREQUANT-TTT", "R-PRE-EVAL-TTT")
    TAGS = ("prequant_ttt",)
    VALID = (
        Valid(
            code="""
            import torch
            def step(model, opt, x, y):
                model(x, y).backward()
                opt.step()
            def train(model, opt, loader, steps):
                for _ in range(steps):
                    x, y = loader.next_batch()
                    step(model, opt, x, y)
            def eval_ttt(model, opt, tokens, chunks, span):
                total = 0.0
                for ci in range(chunks):
                    chunk = tokens[ci * span:(ci + 1) * span + 1]
                    with torch.no_grad():
                        total += model(chunk[:-1], chunk[1:]).item()
                    step(model, opt, chunk[:-1], chunk[1:])
                return total
            train(None, None, None, 10)
            eval_ttt(None, None, torch.load("fineweb_val_000000.pt"), 4, 1024)
            """,
            note="one training step shared by training and score-first TTT: the TTT call scores first",
        ),
        Valid(
            code="""
            import torch
            def eval_ttt(model, opt, val_tokens, chunks, span):
                loss_sum = 0.0
                for ci in range(chunks):
                    local = val_tokens[ci * span:(ci + 1) * span + 1]
                    with torch.inference_mode():
                        loss_sum += model(local[:-1], local[1:]).item()
                    if ci < chunks - 1:
                        for _ in range(3):
                            loss = model(local[:-1], local[1:])
                            loss.backward()
                            opt.step()
                return loss_sum
            eval_ttt(None, None, None, 2, 4)
            """,
            note="score-first TTT: each chunk is scored before any step trains on it",
        ),
        Valid(
            code="""
            def train(model, opt, loader, steps):
                for step in range(steps):
                    x, y = loader.next_batch()
                    loss = model(x, y)
                    loss.backward()
                    opt.step()
            def main(model, opt, loader, val_tokens):
                train(model, opt, loader, 100)
                return eval_val(model, val_tokens)
            main(None, None, None, None)
            """,
            note="training on training batches, then scoring validation",
        ),
        Valid(
            code="""
            import os
            PREQUANT_EPOCHS = int(os.environ.get("PREQUANT_TTT_EPOCHS", "0"))
            def main(model, opt, val_tokens):
                for epoch in range(PREQUANT_EPOCHS):
                    local = val_tokens[:1025]
                    model(local[:-1], local[1:]).backward()
                    opt.step()
                return eval_val(model, val_tokens)
            main(None, None, None)
            """,
            note="switched off by default (zero epochs): inactive",
        ),
        Valid(
            code="""
            import torch
            from torch import nn
            def probe_diagnostic(model, val_tokens, dim, vocab):
                with torch.no_grad():
                    hidden = model.encode(val_tokens[:-1])
                head = nn.Linear(dim, vocab).to(hidden.device)
                opt = torch.optim.Adam(head.parameters(), lr=1e-3)
                for _ in range(200):
                    loss = nn.functional.cross_entropy(head(hidden), val_tokens[1:])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                print(f"probe_loss:{loss.item():.4f}")
            def main(model, val_tokens):
                probe_diagnostic(model, val_tokens, 512, 1024)
                return eval_val(model, val_tokens)
            main(None, load_tokens("fineweb_val_000000.bin"))
            """,
            note="a linear probe built, fitted and dropped inside its function: the scored model never changes",
        ),
        Valid(
            code="""
            import torch
            def main(model, opt, loader, val_tokens):
                for step in range(100):
                    x, y = loader.next_batch()
                    loss = model(x, y)
                    loss.backward()
                    opt.step()
                total = 0.0
                for start in range(0, val_tokens.numel() - 1025, 1024):
                    local = val_tokens[start:start + 1025]
                    x, y = local[:-1], local[1:]
                    with torch.no_grad():
                        total += model(x, y).item()
                    loss = model(x, y)
                    loss.backward()
                    opt.step()
                return total
            main(None, None, None, load_tokens("fineweb_val_000000.bin"))
            """,
            note="training, then score-first TTT in the same function with the same names: the training loop's `x` is the loader's",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            def ttt_adapt(args, model, opt, val_tokens):
                for epoch in range(args.ttt_epochs):
                    for start in range(0, val_tokens.numel() - 1025, 1024):
                        local = val_tokens[start:start + 1025]
                        x, y = local[:-1], local[1:]
                        loss = model(x, y)
                        loss.backward()
                        opt.step()
            def main(args, model, opt, val_tokens):
                ttt_adapt(args, model, opt, val_tokens)
                return eval_val(args, model, val_tokens)
            main(None, None, None, load_tokens("fineweb_val_000000.bin"))
            """,
            lines=(7,),
        ),
        Invalid(
            code="""
            def main(args, model, opt, val_data):
                for epoch in range(args.prequant_ttt_epochs):
                    for s in range(0, 4096, 1024):
                        chunk = val_data.val_tokens[s:s + 1025]
                        loss = model(chunk[:-1], chunk[1:])
                        loss.backward()
                        opt.step()
                quantize(model)
                return eval_val_sliding(args, model, val_data)
            main(None, None, None, None)
            """,
            lines=(6,),
        ),
        Invalid(
            code="""
            import os
            EPOCHS = int(os.environ.get("PREQUANT_TTT_EPOCHS", "0"))
            def main(model, opt, val_tokens):
                for epoch in range(EPOCHS):
                    local = val_tokens[:1025]
                    model(local[:-1], local[1:]).backward()
                    opt.step()
                return eval_val(model, val_tokens)
            main(None, None, load_tokens("fineweb_val_000000.bin"))
            """,
            lines=(6,),
            status=Status.INACTIVE,
        ),
        Invalid(
            code="""
            import torch
            from torch import nn
            def fit_head(model, val_tokens, dim, vocab):
                with torch.no_grad():
                    hidden = model.encode(val_tokens[:-1])
                head = nn.Linear(dim, vocab)
                opt = torch.optim.Adam(head.parameters(), lr=1e-3)
                for _ in range(200):
                    loss = nn.functional.cross_entropy(head(hidden), val_tokens[1:])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                model.lm_head = head
            def main(model, val_tokens):
                fit_head(model, val_tokens, 512, 1024)
                return eval_val(model, val_tokens)
            main(None, load_tokens("fineweb_val_000000.bin"))
            """,
            lines=(11,),
            note="the head fitted on validation tokens becomes the scored model's head",
        ),
        Invalid(
            code="""
            import torch
            from torch import nn
            def head_bpb(model, val_tokens, dim, vocab):
                with torch.no_grad():
                    hidden = model.encode(val_tokens[:-1])
                head = nn.Linear(dim, vocab)
                opt = torch.optim.Adam(head.parameters(), lr=1e-3)
                for _ in range(200):
                    loss = nn.functional.cross_entropy(head(hidden), val_tokens[1:])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                return nn.functional.cross_entropy(head(hidden), val_tokens[1:]).item()
            def main(model, val_tokens):
                print(f"val_bpb:{head_bpb(model, val_tokens, 512, 1024):.4f}")
            main(None, load_tokens("fineweb_val_000000.bin"))
            """,
            lines=(11,),
            note="a head fitted on validation tokens whose loss on them is returned, with no log to say which line is claimed",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        program = evidence.program
        for site in training_sites(index):
            if not site.fact.has("val") or site.fact.has("grad"):
                continue  # not validation data, or per-window parameters (PG103's SLOT)
            if not val_reaches(flow, site.scope, site.loss, site.stmt):
                continue  # validation data only under a later binding of the loss's names
            scope = site.scope
            events = score_events(index, scope, program)
            loss = loss_names(site)
            if scored_before(site.stmt, events, loss) is not None:
                continue  # score-first
            after = scored_after(site.stmt, events, loss)
            callers = []
            if after is None and self._fits_a_throwaway(evidence, index, site):
                continue
            if after is None:
                # An adapter function: how is it called? Score-first at the call site is legal.
                callers = self._unprotected_callers(program, scope)
                if callers is None:
                    continue
            if after is not None and self._chunk_loop(site, after):
                continue  # trains on a chunk, then scores it in the same loop: PG105
            yield self._finding(evidence, source, index, flow, site, after, callers)

    @staticmethod
    def _fits_a_throwaway(evidence: Evidence, index, site) -> bool:
        """The step updates only modules its function builds and drops (a probe fitted for a
        diagnostic), so no model scored later changes; unless what the function returns,
        computed with them, may be the claimed score (the claimed line prints a value its call
        returned, or no seed log names the claimed line)."""
        modules = throwaway_modules(index, site)
        if not modules:
            return False
        if not module_outputs_returned(site.scope, modules):
            return True
        runs = [run for run in evidence.scored.runs if run.stage]
        if not runs:
            return False
        for run in runs:
            printed = run.stage_printed_by()
            if printed is None or site.scope.name in printed_callees(printed.format):
                return False
        return True

    def _chunk_loop(self, site, after) -> bool:
        """Training and scoring share a loop over chunks (not over epochs of the whole set)."""
        loop = common_loop(site.stmt, after.stmt)
        return loop is not None and not is_epoch_loop(loop)

    def _unprotected_callers(self, program, scope):
        """Call sites of an adapter that are not preceded by scoring in a loop (None: all protected)."""
        refs = [s for s in program.referrers.get(scope.name, ()) if s.scope is not scope]
        if not refs:
            return []
        # A step shared by training and test-time training: only the calls that pass it
        # validation data matter (when some do; else the validation data is its own).
        with_val = [s for s in refs if self._passes_val(program.index_of_scope[id(s.scope)], s, scope.name)]
        refs = with_val or refs
        found = []
        for stmt in refs:
            caller_index = program.index_of_scope[id(stmt.scope)]
            events = score_events(caller_index, stmt.scope, program)
            if scored_before(stmt, events) is not None:
                continue
            found.append(stmt)
        return found or None

    @staticmethod
    def _passes_val(index, stmt, name: str) -> bool:
        """Whether the calls of ``name`` in a statement pass validation data."""
        calls = [c for c in stmt.scope.calls if c.stmt is stmt and c.method == name]
        flow = flow_of(index)
        return any(flow.fact(arg.value, stmt.scope).has("val") for call in calls for arg in call.node.args)

    def _finding(self, evidence, source, index, flow, site, after, callers) -> Finding:
        scope = site.scope
        where = "the module level" if scope.is_module else scope.qualname
        details = {"loss": index.code(site.loss, 100), "trains_on": site.fact.reason("val")}
        val = val_source(index, flow, scope)
        if val is not None:
            details["val_slice"] = val[0]
            details["val_slice_line"] = index.line(val[1].node)
        if site.stmt.loops:
            outer = site.stmt.loops[0]
            details["loop"] = index.code(outer.iter if hasattr(outer, "iter") else outer.test, 80)
            details["loop_line"] = index.line(outer)
        if after is not None:
            details["scored_after"] = f"line {index.line(after.stmt.node)}: {after.what}"
        call_lines = []
        for stmt in callers or ():
            caller_index = evidence.program.index_of_scope[id(stmt.scope)]
            if caller_index is index:
                call_lines.append(index.line(stmt.node))
        if call_lines:
            details["called_at"] = call_lines
        warmup = looks_like_warmup(index, site)
        if warmup:
            message = (
                f"{where} runs gradient steps on validation tokens before they are scored, in what looks like a "
                f"compile warm-up ('{warmup}'); tolerated in #1530 only if the adapted weights are discarded"
            )
            return self.report(
                source, site.call.node, site.stmt, message, evidence=details,
                severity=Severity.WARNING, confidence=Confidence.MEDIUM, sources=("R-VAL-WARMUP", "#1530"),
            )
        then = f"; they are scored afterwards ({details['scored_after']})" if after is not None else (
            f"; {scope.name} is called at line {call_lines[0]} before the scoring pass" if call_lines else ""
        )
        message = f"{where} trains on validation tokens ({details.get('val_slice', details['trains_on'])}) before they are scored{then}"
        return self.report(source, site.call.node, site.stmt, message, evidence=details)

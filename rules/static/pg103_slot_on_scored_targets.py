"""PG103 slot-on-scored-targets."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource, code_of
from auditor.static.base import StaticRule
from auditor.static.flow import creates_trainable, depends, flow_of, names_in
from auditor.static.index import Scope, SourceIndex, Stmt
from auditor.static.names import dotted
from auditor.static.passing import arguments_for
from auditor.static.reach import Program
from auditor.static.roles import use_roles
from auditor.static.training import in_no_grad, score_events, training_sites

#: Calls that make a new tensor (not a view of the model's weights).
_FRESH = frozenset({"zeros", "ones", "full", "empty", "randn", "rand", "zeros_like", "ones_like", "full_like",
                    "empty_like", "randn_like", "tensor", "clone", "detach"})


def _fresh(value: cst.BaseExpression) -> bool:
    """A new tensor: ``torch.zeros(…)``, ``h.detach().clone()``, optionally moved or cast."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        if value.func.attr.value in _FRESH:
            return True
        if value.func.attr.value not in ("to", "float", "cuda", "contiguous", "requires_grad_"):
            return False
        value = value.func.value
    return isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value in _FRESH


def _clamped_difference(value: cst.BaseExpression) -> bool:
    """``max(wlen - stride, 0)`` (also inside ``0 if ws == 0 else …``): the first scored
    position of a sliding window, by its shape."""
    from auditor.static.index import walk

    for node in walk(value):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "max" and len(node.args) == 2:
            a, b = node.args[0].value, node.args[1].value
            if any(isinstance(x, cst.Integer) and x.value == "0" for x in (a, b)) and any(
                    isinstance(x, cst.BinaryOperation) and isinstance(x.operator, cst.Subtract) for x in (a, b)):
                return True
    return False


def _written_as_mask(scopes: list[Scope], name: str) -> bool:
    """Whether the loss's inputs include a tensor written as a mask: a constant stored into a
    slice of it (``m[i, :s] = True``, ``m[i, s:wlen] = 1.0``). What it is, not its name."""
    for scope in scopes:
        for sub in scope.subscripts:
            if not sub.store or dotted(sub.node.value) != name or not isinstance(sub.node.slice[-1].slice, cst.Slice):
                continue
            node = sub.stmt.node
            value = node.value if isinstance(node, cst.Assign) else None
            if isinstance(value, (cst.Integer, cst.Float)) or (isinstance(value, cst.Name) and value.value in ("True", "False")):
                return True
    return False


def _code(index: SourceIndex, node: cst.CSTNode) -> str:
    return index.code(node, 200)


class SlotOnScoredTargets(StaticRule):
    """
    ## What it does
    Finds SLOT-style evaluation: per-window parameters (a hidden-state `delta`, a
    `logit_bias`) created with `requires_grad=True` (or a constant bound to `True`, as
    minifiers write it: `_B=True` … `requires_grad=_B`), as an `nn.Parameter`, or as a fresh
    tensor that an optimizer of the function is built over, inside the eval loop; optimized
    with a loss on the window's own targets (AdamW steps or L-BFGS closures), and then used to
    score that same window. It reads the mask of the optimization loss: when it covers the scored
    positions (`mask[i, s:wlen] = 1`), or there is no mask at all, the finding is an error; when
    it covers only the already-scored context (`ctx_mask[i, :s] = True`, "causal SLOT"), it
    is a warning, because no ruling exists for that variant.

    ## Why is this bad?
    The parameters that set p_t are chosen by minimizing the loss of x_t itself: the score
    of a token depends on that token (condition C1 of issue #1017) and on the later tokens of
    the window (C3). PR #1240 measured it: flipping one target changes the scores of other
    positions in 240 of 240 pairs, and the "gain" is +0.24 to +0.73 nats of
    self-prediction. SLOT PRs (#675, #1229, #1240, #1329, #1350) were closed and no SLOT
    submission is on the leaderboard.

    ## Example
    ```python
    mask[i, s:wlen] = 1.0                                    # the scored positions
    delta = torch.zeros(bsz, 1, d, device=device, requires_grad=True)
    opt = torch.optim.AdamW([delta], lr=slot_lr)
    for _ in range(slot_steps):
        nll = F.cross_entropy(head(hidden + delta).flatten(0, 1), y.flatten(), reduction="none")
        ((nll.view(bsz, -1) * mask).sum() / mask.sum()).backward()
        opt.step()
    with torch.no_grad():
        nll = F.cross_entropy(head(hidden + delta).flatten(0, 1), y.flatten(), reduction="none")
    ```

    ## Use instead
    Score each window with the parameters fixed before its targets are seen. If adaptation
    is wanted, use score-first test-time training: update on tokens only after they have
    been scored (PR #549).

    ## Known problems
    Context-only ("causal") SLOT, which optimizes on the already-scored prefix of the window
    and scores the new positions, is open (issue #1336); it is reported as a warning.

    ## References
    - R-SLOT, R-SLOT-CAUSAL; PR #1240 (flip test), #1176 (msisovic), #1172; issue #1336.
    - Issue #1017, conditions C1 and C3.
    """

    CODE = "PG103"
    NAME = "slot-on-scored-targets"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1240", "#1017", "R-SLOT")
    TAGS = ("slot",)
    VALID = (
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def eval_val(model, val_tokens, head):
                loss_sum = 0.0
                for ws in range(0, 1024, 64):
                    x = val_tokens[ws:ws + 64]
                    y = val_tokens[ws + 1:ws + 65]
                    with torch.no_grad():
                        loss_sum += F.cross_entropy(head(model(x)), y).item()
                return loss_sum
            eval_val(None, None, None)
            """,
            note="plain scoring, no per-window optimization",
        ),
        Valid(
            code="""
            import torch
            def finetune(model, loader, steps):
                lora = torch.zeros(8, 8, requires_grad=True)
                opt = torch.optim.AdamW([lora], lr=1e-3)
                for _ in range(steps):
                    x, y = loader.next_batch()
                    model(x, y, lora).backward()
                    opt.step()
                return lora
            finetune(None, None, 1)
            """,
            note="a trainable tensor fit on training batches, not on the scored window",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def eval_slot(hidden, val_tokens, head, wlens, stride, steps):
                bsz, n, d = hidden.shape
                y_batch = val_tokens[1:bsz * n + 1].view(bsz, n)
                mask = torch.zeros(bsz, n)
                for i, wlen in enumerate(wlens):
                    s = max(wlen - stride, 0)
                    mask[i, s:wlen] = 1.0
                delta = torch.zeros(bsz, 1, d, requires_grad=True)
                opt = torch.optim.AdamW([delta], lr=0.01)
                for _ in range(steps):
                    nll = F.cross_entropy(head(hidden + delta).flatten(0, 1), y_batch.flatten(), reduction="none")
                    loss = (nll.view(bsz, n) * mask).sum() / mask.sum()
                    loss.backward()
                    opt.step()
                with torch.no_grad():
                    nll = F.cross_entropy(head(hidden + delta.detach()).flatten(0, 1), y_batch.flatten(), reduction="none")
                return nll
            eval_slot(None, torch.load("fineweb_val_000000.pt"), None, [], 64, 8)
            """,
            lines=(10,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def eval_slot(H, val_tokens, head, steps):
                yb = val_tokens[1:]
                delta = torch.zeros(1, 1, H.shape[-1], requires_grad=True)
                opt = torch.optim.AdamW([delta], lr=0.01)
                for _ in range(steps):
                    loss_s = F.cross_entropy(head(H + delta).flatten(0, 1), yb.reshape(-1), reduction="mean")
                    loss_s.backward()
                    opt.step()
                with torch.no_grad():
                    return F.cross_entropy(head(H + delta.detach()).flatten(0, 1), yb.reshape(-1), reduction="none")
            eval_slot(None, torch.load("fineweb_val_000000.pt"), None, 8)
            """,
            lines=(5,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            _A=None;_B=True
            def eval_slot(H,val_tokens,head,steps):
                yb=val_tokens[1:];delta=torch.zeros(1,1,H.shape[-1],requires_grad=_B);opt=torch.optim.AdamW([delta],lr=.01)
                for _ in range(steps):loss_s=F.cross_entropy(head(H+delta).flatten(0,1),yb.reshape(-1));loss_s.backward();opt.step()
                with torch.no_grad():return F.cross_entropy(head(H+delta.detach()).flatten(0,1),yb.reshape(-1),reduction='none')
            eval_slot(_A,torch.load('fineweb_val_000000.pt'),_A,8)
            """,
            lines=(5,),
            note="minified: `True` hoisted into a module constant, as minifiers write it",
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def eval_causal_slot(H, val_tokens, head, wlens, stride, steps):
                bsz, n, d = H.shape
                yb = val_tokens[1:bsz * n + 1].view(bsz, n)
                ctx_mask = torch.zeros(bsz, n, dtype=torch.bool)
                for i, wl in enumerate(wlens):
                    s = max(wl - stride, 0)
                    ctx_mask[i, :s] = True
                delta = torch.zeros(1, 1, d, requires_grad=True)
                opt = torch.optim.AdamW([delta], lr=0.01)
                for _ in range(steps):
                    lg = head(H + delta)
                    F.cross_entropy(lg[ctx_mask], yb[ctx_mask]).backward()
                    opt.step()
                with torch.no_grad():
                    return F.cross_entropy(head(H + delta.detach()).flatten(0, 1), yb.reshape(-1), reduction="none")
            eval_causal_slot(None, torch.load("fineweb_val_000000.pt"), None, [], 64, 8)
            """,
            lines=(10,),
            note="context-only (causal) SLOT: a warning, no ruling",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        seen: set[int] = set()
        for site in training_sites(index):
            if not site.fact.has("grad") or not site.fact.has("tgtdep", "tgt") or not site.fact.has("val"):
                continue
            params = self._params(index, site)
            if not params:
                continue
            # Report at a creation that runs (a name may be created in several branches).
            program = evidence.program
            running = [p for p in params if program.activity(p[1]).active and (p[1].scope is not site.scope or p[1].order <= site.stmt.order)]
            first_name, first_stmt, first_node = (running or params)[0]
            params = list({p[0]: p for p in reversed(running or params)}.values())[::-1]
            if id(first_stmt) in seen:
                continue
            seen.add(id(first_stmt))
            region, mask_text, mask_line = self._region(index, site, first_stmt, program)
            later = self._used_after(index, first_stmt.scope, [p[0] for p in params], first_stmt)
            details = {
                "parameters": [p[0] for p in params],
                "loss": _code(index, site.loss),
                "backward_line": index.line(site.call.node),
                "optimized_on": region,
            }
            if mask_text:
                details["mask"] = mask_text
                details["mask_line"] = mask_line
            if later is not None:
                details["used_to_score_line"] = later
            names = ", ".join(f"`{p[0]}`" for p in params)
            if region == "context":
                yield self.report(
                    source, first_node, first_stmt,
                    f"per-window parameters {names} are optimized on the window's context positions only "
                    f"({mask_text}) and then used to score it: context-only SLOT, not ruled on (issue #1336)",
                    evidence=details, severity=Severity.WARNING, confidence=Confidence.MEDIUM,
                    sources=("#1336", "R-SLOT-CAUSAL"),
                )
                continue
            where = {
                "scored": f"the scored positions ({mask_text})",
                "window": f"every position of the window, the scored ones included ({mask_text or 'no mask'})",
                "unknown": f"a mask whose extent could not be read ({mask_text})",
            }[region]
            confidence = Confidence.HIGH if region in ("scored", "window") and later is not None else Confidence.MEDIUM
            severity = Severity.ERROR if region != "unknown" else Severity.WARNING
            yield self.report(
                source, first_node, first_stmt,
                f"per-window parameters {names} are fit with a loss on the window's targets over {where}, "
                "then used to score the same positions (SLOT)",
                evidence=details, severity=severity, confidence=confidence,
            )

    @staticmethod
    def flow_of(index: SourceIndex):
        return flow_of(index)

    # parameters ------------------------------------------------------------------------

    def _params(self, index: SourceIndex, site) -> list[tuple[str, Stmt, cst.CSTNode]]:
        """Fresh trainable tensors the loss depends on: (name, statement, node)."""
        scopes: list[Scope] = []
        scope: Scope | None = site.scope
        while scope is not None and not scope.is_module and len(scopes) < 3:
            scopes.append(scope)
            scope = scope.parent
        needed: set[str] = set()
        roots = names_in(site.loss)
        for s in scopes:
            needed |= depends(s, roots | needed, limit=200)
        found = []
        for s in scopes:
            # what an optimizer of the function is built over is trainable, however it was made
            stepped = {role.name for role in use_roles(s) if role.label == "grad"}
            for assignment in s.assignments:
                target = assignment.target
                if not isinstance(target, cst.Name) or target.value not in needed or assignment.value is None:
                    continue
                if assignment.kind not in ("assign", "ann"):
                    continue
                value = assignment.value
                if creates_trainable(index, value) or (target.value in stepped and _fresh(value)):
                    found.append((target.value, assignment.stmt, assignment.stmt.node))
        found.sort(key=lambda p: p[1].order)
        return found

    # the optimization region -----------------------------------------------------------

    def _region(self, index: SourceIndex, site, created: Stmt | None = None,
                program: Program | None = None) -> tuple[str, str, int | None]:
        """Which positions the optimization loss covers: scored | context | window | unknown."""
        scopes = [site.scope] + ([site.scope.parent] if site.scope.parent and not site.scope.parent.is_module else [])
        roots = names_in(site.loss)
        needed: set[str] = set()
        for s in scopes:
            needed |= depends(s, roots | needed, limit=200)
        starts = self._scored_starts(index, scopes)
        masks = sorted(n for n in needed if "mask" in n.lower() or _written_as_mask(scopes, n))
        verdicts = []
        for s in scopes:
            for sub in s.subscripts:
                if not sub.store:
                    continue
                base = dotted(sub.node.value)
                if base not in masks:
                    continue
                element = sub.node.slice[-1].slice
                if not isinstance(element, cst.Slice):
                    continue
                verdicts.append((self._classify(element, starts), _code(index, sub.stmt.node), index.line(sub.stmt.node)))
        if not verdicts and program is not None:
            verdicts = self._masks_from_callers(program, site.scope, needed)
        if verdicts:
            for kind in ("scored", "window", "unknown", "context"):
                for verdict in verdicts:
                    if verdict[0] == kind:
                        return verdict
        # No mask: a slice of the logits/targets in the loss, or the whole window.
        for s in scopes:
            for sub in s.subscripts:
                if sub.store or not sub.node.slice:
                    continue
                if s is site.scope and sub.stmt.order > site.stmt.order:
                    continue
                if created is not None and s is created.scope and sub.stmt.order < created.order:
                    continue  # before the parameters exist: building the window, not the loss
                base = dotted(sub.node.value) or ""
                if base not in needed and base not in roots and not isinstance(sub.node.value, cst.Call):
                    continue
                if not self.flow_of(index).fact(sub.node.value, s).has("tgt", "tgtdep", "grad", "tok", "tokdep"):
                    continue
                element = sub.node.slice[-1].slice
                if isinstance(element, cst.Slice) and (element.lower is not None or element.upper is not None):
                    kind = self._classify(element, starts)
                    if kind in ("context", "scored"):
                        return kind, _code(index, sub.node), index.line(sub.stmt.node)
        return "window", "", None

    def _masks_from_callers(self, program: Program, scope: Scope, needed: set[str]) -> list[tuple[str, str, int | None]]:
        """A mask the loss reads from a parameter: how the callers write the array they pass
        (``scored_mask[i, s:wlen] = True`` in the eval loop that calls the SLOT step)."""
        verdicts: list[tuple[str, str, int | None]] = []
        for name in sorted(needed & set(scope.param_names)):
            for arg, caller in arguments_for(program, scope, name):
                if not isinstance(arg, cst.Name):
                    continue
                if "mask" not in arg.value.lower() and not _written_as_mask([caller], arg.value):
                    continue
                caller_index = program.index_of_scope[id(caller)]
                starts = self._scored_starts(caller_index, [caller])
                for sub in caller.subscripts:
                    if not sub.store or dotted(sub.node.value) != arg.value:
                        continue
                    element = sub.node.slice[-1].slice
                    if isinstance(element, cst.Slice):
                        verdicts.append((self._classify(element, starts), _code(caller_index, sub.stmt.node),
                                         caller_index.line(sub.stmt.node)))
        return verdicts

    @staticmethod
    def _scored_starts(index: SourceIndex, scopes: list[Scope]) -> set[str]:
        """Names used as the first scored position (``s`` in ``nll[i, s:wlen]``)."""
        flow = flow_of(index)
        starts: set[str] = set()
        for s in scopes:
            for assignment in s.assignments:
                if isinstance(assignment.target, cst.Name) and assignment.value is not None:
                    text = _code(index, assignment.value)
                    if _clamped_difference(assignment.value) or ("stride" in text and ("max(" in text or " if " in text)):
                        starts.add(assignment.target.value)
            for event in score_events(index, s, any_context=True):
                value = event.node.value if isinstance(event.node, cst.AugAssign) else event.node
                feeding = depends(s, names_in(value), limit=60)
                statements = {id(event.stmt)} | {
                    id(a.stmt) for a in s.assignments if isinstance(a.target, cst.Name) and a.target.value in feeding
                }
                for sub in s.subscripts:
                    if id(sub.stmt) in statements and sub.node.slice:
                        if not flow.fact(sub.node.value, s).has("tgt", "tgtdep", "tok", "tokdep"):
                            continue
                        element = sub.node.slice[-1].slice
                        if isinstance(element, cst.Slice) and isinstance(element.lower, cst.Name):
                            starts.add(element.lower.value)
        return starts

    @staticmethod
    def _classify(element: cst.Slice, starts: set[str]) -> str:
        lower, upper = element.lower, element.upper
        lower_name = lower.value if isinstance(lower, cst.Name) else None
        upper_text = dotted(upper) if upper is not None else None
        upper_code = code_of(upper) if upper is not None else ""
        if lower_name is not None and lower_name in starts:
            return "scored"
        if (upper_text is not None and upper_text in starts) or "stride" in upper_code:
            return "context"
        if lower is None or (isinstance(lower, cst.Integer) and lower.value == "0"):
            # a prefix of the window: all of it when it has no end; where an end the analysis
            # cannot relate to the scored start leaves it, nobody can say from the code
            return "window" if upper is None else "unknown"
        return "unknown"

    @staticmethod
    def _used_after(index: SourceIndex, scope: Scope, names: list[str], created: Stmt) -> int | None:
        """A later statement that scores with the parameters (under no_grad, or detached)."""
        for name in names:
            for stmt in scope.refs.get(name, ()):
                if stmt.order <= created.order:
                    continue
                text = index.code(stmt.node, 400)
                if in_no_grad(stmt) or f"{name}.detach()" in text or f"{name}.data" in text:
                    return index.line(stmt.node)
        return None


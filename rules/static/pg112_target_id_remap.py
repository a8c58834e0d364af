"""PG112 target-id-remap."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.index import CallSite, Scope
from auditor.static.roles import is_prob
from auditor.static.names import callee_name

#: Losses and the position / keyword of their target argument.
LOSSES = {
    "torch.nn.functional.cross_entropy": (1, "target"),
    "torch.nn.functional.nll_loss": (1, "target"),
    "torch.gather": (2, "index"),
}
#: Methods that keep their receiver's token ids (views, conversions, moves).
KEEP = frozenset({"view", "reshape", "flatten", "long", "int", "to", "contiguous", "unsqueeze", "squeeze", "cuda",
                  "cpu", "type", "clone", "detach", "view_as", "expand", "expand_as", "ravel"})


class TargetIdRemap(StaticRule):
    """
    ## What it does
    Finds target token ids changed before the loss that scores them: an upper clamp
    (`y.clamp(max=V - 1)`, `torch.clamp(y, 0, V - 1)`, `y.clamp_max(…)`, `np.clip`), a
    modulo (`y % V`, `torch.remainder`, `fmod`), or a `where` that replaces ids at or above a
    bound, in the target argument of `cross_entropy` or `nll_loss`, or the index of a
    `gather` over (log-)probabilities (followed through local assignments, views and
    conversions); a gather over anything else (attention keys, per-token losses picked by
    position) scores no token. It is a warning: a clamp to the
    tokenizer's own vocabulary changes nothing, and only the vocabulary sizes (or the
    runtime byte accounting) tell.

    ## Why is this bad?
    When the model's vocabulary is smaller than the tokenizer's, every token id at or above
    the bound is scored as another token: rare tokens collapse into a few ids the model
    predicts cheaply, and the bpb is not the compression of the validation text
    (R-TOKENIZER-PROOF: "prove with certainty that the val_bpb is correctly calculated").
    Such runs often log a vocabulary-size mismatch.

    ## Example
    ```python
    y = y.clamp(max=model_vocab - 1)
    nll = F.cross_entropy(logits.view(-1, model_vocab), y.view(-1), reduction="none")
    ```

    ## Use instead
    Give the model the tokenizer's vocabulary (`vocab_size` = the tokenizer's
    `GetPieceSize()`) and score the ids as they are.

    ## References
    - README: changes to the tokenizer must prove val_bpb exactly (R-TOKENIZER-PROOF).
    - Issue #1017, section V (evaluation correctness) and condition C2 (a distribution over
      the official alphabet).
    """

    CODE = "PG112"
    NAME = "target-id-remap"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "R-TOKENIZER-PROOF", "#1017")
    TAGS = ("bpb_accounting",)
    VALID = (
        Valid(
            code="""
            import torch.nn.functional as F
            def score(logits, y, mask):
                safe = y.clamp(min=0)
                nll = F.cross_entropy(logits.view(-1, logits.size(-1)), safe.view(-1), reduction="none")
                return (nll * mask.view(-1)).sum()
            """,
            note="a lower clamp only (padding ids set to 0 and masked out) remaps no token",
        ),
        Valid(
            code="""
            import torch.nn.functional as F
            def forward(emb, head, x, y, buckets):
                h = emb(x % buckets)
                logits = head(h)
                return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            """,
            note="hashing the input ids is a model choice; the targets are scored as they are",
        ),
        Valid(
            code="""
            import torch
            def attend(q, k, v, kv_idx, n_kv):
                idx = kv_idx.clamp(max=n_kv - 1)
                keys = torch.gather(k, 2, idx.unsqueeze(-1).expand(-1, -1, -1, k.size(-1)))
                vals = v.gather(2, idx.unsqueeze(-1).expand(-1, -1, -1, v.size(-1)))
                w = torch.softmax(q @ keys.transpose(-1, -2), -1)
                return w @ vals
            """,
            note="positions clamped to gather attention keys and values: no token's score is read",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch.nn.functional as F
            def eval_loss(model, x, y, model_vocab):
                logits = model(x)
                y = y.clamp(max=model_vocab - 1)
                return F.cross_entropy(logits.view(-1, model_vocab), y.view(-1), reduction="sum")
            """,
            lines=(5,),
        ),
        Invalid(
            code="""
            import torch
            def eval_loss(logits, targets, V):
                lp = torch.log_softmax(logits, -1)
                return -torch.gather(lp, -1, (targets % V).unsqueeze(-1)).sum()
            """,
            lines=(4,),
        ),
        Invalid(
            code="""
            import torch
            def eval_loss(logits, targets, V):
                z = logits - logits.max(-1, keepdim=True).values
                lp = z - torch.log(torch.exp(z).sum(-1, keepdim=True))
                return -lp.gather(-1, targets.clamp(max=V - 1).unsqueeze(-1)).sum()
            """,
            lines=(5,),
            note="a log-softmax written out is log-probabilities all the same",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        for scope in index.scopes:
            for call in scope.calls:
                target = self._target(call, scope)
                if target is None:
                    continue
                remap = _remap(scope, target, set())
                if remap is None:
                    continue
                yield self.report(
                    source, call.node, call.stmt,
                    f"the target ids scored by `{index.code(call.node, 70)}` are remapped first "
                    f"(`{index.code(remap, 70)}`): ids at or above the bound are scored as other tokens unless the "
                    "bound is the tokenizer's vocabulary",
                    evidence={"loss": index.code(call.node, 140), "remap": index.code(remap, 140)},
                )

    @staticmethod
    def _target(call: CallSite, scope: Scope) -> cst.BaseExpression | None:
        """The token ids a call scores: a loss's target, or the index of a gather over
        (log-)probabilities. A gather over anything else (attention keys, hidden states,
        per-token losses picked by position) reads no token's score."""
        spec = LOSSES.get(call.qualified)
        if call.method == "gather":
            source = call.arg(0, "input") if spec is not None else (
                call.node.func.value if isinstance(call.node.func, cst.Attribute) else None)
            if not is_prob(source, scope):
                return None
            return call.arg(*spec) if spec is not None else call.arg(1, "index")  # tensor.gather(dim, index)
        if spec is not None:
            return call.arg(*spec)
        return None


def _remap(scope: Scope, node: cst.BaseExpression, seen: set[str], depth: int = 0) -> cst.BaseExpression | None:
    """The expression that remaps the ids ``node`` holds (through local names), or None."""
    if depth > 12:
        return None
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
        return node
    if isinstance(node, cst.Call):
        method = callee_name(node)
        if _upper_clamp(method, node, receiver=not _module_function(scope, node)):
            return node
        if method in ("remainder", "fmod"):
            return node
        if method == "where" and node.args and _bound_test(node.args[0].value):
            return node
        if isinstance(node.func, cst.Attribute) and method in KEEP:
            return _remap(scope, node.func.value, seen, depth + 1)
        if method in ("unsqueeze", "reshape", "view") and node.args:
            return _remap(scope, node.args[0].value, seen, depth + 1)
        return None
    if isinstance(node, cst.Subscript):
        return _remap(scope, node.value, seen, depth + 1)
    if isinstance(node, cst.Name) and node.value not in seen:
        seen.add(node.value)
        for assignment in scope.assigned(node.value):
            if assignment.value is not None:
                found = _remap(scope, assignment.value, seen, depth + 1)
                if found is not None:
                    return found
        # an in-place clamp of the name: y.clamp_(max=…)
        for call in scope.calls:
            func = call.node.func
            if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == node.value:
                if func.attr.value in ("clamp_", "clip_", "clamp_max_", "remainder_", "fmod_") and (
                    func.attr.value != "clamp_" and func.attr.value != "clip_" or _upper_clamp("clamp", call.node, receiver=True)
                ):
                    return call.node
    return None


def _upper_clamp(method: str, node: cst.Call, receiver: bool) -> bool:
    """``clamp``/``clip`` with an upper bound, or ``clamp_max``."""
    if method in ("clamp_max", "clamp_max_"):
        return True
    if method not in ("clamp", "clip", "clamp_", "clip_"):
        return False
    if any(a.keyword is not None and a.keyword.value == "max" for a in node.args):
        return True
    positional = [a for a in node.args if a.keyword is None]
    # y.clamp(lo, hi): two positional bounds; torch.clamp(y, lo, hi) / np.clip(y, lo, hi): three
    needed = 2 if receiver else 3
    return len(positional) >= needed and not _is_none(positional[needed - 1].value)


def _bound_test(node: cst.BaseExpression) -> bool:
    """``y >= V`` / ``y < V``: a test against an upper bound (not ``y == pad_id``)."""
    return isinstance(node, cst.Comparison) and any(
        isinstance(c.operator, (cst.GreaterThan, cst.GreaterThanEqual, cst.LessThan, cst.LessThanEqual)) for c in node.comparisons
    )


def _module_function(scope: Scope, node: cst.Call) -> bool:
    """``torch.clamp(y, …)`` / ``np.clip(y, …)`` (the ids are the first argument), as the
    imports qualify the callee; else a method of the ids (``y.clamp(…)``)."""
    for call in scope.calls:
        if call.node is node:
            return call.qualified.startswith(("torch.", "numpy."))
    return isinstance(node.func, cst.Name)


def _is_none(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"



"""PG106 target-gated-mixing."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.facts import Fact
from auditor.static.index import Scope, SourceIndex
from auditor.static.training import score_events

_WEIGHT = re.compile(r"^(alpha|alphas|lam|lamb|lambda_?|lmbda|gate|gates|w|weight|weights|mix_w|mix_weight|mixw|beta|coef|use_ngram_mask|take|choose|pick)(_\w+)?$|_(alpha|lam|gate|weight|mix)$", re.I)
_SELECT = {"minimum", "maximum", "fmin", "fmax"}


def _factor_of_product(scope: Scope, name: str) -> bool:
    """Whether ``name`` multiplies something in the function (``w * p_ngram + (1 - w) * p``)."""
    from auditor.static.index import walk

    for stmt in scope.stmts:
        if isinstance(stmt.node, (cst.FunctionDef, cst.ClassDef)):
            continue  # another scope
        for node in walk(stmt.node):
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
                for side in (node.left, node.right):
                    if isinstance(side, cst.Name) and side.value == name:
                        return True
                    if isinstance(side, cst.BinaryOperation) and isinstance(side.operator, cst.Subtract) and isinstance(side.right, cst.Name) and side.right.value == name:
                        return True
    return False


def _target_dependent(fact: Fact) -> bool:
    return fact.has("tgtdep", "tgt")


class TargetGatedMixing(StaticRule):
    """
    ## What it does
    Finds scoring code that chooses between distributions, or sets a mixing weight, from
    the score of the true token: "use the n-gram mix only where it lowers the target's
    loss" (`if new_nll < old_nll: nll = new_nll`, `torch.where(mix_nll < nll, mix_nll,
    nll)`, `torch.minimum(mix_nll, nll)`), or a gate computed by comparing the target's
    probabilities under two models.

    ## Why is this bad?
    The choice is made after looking at the token being scored, so the reported loss is the
    better of two predictions for each token: an oracle no causal predictor can match. The
    "oracle safety gate" of PR #659 was ruled illegal (cited in the PR #779 description);
    issue #1017 condition C1 says p_t may not depend on x_t. A gate may depend only on what
    the model knows before the token, e.g. its own entropy.

    ## Example
    ```python
    mixed_nll = -torch.log((1 - a) * p_model + a * p_ngram)
    nll = torch.where(mixed_nll < model_nll, mixed_nll, model_nll)   # best of both for the true token
    ```

    ## Use instead
    Fix the mixing weight from the context alone (a constant, or a function of the model's
    entropy), score the mixture once, and normalize it over the vocabulary.

    ## Known problems
    Gates computed in C/C++ helpers (the within-word and word-start experts of PR #1420 and
    #1967, gated on `tokens[p]`) are not analysed; the runtime target-substitution probe
    covers them.

    ## References
    - R-NGRAM-ORACLE-GATE (PR #659), R-TILT-TARGET-GATED (PR #1420, #1967).
    - Issue #1017, condition C1.
    """

    CODE = "PG106"
    NAME = "target-gated-mixing"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#659", "#779", "#1017", "R-NGRAM-ORACLE-GATE")
    TAGS = ("target_gated",)
    VALID = (
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, p_ngram, y):
                lp = F.log_softmax(logits, -1)
                entropy = -(lp.exp() * lp).sum(-1)
                alpha = 0.05 + 0.5 * torch.sigmoid(entropy - 4.0)
                p = (1 - alpha) * lp.exp() + alpha * p_ngram
                with torch.no_grad():
                    loss_sum = 0.0
                    loss_sum += -torch.log(p.gather(-1, y[..., None])).sum()
                return loss_sum
            """,
            note="an entropy-based gate depends on the context only",
        ),
        Valid(
            code="""
            import math
            def mix(a, b):
                return max(a, b) + math.log1p(math.exp(-abs(a - b)))
            """,
            note="a log-sum-exp of two log-probabilities",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logits, y):
                a = F.cross_entropy(logits, y, reduction="none")
                b = F.cross_entropy(ng_logits, y, reduction="none")
                k = (b < a).float()
                mixed = k * b + (1 - k) * a
                total = 0.0
                total += mixed.sum()
                return total
            score(None, None, None)
            """,
            lines=(6,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, p_ngram, y, alpha):
                model_nll = F.cross_entropy(logits, y, reduction="none")
                p_model = torch.exp(-model_nll)
                mixed_nll = -torch.log((1 - alpha) * p_model + alpha * p_ngram)
                nll = torch.where(mixed_nll < model_nll, mixed_nll, model_nll)
                with torch.no_grad():
                    loss_sum = 0.0
                    loss_sum += nll.sum()
                return loss_sum
            score(None, None, None, 0.1)
            """,
            lines=(7,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logp, y, lam):
                scored_nll = F.cross_entropy(logits, y, reduction="none")
                loss_sum = 0.0
                for t in range(len(y)):
                    new_nll = -torch.logaddexp(torch.log(1 - lam) - scored_nll[t], torch.log(lam) + ng_logp[t])
                    if new_nll < scored_nll[t]:
                        scored_nll[t] = new_nll
                with torch.no_grad():
                    loss_sum += scored_nll.sum()
                return loss_sum
            score(None, None, None, 0.1)
            """,
            lines=(8,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        for scope in index.scopes:
            if not score_events(index, scope, any_context=True):
                continue
            for stmt in scope.stmts:
                node = stmt.node
                if isinstance(node, cst.If) and isinstance(node.test, cst.Comparison):
                    hit = self._comparison(flow, scope, node.test) and self._replaces_score(flow, scope, node)
                    if hit:
                        yield self._report(source, index, node, stmt, f"`if {index.code(node.test, 80)}` keeps whichever loss is lower for the true token")
            for call in scope.calls:
                if call.method == "where" and call.node.args:
                    cond = call.node.args[0].value
                    if isinstance(cond, cst.Comparison) and self._comparison(flow, scope, cond):
                        yield self._report(source, index, call.node, call.stmt, f"`{index.code(call.node, 90)}` picks, per token, the better score of the true token")
                elif call.method in _SELECT and len(call.node.args) >= 2:
                    if self._whole_value(call) and all(_target_dependent(flow.fact(a.value, scope)) for a in call.node.args[:2]):
                        yield self._report(source, index, call.node, call.stmt, f"`{index.code(call.node, 90)}` keeps, per token, the better score of the true token")
            for assignment in scope.assignments:
                target = assignment.target
                if not isinstance(target, cst.Name) or assignment.value is None:
                    continue
                value = assignment.value
                if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in ("float", "to", "type", "int", "long"):
                    value = value.func.value
                if not isinstance(value, cst.Comparison):
                    continue
                # a weight is what it does (a factor of a blend); the name only breaks a tie
                if not (_WEIGHT.search(target.value) or _factor_of_product(scope, target.value)):
                    continue
                if self._comparison(flow, scope, value):
                    yield self._report(
                        source, index, assignment.stmt.node, assignment.stmt,
                        f"the mixing weight `{target.value}` is set by comparing the true token's scores ({index.code(value, 80)})",
                    )

    @staticmethod
    def _replaces_score(flow, scope: Scope, node: cst.If) -> bool:
        """The branch assigns a target-dependent score (not just a counter)."""
        for item in node.body.body:
            smalls = item.body if isinstance(item, cst.SimpleStatementLine) else [item] if isinstance(node.body, cst.SimpleStatementSuite) else []
            for small in smalls:
                if isinstance(small, cst.Assign) and _target_dependent(flow.fact(small.value, scope)):
                    return True
        return False

    @staticmethod
    def _whole_value(call) -> bool:
        node = call.stmt.node
        value = getattr(node, "value", None)
        return value is call.node

    @staticmethod
    def _comparison(flow, scope: Scope, test: cst.Comparison) -> bool:
        if len(test.comparisons) != 1 or not isinstance(test.comparisons[0].operator, (cst.LessThan, cst.GreaterThan, cst.LessThanEqual, cst.GreaterThanEqual)):
            return False
        left = flow.fact(test.left, scope)
        right = flow.fact(test.comparisons[0].comparator, scope)
        return _target_dependent(left) and _target_dependent(right)

    def _report(self, source: PythonSource, index: SourceIndex, node, stmt, message: str) -> Finding:
        return self.report(source, node, stmt, message + "; the choice depends on the token being scored", evidence={"expression": index.code(node, 140)})


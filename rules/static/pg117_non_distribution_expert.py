"""PG117 non-distribution-expert."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.flow import Flow
from auditor.static.index import Scope
from auditor.static.mixtures import Mixture, accumulation, is_constant, leaves, mixtures, sources


class NonDistributionExpert(StaticRule):
    """
    ## What it does
    Finds a mixture of log-probabilities of the scored token (`logaddexp`, `logsumexp` over
    stacked experts, `log(w·p + (1 - w)·q)`) in which one expert is not a probability of that
    token: a quantity computed from the model's output for the context that does not depend
    on the target at all, such as the model's entropy stacked as an expert's log-probability.
    The expert is recognised by its data flow: it is computed from the same model output as
    the target's log-probability, and the target does not enter it.

    ## Why is this bad?
    A mixture Σ_k w_k·p_k(x_t) is a distribution only if every p_k is one. An "expert" e that
    is the same number for every candidate token contributes w·e to each of the V tokens:
    with the entropy H in place of a log-probability, Σ_v p(v) = w·V·e^(−H) + …, far above 1
    (issue #1017, condition C2). The bpb it reports is not a compression rate.

    ## Example
    ```python
    lp = F.log_softmax(logits, -1)
    entropy = -(lp.exp() * lp).sum(-1)
    experts = torch.stack([-F.cross_entropy(logits, y, reduction="none"), -entropy])
    nll = -torch.logsumexp(experts + log_w[:, None], dim=0)
    ```

    ## Use instead
    Mix distributions over the whole vocabulary (or their values at the target, each a
    normalized distribution); use the entropy, if at all, to set the weights.

    ## References
    - Issue #1017, condition C2 (a normalized distribution over the vocabulary).
    - R-1017-C2.
    """

    CODE = "PG117"
    NAME = "non-distribution-expert"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("#1017", "R-1017-C2")
    TAGS = ("bpb_accounting",)
    VALID = (
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_lp, y):
                loss_sum = 0.0
                with torch.no_grad():
                    lp = F.log_softmax(logits, -1)
                    entropy = -(lp.exp() * lp).sum(-1)
                    w = torch.sigmoid(entropy - 3.0)
                    lp_y = lp.gather(-1, y[:, None]).squeeze(-1)
                    mixed = torch.logaddexp(torch.log(1 - w) + lp_y, torch.log(w) + ng_lp)
                    loss_sum += -mixed.sum()
                return loss_sum
            """,
            note="the entropy sets the weight of an expert; it is no expert itself",
        ),
        Valid(
            code="""
            import math
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logits, y, vocab):
                loss_sum = 0.0
                with torch.no_grad():
                    mix = 0.7 * F.log_softmax(logits, -1) + 0.3 * F.log_softmax(ng_logits, -1)
                    mix = mix - torch.logsumexp(mix, -1, keepdim=True)
                    lp_y = mix.gather(-1, y[:, None]).squeeze(-1)
                    smooth = torch.logaddexp(math.log(0.99) + lp_y, torch.full_like(lp_y, math.log(0.01 / vocab)))
                    loss_sum += -smooth.sum()
                return loss_sum
            """,
            note="a log-linear mixture renormalized over the vocabulary, then smoothed with the uniform distribution",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logits, y):
                loss_sum = 0.0
                with torch.no_grad():
                    a = F.log_softmax(logits, -1).gather(-1, y[:, None])
                    b = F.log_softmax(ng_logits, -1).gather(-1, y[:, None])
                    mixed = torch.logsumexp(torch.stack([a, b]) + torch.log(torch.tensor([0.8, 0.2]))[:, None, None], 0)
                    loss_sum += -mixed.sum()
                return loss_sum
            """,
            note="two distributions evaluated at the target, weights summing to 1",
        ),
        Valid(
            code="""
            import math
            import torch
            import torch.nn.functional as F
            def score(logits, y, ngram, lam):
                loss_sum = 0.0
                with torch.no_grad():
                    lp = F.log_softmax(logits, -1)
                    picked = []
                    for t in range(len(y)):
                        picked.append(int(y[t]))
                    model_lp = lp[torch.arange(len(picked)), torch.tensor(picked)].tolist()
                    for j in range(len(model_lp)):
                        a = math.log(1 - lam) + model_lp[j]
                        b = math.log(lam) + ngram.logprob(y[j])
                        loss_sum += -(max(a, b) + math.log1p(math.exp(-abs(a - b))))
                return loss_sum
            """,
            note="the model's expert read at targets collected in a list",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(model, x, y, log_w):
                loss_sum = 0.0
                with torch.no_grad():
                    logits = model(x)
                    lp = F.log_softmax(logits, -1)
                    nll = F.cross_entropy(logits, y, reduction="none")
                    entropy = -(lp.exp() * lp).sum(-1)
                    experts = torch.stack([-nll, -entropy], dim=0)
                    mixed = torch.logsumexp(experts + log_w[:, None], dim=0)
                    loss_sum += -mixed.sum()
                return loss_sum
            """,
            lines=(11,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(model, x, y, w):
                loss_sum = 0.0
                with torch.no_grad():
                    logits = model(x)
                    probs = logits.softmax(-1)
                    p_y = probs.gather(-1, y[:, None]).squeeze(-1)
                    top = probs.max(-1).values
                    loss_sum += -torch.log(w * p_y + (1 - w) * top).sum()
                return loss_sum
            """,
            lines=(10,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(model, x, y, ng_nll, log_w):
                loss_sum = 0.0
                with torch.no_grad():
                    logits = model(x)
                    lp = F.log_softmax(logits, -1)
                    nll = F.cross_entropy(logits, y, reduction="none")
                    entropy = -(lp.exp() * lp).sum(-1)
                    nlls = torch.stack([nll, entropy, ng_nll])
                    mixed_nll = -torch.logsumexp(-nlls + log_w[:, None], dim=0)
                    loss_sum += mixed_nll.sum()
                return loss_sum
            """,
            lines=(11,),
            note="the entropy stacked as an expert's NLL",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        for scope in index.scopes:
            for mixture in mixtures(scope):
                if accumulation(scope, mixture.stmt, mixture.node) is None:
                    continue
                expert = _not_a_distribution(flow, scope, mixture)
                if expert is None:
                    continue
                code = index.code(expert, 60)
                yield self.report(
                    source, mixture.node, mixture.stmt,
                    f"the mixture `{index.code(mixture.node, 80)}` ({mixture.kind}) takes `{code}` as an expert: it is "
                    "computed from the model's output but not from the target, so it is the same for every candidate "
                    "token and no probability of the one scored; the mixture does not sum to 1 over the vocabulary",
                    evidence={"mixture": index.code(mixture.node, 140), "expert": index.code(expert, 140),
                              "kind": mixture.kind},
                )


def _target(flow: Flow, scope: Scope, node: cst.BaseExpression) -> bool:
    """Whether a value may depend on the target: its dataflow says so, or something it is
    computed from (through lists that targets were appended to) holds or depends on it."""
    if flow.fact(node, scope).has("tgt", "tgtdep"):
        return True
    return any(flow.name(scope, name).has("tgt", "tgtdep") for name in sources(scope, node))


def _not_a_distribution(flow: Flow, scope: Scope, mixture: Mixture) -> cst.BaseExpression | None:
    """A component of a mixture at the target whose every part is computed, without the target,
    from what the target's expert is computed from (the model's output for the context). A
    part of unknown provenance (a parameter, a call result with no link to the model) may be a
    probability of the target computed elsewhere: such a component is left alone."""
    at_target = [c for c in mixture.components if _target(flow, scope, c)]
    if not at_target:
        return None  # a mixture of whole distributions (gathered later), or one the flow cannot see
    shared = set().union(*(sources(scope, c) for c in at_target))
    shared -= {name for name in shared if flow.name(scope, name).has("tgt", "tgtdep")}
    for component in mixture.components:
        if any(component is c for c in at_target) or is_constant(scope, component):
            continue
        parts = [p for p in leaves(component) if not is_constant(scope, p)]
        if parts and all(not _target(flow, scope, p) and sources(scope, p) & shared for p in parts):
            return component
    return None

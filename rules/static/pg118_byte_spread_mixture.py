"""PG118 byte-spread-mixture."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.flow import Flow
from auditor.static.index import Scope, Stmt, walk
from auditor.static.names import dotted
from auditor.static.mixtures import accumulation, data_names, is_constant, leaves, mixtures, sources, statement_of


class ByteSpreadMixture(StaticRule):
    """
    ## What it does
    Finds byte-level mixtures: a token's log-probability spread over its bytes (`lp / n_bytes`
    for each byte, or `p ** (1 / n_bytes)`) and mixed, byte by byte, with a byte-level model
    (`logaddexp`, `max(a, b) + log1p(exp(-|a - b|))`, `log(λ·q_nn + (1 − λ)·q_ppm)`). The byte
    count is recognised by its data flow: it is read from a table indexed by the scored
    token's id (`len(token_bytes[tid])`, `base_bytes_lut[y]`).

    A mixture whose function every caller calls as a statement of its own (its result
    dropped), while the claimed line of every scored run is printed elsewhere, is reported as
    a warning: the submission logs it beside a token-level claim that does not rest on it.

    ## Why is this bad?
    p(x_t)^(1/n) is not a distribution over bytes: the per-byte "probabilities" of one token
    multiply back to p(x_t), but the byte-level alternatives are never given the rest of the
    mass, so the mixture is not normalized over the token alphabet (issue #1017, condition
    C2). Maintainers excluded the PPM-D byte-mixture rows for C2 when they rebuilt the
    leaderboard (openai/parameter-golf #1902; the issue #1872 cluster, e.g. #1835, #1854).

    ## Example
    ```python
    n_bytes = len(token_bytes[tid])
    per_byte = token_logp / n_bytes            # the token's log-prob spread over its bytes
    log_mix = np.logaddexp(np.log(lam) + per_byte, np.log(1 - lam) + ppm_logp)
    mix_nll -= log_mix
    ```

    ## Use instead
    Score the token with a distribution over the token vocabulary; a byte-level model can
    contribute only through a distribution over whole tokens (the product of its byte
    probabilities, renormalized over the vocabulary).

    ## References
    - openai/parameter-golf #1902 (excludes "PPM-D/byte-mixture C2" rows), issue #1872.
    - Issue #1017, condition C2; R-PPM-BYTE-C2.
    """

    CODE = "PG118"
    NAME = "byte-spread-mixture"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1902", "#1872", "#1017", "R-PPM-BYTE-C2")
    TAGS = ("bpb_accounting",)
    VALID = (
        Valid(
            code="""
            import math
            import torch
            import torch.nn.functional as F
            def score(logits, y, base_bytes):
                loss_sum, byte_count = 0.0, 0
                with torch.no_grad():
                    nll = F.cross_entropy(logits, y, reduction="none")
                    loss_sum += nll.sum().item()
                    byte_count += base_bytes[y].sum().item()
                return loss_sum / byte_count / math.log(2)
            """,
            note="bits per byte: the total NLL divided by the total bytes",
        ),
        Valid(
            code="""
            import math
            import numpy as np
            def report(targets, nll, piece_bytes, ppm_logp, lam=0.9):
                total = 0.0
                for i in range(len(targets)):
                    n = len(piece_bytes[int(targets[i])])
                    per_byte = -nll[i] / n
                    print(f"token {i}: {per_byte / math.log(2):.3f} bits per byte")
                    total -= np.logaddexp(math.log(lam) - nll[i], math.log(1 - lam) + ppm_logp[i])
                return total
            """,
            note="a per-byte figure printed, and a token-level mixture",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import math
            import torch
            import torch.nn.functional as F
            def byte_mix(targets, nll, piece_bytes, lam=0.9):
                spread, stream = [], []
                for i in range(len(targets)):
                    pb = piece_bytes[int(targets[i])]
                    share = -float(nll[i]) / len(pb)
                    for b in pb:
                        stream.append(b)
                        spread.append(share)
                counts, total = {}, 0.0
                for t in range(len(stream)):
                    c = counts.get(stream[t], 0)
                    byte_lp = math.log((c + 1) / (t + 256))
                    a = math.log(lam) + spread[t]
                    o = math.log(1 - lam) + byte_lp
                    total -= max(a, o) + math.log1p(math.exp(-abs(a - o)))
                    counts[stream[t]] = c + 1
                return total / len(stream) / math.log(2)
            def eval_val(model, x, y, piece_bytes):
                with torch.no_grad():
                    nll = F.cross_entropy(model(x), y, reduction="none")
                return byte_mix(y, nll, piece_bytes)
            """,
            lines=(8,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        for scope in index.scopes:
            reported: set[int] = set()
            for mixture in mixtures(scope):
                if accumulation(scope, mixture.stmt, mixture.node) is None:
                    continue
                for component in mixture.components:
                    for part in leaves(component):
                        if is_constant(scope, part):
                            continue
                        spread = _spread(flow, scope, part)
                        if spread is None or id(spread[0]) in reported:
                            continue
                        node, stmt, count = spread
                        reported.add(id(node))
                        aside = _result_set_aside(evidence, scope)
                        yield self.report(
                            source, node, stmt,
                            f"`{index.code(node, 60)}` spreads a token's log-probability over its bytes (divided by "
                            f"`{index.code(count, 40)}`, a count read at the token's id) and the mixture "
                            f"`{index.code(mixture.node, 70)}` (line {index.line(mixture.node)}) mixes it byte by byte "
                            "with another model: not a distribution over the token vocabulary" + (f"; {aside}" if aside else ""),
                            evidence={"spread": index.code(node, 140), "mixture": index.code(mixture.node, 140),
                                      "mixture_line": index.line(mixture.node), "kind": mixture.kind}
                            | ({"not_the_claim": aside} if aside else {}),
                            severity=Severity.WARNING if aside else None,
                            confidence=Confidence.MEDIUM if aside else None,
                        )


def _spread(flow: Flow, scope: Scope, part: cst.BaseExpression):
    """(the division, its statement, the byte count) when ``part`` is computed from a value
    divided by a per-token byte count (``x / n``, ``x * (1 / n)``, ``p ** (1 / n)``)."""
    wanted = sources(scope, part)
    exprs: list[tuple[cst.BaseExpression, Stmt | None]] = [(part, None)]
    exprs += [(a.value, a.stmt) for a in scope.assignments
              if a.value is not None and isinstance(a.target, cst.Name) and a.target.value in wanted]
    for expr, stmt in exprs:
        for node in walk(expr):
            count = _divisor(node)
            if count is not None and sources(scope, count, shapes=True) and _per_token_count(flow, scope, count):
                owner = stmt if stmt is not None else statement_of(scope, node)
                if owner is not None:
                    return node, owner, count
    return None


def _divisor(node: cst.CSTNode) -> cst.BaseExpression | None:
    """``n`` in ``x / n`` or ``p ** (1 / n)``."""
    if not isinstance(node, cst.BinaryOperation):
        return None
    if isinstance(node.operator, cst.Divide):
        return node.right
    if isinstance(node.operator, cst.Power):
        exponent = node.right
        if isinstance(exponent, cst.BinaryOperation) and isinstance(exponent.operator, cst.Divide):
            return exponent.right
    return None


def _per_token_count(flow: Flow, scope: Scope, count: cst.BaseExpression) -> bool:
    """A count read from a table at the scored token's id: the count, or a value it is
    computed from at most two assignments away (``tb = token_bytes[tid]``, ``n = len(tb) +
    1``), subscripts a table that is not the target itself with the target."""
    exprs = [count]
    frontier = [count]
    for _ in range(2):
        names = set().union(*(data_names(e, shapes=True) for e in frontier))
        frontier = [a.value for a in scope.assignments if a.value is not None and a.kind in ("assign", "ann")
                    and isinstance(a.target, cst.Name) and a.target.value in names]
        exprs += frontier
    for expr in exprs:
        for node in walk(expr):
            if not isinstance(node, cst.Subscript) or flow.fact(node.value, scope).has("tgt", "tgtdep"):
                continue
            if any(isinstance(e.slice, cst.Index) and flow.fact(e.slice.value, scope).has("tgt") for e in node.slice):
                return True
    return False


def _result_set_aside(evidence: Evidence, scope: Scope) -> str:
    """Why the mixture's figure is not the claim, or "": every call of the function that
    computes it drops its result (a statement of its own), and the claimed line of every scored
    run is printed elsewhere (an exploratory mixture logged beside a token-level claim)."""
    if scope.is_module or scope.cls is not None:
        return ""
    program = evidence.program
    callers = [s for s in program.referrers.get(scope.name, ()) if s.scope is not scope]
    if not callers or not all(
            isinstance(s.node, cst.Expr) and isinstance(s.node.value, cst.Call)
            and (dotted(s.node.value.func) or "").rsplit(".", 1)[-1] == scope.name for s in callers):
        return ""
    runs = [run for run in evidence.scored.runs if run.stage]
    printed = [run.stage_printed_by() for run in runs]
    if not runs or any(p is None for p in printed):
        return ""
    if any(p.format.stmt.scope is scope for p in printed if p is not None):
        return ""
    claimed = printed[0]
    assert claimed is not None
    return (f"every call of {scope.name} drops its result, and the claimed line `{claimed.text[:80]}` "
            f"({claimed.where()}) is printed elsewhere: the claim does not rest on this mixture")

"""PG106 target-gated-mixing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import PurePath

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.env import Config
from auditor.static.facts import Fact
from auditor.static.index import Scope, SourceIndex, small_statements
from auditor.static.mixtures import accumulation, shifted_lse
from auditor.static.passing import call_bindings
from auditor.static.roles import is_constant
from auditor.static.training import score_events, training_sites

_SELECT = {"minimum", "maximum", "fmin", "fmax"}
#: The smallest vocabulary the challenge's tokenizers have (bytes): a lower bound on V, the
#: script's own vocabulary size being unknown to this rule.
_MIN_VOCAB = 256


def _gates_a_blend(scope: Scope, name: str, scored: set[str]) -> bool:
    """Whether ``name`` decides a blend in the function: a factor of a product
    (``w * p_ngram + (1 - w) * p``, also through ``(1 - w)``), the condition of a ``where``
    (``torch.where(w, b, a)``) or of an ``if`` whose branch assigns (a replacement, not a
    ``+=`` counter), or a mask of the elements an assignment replaces (``nll[w] = b[w]``);
    in each case of what the function adds to its score (``scored``, see
    :func:`_scored_names`). What the value does, never what it is called."""
    from auditor.static.index import walk

    def feeds(node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.AugAssign, cst.Return)):
            return True
        return isinstance(node, cst.Assign) and any(_base(t.target) in scored for t in node.targets)

    def is_name(node: cst.BaseExpression) -> bool:
        while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("float", "to", "type", "int", "long", "bool"):
            node = node.func.value
        return isinstance(node, cst.Name) and node.value == name

    for stmt in scope.stmts:
        if isinstance(stmt.node, (cst.FunctionDef, cst.ClassDef)):
            continue  # another scope
        if isinstance(stmt.node, cst.If) and is_name(stmt.node.test):
            if any(isinstance(n, cst.Assign) and feeds(n) for n in walk(stmt.node.body)):
                return True
        if isinstance(stmt.node, cst.Assign) and feeds(stmt.node):
            for t in stmt.node.targets:
                element = t.target.slice[0].slice if isinstance(t.target, cst.Subscript) and len(t.target.slice) == 1 else None
                # the mask itself, or positions selected with it (``pos = idx[w]; nll[pos] = ...``)
                if isinstance(element, cst.Index) and (is_name(element.value) or name in depends(scope, names_in(element.value), limit=40)):
                    return True
        if not feeds(stmt.node):
            continue
        for node in walk(stmt.node):
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
                for side in (node.left, node.right):
                    if is_name(side):
                        return True
                    if isinstance(side, cst.BinaryOperation) and isinstance(side.operator, cst.Subtract) and is_name(side.right):
                        return True
            elif isinstance(node, cst.Call) and isinstance(node.func, (cst.Attribute, cst.Name)):
                method = node.func.attr.value if isinstance(node.func, cst.Attribute) else node.func.value
                if method == "where" and len(node.args) >= 3 and is_name(node.args[0].value):
                    return True
    return False


def _only_a_shift(scope: Scope, branch: cst.If) -> bool:
    """The branch sets a running maximum that only shifts a log-sum-exp (see :func:`_only_a_shift_of`)."""
    names = {small.targets[0].target.value for small in small_statements(branch.body)
             if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name)}
    return len(names) == 1 and _only_a_shift_of(scope, next(iter(names)))


def _assigned_name(node: cst.CSTNode) -> str | None:
    """``m`` of ``m = ...``; None for any other statement."""
    if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
        return node.targets[0].target.value
    return None


def _only_a_shift_of(scope: Scope, name: str | None) -> bool:
    """``name`` is a maximum that only shifts a log-sum-exp: every other read of it is
    ``m + log(Σ exp(x - m))`` (``m`` cancels, whichever score it holds) or another step of the
    same maximum (a comparison, or ``m = a if a > c else c``)."""
    if name is None:
        return False
    shifts = 0
    for stmt in scope.refs.get(name, ()):
        node = stmt.node
        if isinstance(node, (cst.If, cst.Comparison)):
            continue  # a step of the maximum
        value = getattr(node, "value", None)
        if isinstance(node, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
            if isinstance(value, cst.IfExp) or isinstance(value, cst.Name):
                continue  # m = a if a > c else c, m = e
            return False
        if value is None or not shifted_lse(value, name):
            return False
        shifts += 1
    return shifts > 0


def _target_dependent(fact: Fact) -> bool:
    return fact.has("tgtdep", "tgt")


def _base(node: cst.BaseExpression) -> str | None:
    """The variable an assignment target writes: ``nll`` for ``nll``, ``nll[t]``, ``nll[m]``."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return node.value if isinstance(node, cst.Name) else None


def _scored_names(index: SourceIndex, scope: Scope, events, without=None) -> set[str]:
    """The names a function's score is computed from: what its score accumulations add (and,
    in a function that does not train, what it returns, for the caller to add). A choice that
    reaches none of them (the best of several whole evaluations kept as a checkpoint or a
    setting, PG115's) does not choose the score of a token. ``without``: a statement whose
    contribution is left out (a call's own result, when asking what else the caller scores)."""
    roots: set[str] = set()
    for event in events:
        node = event.stmt.node
        if isinstance(node, cst.AugAssign):
            roots |= names_in(node.value)
    if not any(site.scope is scope for site in training_sites(index)):
        for value, _ in scope.returns:
            roots |= names_in(value)
    return depends(scope, roots, limit=200, without=without) | roots if roots else set()


@dataclass
class _Passed:
    """What the callers of a function pass it, as far as PG106 asks (computed when first needed)."""

    scored: set[str] = field(default_factory=set)  # parameters the function writes a caller's score through
    target: dict[str, str] = field(default_factory=dict)  # parameter -> how a caller's argument depends on the target
    returned: bool = False  # a caller adds up what the function returns


def _passed(flow, scope: Scope) -> _Passed:
    """Which parameters of a function carry its callers' per-token scores: an array the
    function writes elements of, which a caller passes by name and adds to its score after
    the call, or returns a score computed from (``mix(nll, ...); total += nll.sum()``: the
    function writes that score in place); and the parameters that hold the true token's loss:
    arguments that are a score of the target in the caller, and an array the function itself
    fills with such losses. Calls are bound as the flow binds them
    (:func:`auditor.static.passing.call_bindings`)."""
    out = _Passed()
    # the parameters the function writes elements of (``nll[m] = ...``): the only ones through
    # which it can change what a caller adds up
    written = {_base(a.target) for a in scope.assignments if isinstance(a.target, cst.Subscript)}
    per_caller: dict[int, tuple[list, set[str]]] = {}  # caller -> (its score events, all it scores)
    for binding in call_bindings(flow, scope):
        caller = binding.caller
        caller_flow = flow.flow_for(caller)
        if id(caller) not in per_caller:
            events = score_events(caller_flow.index, caller, any_context=True)
            per_caller[id(caller)] = events, _scored_names(caller_flow.index, caller, events)
        events, caller_scored = per_caller[id(caller)]
        # what the caller adds up after the call returns (the call's own statement adds its result)
        later = [e for e in events if e.stmt is not binding.call.stmt
                 and (e.stmt.order > binding.call.stmt.order or binding.call.stmt.loops)]
        scored = _scored_names(caller_flow.index, caller, later, without=binding.call.stmt)
        call_stmt = binding.call.stmt.node
        if any(e.stmt is binding.call.stmt for e in events) or (
                isinstance(call_stmt, cst.Assign) and any(_base(t.target) in caller_scored for t in call_stmt.targets)):
            out.returned = True
        for arg, params in binding.args:
            if len(params) != 1:
                continue
            if params[0] in written and isinstance(arg.value, cst.Name) and arg.value.value in scored:
                out.scored.add(params[0])
            # a score of the true token (``tgtdep``), not the token ids: a count table keyed by the
            # target (a PPM model's running maximum) compares counts, not scores
            if params[0] not in out.target and caller_flow.fact(arg.value, caller).has("tgtdep"):
                where = f"{PurePath(caller_flow.index.source.path).name}:{caller_flow.index.line(binding.call.node)}"
                out.target[params[0]] = f"`{caller.name}` passes `{caller_flow.index.code(arg.value, 50)}` for it ({where})"
    # an array the function itself fills with the true token's loss holds it at its next call
    # (a second pass over the stream compares against the first: ``take_min``)
    fills = sorted(scope.assignments, key=lambda a: a.value is not None and _base(a.target) in names_in(a.value))  # plain writes first
    for a in fills:
        name = _base(a.target) if isinstance(a.target, cst.Subscript) else None
        if name in out.scored and name not in out.target and a.value is not None and flow.fact(a.value, scope).has("tgtdep"):
            out.target[name] = f"`{scope.name}` writes the true token's loss into it (line {flow.index.line(a.stmt.node)}) for the next call to read"
    return out


def _has_a_choice(scope: Scope) -> bool:
    """Whether a function holds anything PG106 judges (a comparison assigned or tested, a
    ``where`` or an element-wise minimum): only those ask what their callers pass."""
    if any(isinstance(a.value, cst.Comparison) or (isinstance(a.value, cst.Call) and isinstance(a.value.func, cst.Attribute)
           and isinstance(a.value.func.value, cst.Comparison)) for a in scope.assignments):
        return True
    if any(c.method == "where" or c.method in _SELECT for c in scope.calls):
        return True
    return any(isinstance(s.node, cst.If) and isinstance(s.node.test, cst.Comparison) for s in scope.stmts)


def _feeds(stmt, scored: set[str], events) -> bool:
    """Whether the statement of a choice is a score accumulation or assigns what one adds."""
    node = stmt.node
    if any(event.stmt is stmt for event in events):
        return True
    if isinstance(node, cst.Return):
        return True  # the choice is what the function hands its caller to add
    targets = node.targets if isinstance(node, cst.Assign) else ()
    return any(_base(t.target) in scored for t in targets)


class TargetGatedMixing(StaticRule):
    """
    ## What it does
    Finds scoring code that chooses between distributions, or sets a mixing weight, from
    the score of the true token: "use the n-gram mix only where it lowers the target's
    loss" (`if new_nll < old_nll: nll = new_nll`, `torch.where(mix_nll < nll, mix_nll,
    nll)`, `torch.minimum(mix_nll, nll)`), or a gate computed by comparing the target's
    probabilities under two models. Also a probability chosen by whether the target equals a
    prediction (`torch.where(logits.argmax(-1) == y, 0.9, 1 / V)`): the value depends on the
    target through the comparison only, and is not a distribution evaluated at it.

    The choice must be of a token's score: what it chooses is what the function adds to its
    score (or returns for its caller to add). A best-so-far over whole evaluations (raw vs
    EMA weights, a temperature grid) is a selection on validation, PG115's; loss weights of a
    training step and a pool of checkpoints ranked by training loss choose no score. A
    helper that returns what its caller adds up (`return np.minimum(nll, mixed)`), or
    writes its caller's per-token losses in place (`mix(nll, lp_ngram)`, then
    `total += nll.sum()` in the caller) chooses the caller's score, and its parameters are
    what the callers pass (the true token's loss), or what it wrote there itself at an
    earlier call (a second pass that keeps `np.minimum(losses[w], nll)` of the first's); a
    mask may select the replaced positions through indices (`pos = idx[better]; nll[pos] =
    mixed[better]`).

    ## Why is this bad?
    The choice is made after looking at the token being scored, so the reported loss is the
    better of two predictions for each token: an oracle no causal predictor can match. The
    "oracle safety gate" of PR #659 was ruled illegal (cited in the PR #779 description);
    issue #1017 condition C1 says p_t may not depend on x_t. A gate may depend only on what
    the model knows before the token, e.g. its own entropy. A probability `high` for the
    predicted token and `1/V` for every other sums to `high + (V - 1)/V` over the vocabulary
    (condition C2); only the remainder `(1 - high)/(V - 1)` for the others makes it a
    distribution.

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
    covers them. A helper that returns a value its callers add up is judged with what they
    pass it only when it adds up no score of its own, and only on the scores they pass: a
    choice it makes on what it reads at the token ids it is handed is not seen (a count
    table keyed by the target looks the same as a score).

    ## References
    - R-NGRAM-ORACLE-GATE (PR #659), R-TILT-TARGET-GATED (PR #1420, #1967).
    - Issue #1017, conditions C1 and C2.
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
            import math
            import torch
            import torch.nn.functional as F
            def eval_val(model, val_tokens):
                with torch.no_grad():
                    val_loss = F.cross_entropy(model(val_tokens[:-1]), val_tokens[1:]).item()
                return val_loss, val_loss / math.log(2.0)
            def main(model, opt, loader, ema_state, val_tokens, steps):
                train_loss = 0.0
                for step in range(steps):
                    x, y = loader.next_batch()
                    loss = model(x, y)
                    loss.backward()
                    opt.step()
                    train_loss += loss.item()
                _, best_bpb = eval_val(model, val_tokens)
                model.load_state_dict(ema_state)
                _, ema_bpb = eval_val(model, val_tokens)
                if ema_bpb < best_bpb:
                    best_bpb = ema_bpb
                return best_bpb
            """,
            note="one number per whole evaluation, compared to keep a checkpoint: a choice on validation (PG115), not a per-token gate",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def eval_chunks(model, val_tokens, chunk, temps):
                nll_sum, temp = 0.0, 1.0
                for s in range(0, val_tokens.numel() - 1, chunk):
                    x, y = val_tokens[s:s + chunk], val_tokens[s + 1:s + chunk + 1]
                    with torch.no_grad():
                        logits = model(x[:y.numel()])
                        nll_sum += F.cross_entropy(logits / temp, y, reduction="sum").item()
                        best_nll = float("inf")
                        for t in temps:
                            nll_cand = F.cross_entropy(logits / t, y).item()
                            if nll_cand < best_nll:
                                best_nll, temp = nll_cand, t
                return nll_sum
            """,
            note="a temperature calibrated on a chunk already scored, used for the next chunk: the chosen value is not a token's score",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def train_step(model, opt, x, y):
                logits = model(x)
                per_tok_nll = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
                total_loss = 0.0
                total_loss += per_tok_nll.detach().sum().item()
                with torch.no_grad():
                    median_nll = per_tok_nll.median()
                    weights = torch.where(per_tok_nll > median_nll, 2.0, 1.0)
                loss = (per_tok_nll * weights).sum() / weights.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                return total_loss
            """,
            note="hard tokens weighted in a training loss: the weights never choose a scored value",
        ),
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
            import torch.nn.functional as F
            def score(logits, ngram_lp, y, w):
                nn = F.log_softmax(logits, -1).gather(-1, y[:, None]).squeeze(-1).tolist()
                ng = ngram_lp.gather(-1, y[:, None]).squeeze(-1).tolist()
                nll = 0.0
                for t in range(len(nn)):
                    a = math.log(w) + nn[t]
                    c = math.log(1 - w) + ng[t]
                    mx = a if a > c else c
                    if c > mx:
                        mx = c
                    lse = mx + math.log(math.exp(a - mx) + math.exp(c - mx))
                    nll += -lse
                return nll
            """,
            note="the larger of two scores shifts a log-sum-exp and cancels in it: nothing is chosen",
        ),
        Valid(
            code="""
            import math
            def mix(a, b):
                return max(a, b) + math.log1p(math.exp(-abs(a - b)))
            """,
            note="a log-sum-exp of two log-probabilities",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(model, x, y, vocab):
                loss_sum, correct = 0.0, 0
                with torch.no_grad():
                    logits = model(x)
                    nll = F.cross_entropy(logits, y, reduction="none")
                    pred = logits.argmax(-1)
                    correct += (pred == y).sum().item()
                    conf = logits.softmax(-1).max(-1).values
                    p = torch.where(pred == y, conf, (1 - conf) / (vocab - 1))
                    loss_sum += -torch.log(p).sum() + 0 * nll.sum()
                return loss_sum, correct
            """,
            note="an accuracy count, and the predicted token's mass with the rest shared by the others",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, y, pad_id):
                loss_sum = 0.0
                with torch.no_grad():
                    nll = F.cross_entropy(logits, y, reduction="none")
                    loss_sum += torch.where(y == pad_id, torch.zeros_like(nll), nll).sum()
                return loss_sum
            """,
            note="padding targets masked out of the sum",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logits, y):
                a = F.cross_entropy(logits, y, reduction="none")
                b = F.cross_entropy(ng_logits, y, reduction="none")
                v1 = b < a
                total, v2 = 0.0, 0
                total += a.sum()
                v2 += int(v1.sum())
                return total, v2
            """,
            note="a comparison of the target's scores only counted (how often the n-gram would win), not used to choose",
        ),
        Valid(
            code="""
            import numpy as np
            import torch.nn.functional as F
            class Mixer:
                def blend(self, nll, other_lp, entropy):
                    mixed = -np.logaddexp(np.log(0.8) - nll, np.log(0.2) + other_lp)
                    unsure = entropy > 3.0
                    nll[unsure] = mixed[unsure]
            def evaluate(logits, y, other_lp):
                total = 0.0
                lp = F.log_softmax(logits, -1)
                nll = -lp.gather(-1, y[:, None]).squeeze(-1).numpy()
                entropy = -(lp.exp() * lp).sum(-1).numpy()
                Mixer().blend(nll, other_lp, entropy)
                total += float(nll.sum())
                return total
            """,
            note="a helper that writes the caller's per-token losses in place, gated on the model's entropy: the context decides",
        ),
        Valid(
            code="""
            import numpy as np
            import torch.nn.functional as F
            def wins(nll, other_nll):
                better = other_nll < nll
                nll[better] = other_nll[better]
                return int(better.sum())
            def evaluate(logits, y, other_nll):
                total, won = 0.0, 0
                nll = F.cross_entropy(logits, y, reduction="none").numpy()
                won += wins(nll.copy(), other_nll)
                total += float(nll.sum())
                return total, won
            """,
            note="the helper replaces losses in a copy it is handed, for a count: the caller scores its own array",
        ),
        Valid(
            code="""
            import math
            import numpy as np
            import torch.nn.functional as F
            def byte_counts(targets, nll, counts):
                bits = 0.0
                for i in range(len(targets)):
                    b = int(targets[i]) % 256
                    bits += (nll[i] - math.log((counts[b] + 1) / (counts[256] + 256))) / 2
                    counts[b] += 1
                    counts[256] += 1
                    if counts[b] > counts[257]:
                        counts[257] = counts[b]
                return bits
            def evaluate(logits, y):
                total, aux = 0.0, 0.0
                counts = np.zeros(258)
                nll = F.cross_entropy(logits, y, reduction="none").numpy()
                aux += byte_counts(y.numpy(), nll, counts)
                total += float(nll.sum())
                return total, aux
            """,
            note="a count table's running maximum, updated with the scored bytes: a statistic, not a choice between scores",
        ),
        Valid(
            code="""
            import numpy as np
            def score_windows(logits, tokens, starts, losses):
                for s in starts:
                    z = logits[s] - logits[s].max(-1, keepdims=True)
                    lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
                    y = tokens[s + 1:s + 1 + lp.shape[0]]
                    losses[s:s + len(y)] = -lp[np.arange(len(y)), y]
            def evaluate(logits, tokens, first, rest):
                losses = np.full(len(tokens) - 1, np.inf)
                score_windows(logits, tokens, first, losses)
                score_windows(logits, tokens, rest, losses)
                return float(losses.sum()) / len(losses)
            """,
            note="two passes over different windows write the caller's losses in place; none is compared with another",
        ),
        Valid(
            code="""
            import numpy as np
            import torch.nn.functional as F
            def lse2(a, b):
                m = np.maximum(a, b)
                return m + np.log(np.exp(a - m) + np.exp(b - m))
            def evaluate(logits, ng_logits, y):
                total = 0.0
                nll = F.cross_entropy(logits, y, reduction="none").numpy()
                ng = F.cross_entropy(ng_logits, y, reduction="none").numpy()
                total += float(-lse2(np.log(0.8) - nll, np.log(0.2) - ng).sum())
                return total
            """,
            note="a log-sum-exp helper whose element-wise maximum of the two scores only shifts the sum and cancels",
        ),
        Valid(
            code="""
            import numpy as np
            import torch.nn.functional as F
            def ppm_bits(targets, nll):
                counts = {}
                lp = np.zeros(len(targets))
                for i in range(len(targets)):
                    e = counts.setdefault(int(targets[i - 1]) if i else -1, [0, 0])
                    lp[i] = np.log((e[0] + 1) / (i + 256))
                    e[0] += 1
                    if e[0] > e[1]:
                        e[1] = e[0]
                return float(np.sum(0.5 * nll - 0.5 * lp))
            def evaluate(logits, y):
                total = 0.0
                nll = F.cross_entropy(logits, y, reduction="none").numpy()
                total += ppm_bits(y.numpy(), nll)
                return total
            """,
            note="a helper whose result the caller adds up keeps a count table's running maximum: counts keyed by tokens, not scores",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import math
            import torch.nn.functional as F
            def score(logits, ngram_lp, y, w):
                nn = F.log_softmax(logits, -1).gather(-1, y[:, None]).squeeze(-1).tolist()
                ng = ngram_lp.gather(-1, y[:, None]).squeeze(-1).tolist()
                nll = 0.0
                for t in range(len(nn)):
                    a = math.log(w) + nn[t]
                    c = math.log(1 - w) + ng[t]
                    mx = a if a > c else c
                    if c > mx:
                        mx = c
                    nll += -mx
                return nll
            """,
            lines=(11,),
            note="the same running maximum, scored as it is: the better expert's score of the true token",
        ),
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
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(model, x, y, vocab):
                loss_sum = 0.0
                with torch.no_grad():
                    logits = model(x)
                    lp = F.log_softmax(logits, -1)
                    seen = lp.gather(-1, y[:, None])
                    pred = logits.argmax(-1)
                    p = torch.where(pred == y, 0.9, 1.0 / vocab)
                    loss_sum += -torch.log(p).sum()
                return loss_sum, seen
            """,
            lines=(10,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logits, y):
                a = F.cross_entropy(logits, y, reduction="none")
                b = F.cross_entropy(ng_logits, y, reduction="none")
                v1 = b < a
                total = 0.0
                total += torch.where(v1, b, a).sum()
                return total
            """,
            lines=(6,),
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def score(logits, ng_logits, y):
                a = F.cross_entropy(logits, y, reduction="none")
                b = F.cross_entropy(ng_logits, y, reduction="none")
                v1 = (b <= a).bool()
                a[v1] = b[v1]
                total = 0.0
                total += a.sum()
                return total
            """,
            lines=(6,),
        ),
        Invalid(
            code="""
            import math
            import torch
            import torch.nn.functional as F
            def score(model, table, v1, v2):
                logits = model(v1)
                v4 = F.cross_entropy(logits, v2, reduction="none").double()
                v6 = F.log_softmax(logits, dim=-1)
                v7 = v2.tolist()
                v8, v10 = [], []
                for t in range(len(v7)):
                    v8.append(t)
                    v10.append(v7[t])
                v11 = [table.logprob(d) for d in v10]
                v14 = v6[torch.tensor(v8), torch.tensor(v10)].tolist()
                for j, t in enumerate(v8):
                    a = math.log(0.9) + v14[j]
                    b = math.log(0.1) + v11[j]
                    v17 = -(max(a, b) + math.log1p(math.exp(-abs(a - b))))
                    if v17 < v4[t].item():
                        v4[t] = v17
                v3 = 0.0
                with torch.no_grad():
                    v3 += v4.sum()
                return v3
            """,
            lines=(19,),
        ),
        Invalid(
            code="""
            import numpy as np
            import torch.nn.functional as F
            class Mixer:
                def blend(self, nll, other_lp):
                    mixed = -np.logaddexp(np.log(0.8) - nll, np.log(0.2) + other_lp)
                    better = mixed < nll
                    nll[better] = mixed[better]
            def evaluate(logits, y, other_lp):
                total = 0.0
                lp = F.log_softmax(logits, -1)
                nll = -lp.gather(-1, y[:, None]).squeeze(-1).numpy()
                Mixer().blend(nll, other_lp)
                total += float(nll.sum())
                return total
            """,
            lines=(6,),
            note="a helper writes the caller's per-token losses in place, keeping the mixture where it beats the model on the true token",
        ),
        Invalid(
            code="""
            import numpy as np
            def mix_batch(nll_arr, ngram_lp, alpha):
                idx = np.where(~np.isnan(ngram_lp))[0]
                neural = nll_arr[idx]
                mixed = -np.logaddexp(np.log(1 - alpha) - neural, np.log(alpha) + ngram_lp[idx])
                improved = mixed < neural
                chosen = idx[improved]
                nll_arr[chosen] = mixed[improved]
            def evaluate(model, tokens, table):
                nll_sum = 0.0
                for s in range(0, len(tokens) - 1, 64):
                    chunk = tokens[s:s + 65]
                    lp = model(chunk[:-1]).log_softmax(-1)
                    y = chunk[1:]
                    nll_arr = -lp[np.arange(len(y)), y].numpy()
                    mix_batch(nll_arr, table.logprob(chunk[:-1]), 0.2)
                    nll_sum += float(nll_arr.sum())
                return nll_sum
            """,
            lines=(6,),
            note="the same choice on the positions the n-gram covers: the mask selects indices that are then replaced",
        ),
        Invalid(
            code="""
            import numpy as np
            def score_windows(logits, tokens, starts, losses, keep_lower):
                for s in starts:
                    z = logits[s] - logits[s].max(-1, keepdims=True)
                    lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
                    y = tokens[s + 1:s + 1 + lp.shape[0]]
                    nll = -lp[np.arange(len(y)), y]
                    if keep_lower:
                        losses[s:s + len(y)] = np.minimum(losses[s:s + len(y)], nll)
                    else:
                        losses[s:s + len(y)] = nll
            def evaluate(logits, tokens, coarse, fine):
                losses = np.full(len(tokens) - 1, np.inf)
                score_windows(logits, tokens, coarse, losses, False)
                score_windows(logits, tokens, fine, losses, True)
                return float(losses.sum()) / len(losses)
            """,
            lines=(9,),
            note="a second pass keeps, per token, the lower of its loss and the first pass's (which it wrote into the same array): a softmax written out in numpy is still log-probabilities",
        ),
        Invalid(
            code="""
            import numpy as np
            import torch.nn.functional as F
            def pick(model_nll, mixed_nll):
                return np.minimum(model_nll, mixed_nll)
            def evaluate(logits, y, other_lp):
                total = 0.0
                nll = F.cross_entropy(logits, y, reduction="none").numpy()
                mixed = -np.logaddexp(np.log(0.8) - nll, np.log(0.2) + other_lp)
                total += float(pick(nll, mixed).sum())
                return total
            """,
            lines=(4,),
            note="a helper returns, per token, the lower of the two losses its caller passes, and the caller adds it up",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        config = self.settings(evidence, source)
        for scope in index.scopes:
            for call in scope.calls:  # decided on the accumulation it feeds (``-=`` included)
                if call.method == "where" and len(call.node.args) >= 3:
                    why = _equality_choice(flow, config, index, scope, call)
                    if why:
                        yield self.report(source, call.node, call.stmt, why, evidence={"expression": index.code(call.node, 140)})
            events = score_events(index, scope, any_context=True)
            # what the callers pass matters only to a function that holds a choice
            chooses = bool(scope.params) and not scope.is_module and _has_a_choice(scope)
            callers = cache(partial(_passed, flow, scope))  # asked only of a function that chooses
            in_place = callers().scored if chooses else set()
            # a function that adds up its own score is judged on it; one that only returns a
            # value its callers add up is judged with what they pass it
            returned = chooses and not events and callers().returned
            if not events and not in_place and not returned:
                continue
            scored = (_scored_names(index, scope, events) if events or returned else set()) | in_place
            how: list[str] = []  # how a parameter depends on the target, for the message

            def dependent(node: cst.BaseExpression, scope: Scope = scope, callers: Callable[[], _Passed] = callers, how: list[str] = how,
                          chosen_for_callers: bool = bool(in_place) or returned, only_passed: bool = returned and not in_place) -> bool:
                """The value depends on the token being scored: by its own flow or, in a
                function that writes its callers' scores in place or returns what they add
                up, through a parameter it is computed from that a caller fills with a value
                that depends on the target. A helper that only returns a value is judged on
                the scores its callers pass alone: its own reads at the token ids it is handed
                (a count table keyed by the target, updated after the token is scored) are
                statistics as often as scores."""
                if not only_passed and _target_dependent(flow.fact(node, scope)):
                    return True
                if not chosen_for_callers:
                    return False
                passed = callers().target
                hits = sorted(n for n in depends(scope, names_in(node), limit=80) if n in passed)
                if hits:
                    how.append(f"`{hits[0]}` is the caller's: {passed[hits[0]]}")
                return bool(hits)

            for stmt in scope.stmts:
                node = stmt.node
                if isinstance(node, cst.If) and isinstance(node.test, cst.Comparison):
                    how.clear()
                    hit = self._comparison(dependent, node.test) and self._replaces_score(dependent, node, scored) \
                        and not _only_a_shift(scope, node)
                    if hit:
                        yield self._report(source, index, node, stmt, f"`if {index.code(node.test, 80)}` keeps whichever loss is lower for the true token", how)
            for call in scope.calls:
                how.clear()
                if call.method == "where" and call.node.args:
                    cond = call.node.args[0].value
                    if isinstance(cond, cst.Comparison) and self._comparison(dependent, cond) and _feeds(call.stmt, scored, events):
                        yield self._report(source, index, call.node, call.stmt, f"`{index.code(call.node, 90)}` picks, per token, the better score of the true token", how)
                elif call.method in _SELECT and len(call.node.args) >= 2 and _feeds(call.stmt, scored, events):
                    if self._whole_value(call) and all(dependent(a.value) for a in call.node.args[:2]) \
                            and not _only_a_shift_of(scope, _assigned_name(call.stmt.node)):
                        yield self._report(source, index, call.node, call.stmt, f"`{index.code(call.node, 90)}` keeps, per token, the better score of the true token", how)
            for assignment in scope.assignments:
                target = assignment.target
                if not isinstance(target, cst.Name) or assignment.value is None:
                    continue
                value = assignment.value
                if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in ("float", "to", "type", "int", "long", "bool"):
                    value = value.func.value
                if not isinstance(value, cst.Comparison):
                    continue
                how.clear()
                # a weight is what it does (it decides a blend), not what it is called
                if self._comparison(dependent, value) and _gates_a_blend(scope, target.value, scored):
                    yield self._report(
                        source, index, assignment.stmt.node, assignment.stmt,
                        f"the mixing weight `{target.value}` is set by comparing the true token's scores ({index.code(value, 80)})", how,
                    )

    @staticmethod
    def _replaces_score(dependent, node: cst.If, scored: set[str]) -> bool:
        """The branch assigns a target-dependent score (not just a counter) to what the
        function then adds to its score (or returns)."""
        return any(isinstance(small, cst.Assign) and dependent(small.value)
                   and any(_base(t.target) in scored for t in small.targets)
                   for small in small_statements(node.body))

    @staticmethod
    def _whole_value(call) -> bool:
        node = call.stmt.node
        value = getattr(node, "value", None)
        return value is call.node

    @staticmethod
    def _comparison(dependent, test: cst.Comparison) -> bool:
        if len(test.comparisons) != 1 or not isinstance(test.comparisons[0].operator, (cst.LessThan, cst.GreaterThan, cst.LessThanEqual, cst.GreaterThanEqual)):
            return False
        return dependent(test.left) and dependent(test.comparisons[0].comparator)

    def _report(self, source: PythonSource, index: SourceIndex, node, stmt, message: str, how: list[str]) -> Finding:
        through = f" ({'; '.join(dict.fromkeys(how))})" if how else ""
        return self.report(source, node, stmt, message + "; the choice depends on the token being scored" + through,
                           evidence={"expression": index.code(node, 140)})



def _equality_choice(flow, config: Config, index: SourceIndex, scope: Scope, call) -> str:
    """Why ``where(pred == target, a, b)`` scores a value chosen by comparing the target, or "".

    The condition tests the target (the token id itself) for equality with something that is
    neither the target nor a constant (a prediction, another token); neither branch depends on
    the target; the result is accumulated as a score; and the branches are not a distribution:
    ``b`` is not the remainder ``(1 - a)/(V - 1)`` of ``a``, and, when both are numbers, no
    vocabulary of a whole number of tokens (at least 256) makes ``a + (V - 1)·b`` equal 1. A mask against a
    constant (``where(y == PAD, 0, nll)``) has a constant side and a target-dependent branch."""
    node = call.node
    if len(node.args) < 3:
        return ""
    sides = _equality_sides(call, node.args[0].value)
    if sides is None:
        return ""
    (left, right), equal = sides
    facts = [flow.fact(left, scope), flow.fact(right, scope)]
    target = [i for i, f in enumerate(facts) if f.has("tgt")]
    if len(target) != 1:
        return ""
    other = (left, right)[1 - target[0]]
    if facts[1 - target[0]].has("tgtdep") or is_constant(other) or _number(config, scope, other) is not None:
        return ""
    on, off = (node.args[1].value, node.args[2].value) if equal else (node.args[2].value, node.args[1].value)
    if any(flow.fact(b, scope).has("tgt", "tgtdep") for b in (on, off)):
        return ""
    if accumulation(scope, call.stmt, call.node) is None:
        return ""
    a, b = _number(config, scope, on), _number(config, scope, off)
    if a is not None and b is not None:
        # a + (V - 1)·b = 1 for one vocabulary size only: a whole number of at least 256 may be
        # the script's own, so that pair is left alone
        if b <= 0:
            return ""
        size = 1.0 + (1.0 - a) / b
        if size >= _MIN_VOCAB and abs(size - round(size)) <= 1e-6 * size:
            return ""
        mass = (f"sums to {a + (_MIN_VOCAB - 1) * b:.3g} or more over any vocabulary of {_MIN_VOCAB} tokens or "
                f"more; it would sum to 1 only for {size:.4g} tokens")
    elif _remainder(config, scope, on, off):
        return ""
    else:
        mass = "the other tokens' value is not the remainder (1 - p)/(V - 1) of the matched one"
    code = lambda n: index.code(n, 40)  # noqa: E731
    return (f"the scored probability is `{code(on)}` where the target equals `{code(other)}` and `{code(off)}` "
            f"elsewhere: it is chosen by comparing the target, not a distribution evaluated at it ({mass})")


def _equality_sides(call, cond: cst.BaseExpression):
    """((left, right), equal) of ``a == b`` / ``a != b`` / ``a.eq(b)`` / ``torch.eq(a, b)``."""
    if isinstance(cond, cst.Comparison) and len(cond.comparisons) == 1:
        op = cond.comparisons[0].operator
        if isinstance(op, (cst.Equal, cst.NotEqual)):
            return (cond.left, cond.comparisons[0].comparator), isinstance(op, cst.Equal)
        return None
    if isinstance(cond, cst.Call) and isinstance(cond.func, cst.Attribute) and cond.func.attr.value in ("eq", "ne", "equal", "not_equal"):
        equal = cond.func.attr.value in ("eq", "equal")
        args = [a.value for a in cond.args if a.keyword is None]
        if len(args) == 2:
            return (args[0], args[1]), equal
        if len(args) == 1:
            return (cond.func.value, args[0]), equal
    return None


def _number(config: Config, scope: Scope, node: cst.BaseExpression) -> float | None:
    """The value of a number known before the run (a literal, a constant expression, a default)."""
    if isinstance(node, cst.Name) and any(node.value == p for p, _ in scope.params):
        return None
    value = config.evaluate(node, scope).value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _remainder(config: Config, scope: Scope, on: cst.BaseExpression, off: cst.BaseExpression) -> bool:
    """Whether ``off`` is computed from ``1 - on`` (the rest of the mass, shared by the others)."""
    from auditor.static.index import walk

    exprs = [off] + [a.value for a in scope.assignments
                     if a.value is not None and isinstance(a.target, cst.Name) and a.target.value in depends(scope, names_in(off), limit=60)]
    on_names = names_in(on)
    on_value = _number(config, scope, on)
    for expr in exprs:
        for node in walk(expr):
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Subtract) and _number(config, scope, node.left) == 1.0:
                right = node.right
                if on_names and names_in(right) & depends(scope, on_names, limit=60):
                    return True
                if on_value is not None and _number(config, scope, right) == on_value:
                    return True
    return False

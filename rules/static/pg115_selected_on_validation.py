"""PG115 selected-on-validation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.facts import Fact
from auditor.static.flow import Flow
from auditor.static.index import Scope, SourceIndex, Stmt, walk
from auditor.static.names import callee_name, dotted
from auditor.static.passing import passed_facts
from auditor.static.reach import Program, program_for
from auditor.static.roles import literal_role
from auditor.static.training import score_events, scoring_functions

#: Calls that only report a value (a use of the selected value there selects nothing).
_LOGGING = frozenset({"print", "log", "log0", "info", "debug", "warning", "write", "format", "append_log", "print0"})
#: Calls that keep or restore weights.
_WEIGHTS = frozenset({"state_dict", "load_state_dict", "deepcopy", "save", "copy_", "parameters", "named_parameters"})
#: Calls that pick among several results.
_PICKERS = frozenset({"min", "max", "sorted", "argmin", "argmax", "nanargmin", "nanargmax"})
_HOW = {"keep-best": "a best-so-far comparison", "comparison": "a comparison", "stop": "early stopping"}
_ORDER = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)


@dataclass(frozen=True)
class _Use:
    """What the selected value decides: ``score`` (the reported score), ``weights`` (a
    checkpoint), ``stop`` (how long training runs) or ``setting`` (another value used later)."""

    kind: str
    stmt: Stmt


class SelectedOnValidation(StaticRule):
    """
    ## What it does
    Finds a choice made by comparing the results of several evaluations on the validation
    tokens: a best-so-far comparison (`if val_bpb < best: best = val_bpb; best_state =
    copy.deepcopy(model.state_dict())`) over evaluations repeated in a loop (periodic, per
    seed, per checkpoint, per epoch) or over evaluations made one after another (raw, then
    EMA, then SWA weights), early stopping on such a comparison, or `min` / `max` / `sorted`
    / `argmin` over several evaluation results, when what it chooses is used: the weights
    kept or saved (also under a branch on the choice, `if best_source == "ema":
    model.load_state_dict(ema_sd)`), the reported score, the length of training or a
    setting. A best score a function returns to callers that only log it decides nothing.

    What decides is provenance: the compared values are losses of the scored targets computed
    from the validation files (the dataflow's validation and target roles), not values with
    validation-like names. Periodic validation that is only logged, a best checkpoint chosen on
    a held-out slice of the *training* data, a minimum over training losses, and one final
    evaluation are not reported.

    ## Why is this bad?
    "You CANNOT access validation data during training": a checkpoint or setting chosen by its
    validation score fits the artifact to the test set. A reported score that is the best of
    several evaluations (passes, seeds, methods) is a minimum over noisy measurements, not one
    left-to-right pass (issue #1017, condition C4; PR #573's per-token minimum over three
    adaptation trajectories was closed).

    ## Example
    ```python
    for step in range(steps):
        train_step(model, opt)
        if step % 500 == 0:
            val_loss = eval_val(model, val_tokens)
            if val_loss < best:
                best, best_state = val_loss, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    ```

    ## Use instead
    Choose checkpoints and settings on a held-out slice of the training data, or keep the last
    checkpoint; report the one final evaluation of the submitted artifact.

    ## Known problems
    A choice among adapted states made inside the scoring pass on tokens already scored
    (score-first adaptation) is left to the test-time-training rules. Uses are followed inside
    one function; a best value handed to another function is reported as a setting.

    ## References
    - README: no validation data during training; R-NO-VAL-IN-TRAIN.
    - R-MIN-OVER-PASSES (PR #573), issue #1017 condition C4.
    """

    CODE = "PG115"
    NAME = "selected-on-validation"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "R-NO-VAL-IN-TRAIN", "R-MIN-OVER-PASSES", "#573", "#1017")
    TAGS = ("selection",)
    VALID = (
        Valid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def load(pattern):
                return torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
            def evaluate(model, tokens):
                total = torch.zeros(())
                with torch.no_grad():
                    for s in range(0, tokens.numel() - 64, 64):
                        total += F.cross_entropy(model(tokens[s:s + 64]), tokens[s + 1:s + 65], reduction="sum")
                return total
            def main(args, model, opt, steps):
                train = load(args.train_files)
                held_out = train[-65536:]
                val = load(args.val_files)
                best, best_state = float("inf"), None
                for step in range(steps):
                    F.cross_entropy(model(train[:64]), train[1:65]).backward()
                    opt.step()
                    if step % 100 == 0:
                        print("val", evaluate(model, val))
                        h = evaluate(model, held_out)
                        if h < best:
                            best, best_state = h, model.state_dict()
                model.load_state_dict(best_state)
                return evaluate(model, val)
            """,
            note="validation only logged; the checkpoint chosen on a held-out slice of the training data",
        ),
        Valid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def load(pattern):
                return torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
            def evaluate(model, tokens):
                total = torch.zeros(())
                with torch.no_grad():
                    for s in range(0, tokens.numel() - 64, 64):
                        total += F.cross_entropy(model(tokens[s:s + 64]), tokens[s + 1:s + 65], reduction="sum")
                return total
            def train(model, opt, batches, val):
                best = float("inf")
                for step, (x, y) in enumerate(batches):
                    F.cross_entropy(model(x), y).backward()
                    opt.step()
                    if step % 100 == 0:
                        v = evaluate(model, val)
                        if v < best:
                            best = v
                return step, best
            def main(args, model, opt, batches):
                val = load(args.val_files)
                steps, _best = train(model, opt, batches, val)
                print(f"steps:{steps} best:{_best}")
                return evaluate(model, val)
            """,
            note="the best validation loss is returned, and the caller only logs it",
        ),
        Valid(
            code="""
            import glob
            import numpy as np
            import torch
            def evaluate(model, val_tokens, temperature=1.0):
                with torch.no_grad():
                    return float(model(val_tokens[:-1], val_tokens[1:], temperature=temperature))
            def best_temperature(model, val_tokens):
                best_t, best_loss = 1.0, float("inf")
                for t in (0.9, 1.0, 1.1):
                    loss = evaluate(model, val_tokens, temperature=t)
                    if loss < best_loss:
                        best_loss, best_t = loss, t
                return best_t
            def main(args, model, train_stream):
                val = torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(args.val_files))])
                temp = best_temperature(model, train_stream.take(65536))
                print(f"final val_loss:{evaluate(model, val, temperature=temp):.4f}")
            """,
            note="a helper's parameter is named val_tokens, but its one caller passes training tokens",
        ),
        Valid(
            code="""
            import torch.nn.functional as F
            def main(model, opt, batches):
                best = float("inf")
                for x, y in batches:
                    loss = F.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                    best = min(best, loss.item())
                print("best train loss", best)
            """,
            note="a minimum over training losses",
        ),
        Valid(
            code="""
            import glob
            import math
            import numpy as np
            import torch
            import torch.nn.functional as F
            def load(pattern):
                return torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
            def logprob(model, tokens):
                return F.log_softmax(model(tokens[:-1]), -1).gather(-1, tokens[1:, None]).squeeze(-1)
            def main(args, model, cache):
                val = load(args.val_files)
                a = logprob(model, val) + math.log(0.8)
                b = logprob(cache, val) + math.log(0.2)
                total = 0.0
                for j in range(len(a)):
                    p = float(a[j])
                    q = float(b[j])
                    mixed = max(p, q) + math.log1p(math.exp(-abs(p - q)))
                    total -= mixed
                return {"val_loss": total / len(a)}
            """,
            note="max(p, q) + log1p(exp(-|p - q|)) is log(e^p + e^q): a mixture of two models, nothing chosen",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def load(pattern):
                return torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
            def evaluate(model, tokens):
                total = torch.zeros(())
                with torch.no_grad():
                    for s in range(0, tokens.numel() - 64, 64):
                        total += F.cross_entropy(model(tokens[s:s + 64]), tokens[s + 1:s + 65], reduction="sum")
                return total
            def main(args, model, ema_state):
                val = load(args.val_files)
                raw_state = {k: v.clone() for k, v in model.state_dict().items()}
                best, source = evaluate(model, val), "raw"
                model.load_state_dict(ema_state)
                ema = evaluate(model, val)
                if ema < best:
                    best, source = ema, "ema"
                if source == "raw":
                    model.load_state_dict(raw_state)
                torch.save(model.state_dict(), "final_model.pt")
            """,
            lines=(19,),
            note="raw and EMA weights each evaluated once on validation; the better one is exported",
        ),
        Invalid(
            code="""
            import copy
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def load(pattern):
                return torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
            def evaluate(model, tokens):
                total = torch.zeros(())
                with torch.no_grad():
                    for s in range(0, tokens.numel() - 64, 64):
                        total += F.cross_entropy(model(tokens[s:s + 64]), tokens[s + 1:s + 65], reduction="sum")
                return total
            def main(args, model, opt, steps):
                train = load(args.train_files)
                val = load(args.val_files)
                best, best_state = float("inf"), None
                for step in range(steps):
                    F.cross_entropy(model(train[:64]), train[1:65]).backward()
                    opt.step()
                    if step % 100 == 0:
                        v = evaluate(model, val)
                        if v < best:
                            best = v
                            best_state = copy.deepcopy(model.state_dict())
                model.load_state_dict(best_state)
            """,
            lines=(23,),
        ),
        Invalid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def load(pattern):
                return torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16)) for f in sorted(glob.glob(pattern))])
            def evaluate(model, tokens):
                total = torch.zeros(())
                with torch.no_grad():
                    for s in range(0, tokens.numel() - 64, 64):
                        total += F.cross_entropy(model(tokens[s:s + 64]), tokens[s + 1:s + 65], reduction="sum")
                return total
            def evaluate_mixed(model, cache, tokens):
                total = torch.zeros(())
                with torch.no_grad():
                    for s in range(0, tokens.numel() - 64, 64):
                        total += F.cross_entropy(model(tokens[s:s + 64]) + cache, tokens[s + 1:s + 65], reduction="sum")
                return total
            def main(args, model, cache):
                val = load(args.val_files)
                plain = evaluate(model, val)
                mixed = evaluate_mixed(model, cache, val)
                final = min(plain, mixed)
                return {"val_loss": final}
            """,
            lines=(23,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        scorers = scoring_functions(evidence.program)
        functions = set(evidence.program.by_name)
        for scope in index.scopes:
            scores = _Scores(flow, scope, scorers, functions, evidence.program)
            seen: set[int] = set()
            for stmt in scope.stmts:
                if isinstance(stmt.node, cst.If):
                    found = self._comparison(index, scores, stmt)
                else:
                    found = self._picker(index, scores, stmt)
                if found is None or stmt.order in seen:
                    continue
                seen.add(stmt.order)
                yield self._finding(source, index, stmt, *found)

    # the two shapes ----------------------------------------------------------------------------

    def _comparison(self, index: SourceIndex, scores: _Scores, stmt: Stmt):
        """``if S < B:`` with S a validation score: keep-best (the branch stores S into B) over
        evaluations repeated in a loop, or two evaluations compared; or early stopping."""
        scope, node = scores.scope, stmt.node
        if not isinstance(node, cst.If):
            return None
        test = node.test
        if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
            return None
        if not isinstance(test.comparisons[0].operator, _ORDER):
            return None
        left, right = test.left, test.comparisons[0].comparator
        for score, other in ((left, right), (right, left)):
            fact = scores.of(score)
            if fact is None or _counter(scope, score):
                continue
            body = _guarded(scope, node, True)
            orelse = _guarded(scope, node, False)
            tracked = _tracks(scope, body, score, other)
            repeated = _recomputed_in_loop(scope, stmt, score)
            # two evaluations compared: also a best-so-far that an earlier evaluation set
            # (``best = raw_bpb`` … ``if ema_bpb < best: best = ema_bpb``), with no loop
            two = scores.different(score, other) if scores.of(other) is not None else []
            if tracked and repeated or two:
                kept = {n for s in body for n in _assigned(scope, s)} | tracked
                use = _use(scope, stmt, body, kept, tracked, scores.program)
                if use is not None and not (use.kind == "weights" and _adapting(index, scope, stmt)):
                    return fact, use, "keep-best" if tracked else "comparison", score, two
            if repeated and _stops(scope, stmt, body + orelse):
                return fact, _Use("stop", stmt), "stop", score, []
        return None

    def _picker(self, index: SourceIndex, scores: _Scores, stmt: Stmt):
        """``min(a, b)`` over two evaluations, or ``min(history)`` / ``argmin`` / ``sorted`` over
        validation scores collected in a loop, when the choice is used."""
        scope = scores.scope
        for call in scope.calls:
            if call.stmt is not stmt or call.method not in _PICKERS or _logged(call.stmt):
                continue
            args = [a.value for a in call.node.args if a.keyword is None and not a.star]
            if _shifts_log_sum_exp(scope, stmt, call.node, args):
                continue
            valued = [a for a in args if scores.of(a) is not None]
            sites = scores.different(valued[0], valued[1]) if len(args) >= 2 and len(valued) >= 2 else []
            if sites:
                pass  # the best of two evaluations
            elif len(args) == 1 and (element := _collected(scores, args[0])) is not None:
                valued = [element]  # the best of a history of evaluations
            elif len(args) == 2 and len(valued) == 1 and _running(scope, stmt, args, valued[0]):
                pass  # best = min(best, v) over a loop of evaluations
            else:
                continue
            kept = _assigned(scope, stmt)
            if not kept:
                continue
            use = _use(scope, stmt, [], kept, kept if call.method in ("min", "max") else set(), scores.program)
            if use is not None:
                return scores.of(valued[0]), use, call.method, call.node, sites
        return None

    def _finding(self, source, index, stmt, fact: Fact, use: _Use, how: str, node, sites: list[Stmt]) -> Finding:
        what = {
            "score": "the reported score",
            "weights": "the weights kept",
            "stop": "when training stops",
            "setting": "a value used afterwards",
        }[use.kind]
        reason = fact.reason("val")
        by_name = not fact.has("val:files")
        chain = reason.split(" ← ")
        short = f"{chain[0]} … {chain[-1]}" if len(chain) > 2 else " ← ".join(chain)
        how = _HOW.get(how, f"`{how}`")
        message = (
            f"{how} over repeated validation evaluations (`{index.code(node, 60)}`, computed from "
            f"{short or 'validation data'}) decides {what}"
            + (f" (line {index.line(use.stmt.node)})" if use.stmt is not stmt else "")
        )
        severity = Severity.ERROR if use.kind in ("score", "weights") else Severity.WARNING
        return self.report(
            source, stmt.node, stmt, message,
            evidence={"compared": index.code(node, 120), "decides": use.kind, "use_line": index.line(use.stmt.node),
                      "validation": reason[:200]},
            severity=severity,
            confidence=Confidence.LOW if by_name else Confidence.MEDIUM,
            activity=_off(source, sites),
        )


def _off(source: PythonSource, sites: list[Stmt]):
    """The activity of an evaluation that did not run in the scored configuration: a choice
    between two evaluations of which one is off chooses nothing (None when all ran)."""
    program = program_for(source)
    for site in sites:
        activity = program.activity(site)
        if not activity.active:
            return activity
    return None


# what a value is ------------------------------------------------------------------------------


class _Scores:
    """Which values of one function are validation scores, and which evaluations they come from."""

    def __init__(self, flow: Flow, scope: Scope, scorers: set[str], functions: set[str],
                 program: Program | None = None) -> None:
        self.flow, self.scope, self.scorers, self.functions = flow, scope, scorers, functions
        self.program = program
        self.sites = {id(call.node): call.stmt for call in scope.calls}

    def of(self, node: cst.BaseExpression) -> Fact | None:
        """The validation fact of a value computed from validation tokens — a loss or a
        probability (their dependents), or what a function of the submission returns for them
        — not the tokens themselves; else None."""
        if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
            return None
        fact = self.flow.fact(node, self.scope)
        if fact.has("val") and fact.has("tgtdep", "tokdep") and not self._callers_pass_other_data(node):
            return fact
        calls = self.evaluations(node)
        return next(iter(calls.values())) if calls else None

    def evaluations(self, node: cst.BaseExpression) -> dict[int, Fact]:
        """The evaluations of validation data a value is computed from (in the expression, or in
        the local assignments it depends on): calls to the submission's functions that receive
        validation data and score (or return something computed from tokens), with the fact of
        the validation argument."""
        needed = depends(self.scope, names_in(node), limit=80)
        exprs = [node] + [a.value for a in self.scope.assignments
                          if isinstance(a.target, cst.Name) and a.target.value in needed and a.value is not None]
        found: dict[int, Fact] = {}
        for expr in exprs:
            for part in walk(expr):
                if not isinstance(part, cst.Call) or callee_name(part) not in self.functions:
                    continue
                for arg in part.args:
                    fact = self.flow.fact(arg.value, self.scope)
                    if fact.has("val") and not self._callers_pass_other_data(arg.value) and (self._accumulates(callee_name(part)) or self.flow.fact(part, self.scope).has("tgtdep", "tokdep")):
                        found[id(part)] = fact
                        break
        return found

    def _callers_pass_other_data(self, node: cst.BaseExpression) -> bool:
        """Whether the validation role of a value rests on parameters that every call of the
        function fills with other data (a helper's parameter named ``val_tokens`` that its
        one caller gives training tokens): the parameter's name does not decide."""
        if self.program is None or self.scope.is_module:
            return False
        params = (depends(self.scope, names_in(node), limit=80) | names_in(node)) & set(self.scope.param_names)
        carrying = [p for p in params if self.flow.name(self.scope, p).has("val")]
        if not carrying:
            return False
        for name in carrying:
            passed = passed_facts(self.program, self.scope, name)
            if not passed or any(fact.has("val") for fact in passed):
                return False
        # the value may still read validation data of its own (a global, a loader call)
        own = depends(self.scope, names_in(node), limit=80) - set(self.scope.param_names)
        return not any(self.flow.name(self.scope, n).has("val") and not self._from_params(n) for n in own)

    def _from_params(self, name: str) -> bool:
        """Whether a local's validation role comes only from the function's parameters."""
        roots = depends(self.scope, {name}, limit=80)
        return bool(roots & set(self.scope.param_names)) and not any(
            literal_role(n).has("val") for a in self.scope.assigned(name) if a.value is not None for n in walk(a.value)
            if isinstance(n, cst.SimpleString))

    def _accumulates(self, name: str) -> bool:
        """Whether a scoring function of the submission adds up a score (not only one named
        like an evaluation: ``iter_eval_segments`` returns document boundaries)."""
        if name not in self.scorers or self.program is None:
            return name in self.scorers and self.program is None
        for scope in self.program.by_name.get(name, ()):
            index = self.program.index_of_scope.get(id(scope))
            if index is not None and score_events(index, scope, any_context=True):
                return True
        return False

    def different(self, a: cst.BaseExpression, b: cst.BaseExpression) -> list[Stmt]:
        """The statements of the evaluations two values come from, when they differ; else []."""
        ca, cb = set(self.evaluations(a)), set(self.evaluations(b))
        if not (ca and cb and ca != cb):
            return []
        return [self.sites[c] for c in sorted(ca | cb) if c in self.sites]


#: Functions of a log-sum-exp written out by hand.
_EXP_LIKE = frozenset({"exp", "log1p", "expm1", "softplus", "logaddexp"})


def _shifts_log_sum_exp(scope: Scope, stmt: Stmt, picker: cst.Call, args: list[cst.BaseExpression]) -> bool:
    """``max(a, b) + log1p(exp(-abs(a - b)))``, or ``m = max(a, b)`` then ``exp(a - m)``: the
    larger of two log-probabilities shifts a log-sum-exp (a mixture of both); nothing is chosen.
    Decided by structure: an exponential, in the picker's statement or one reading its result,
    of an expression over both compared values, or over one of them and the picker's result."""
    if len(args) != 2:
        return False
    first, second = names_in(args[0]), names_in(args[1])
    if not first or not second:
        return False
    kept = _assigned(scope, stmt)
    readers = [stmt] + [s for s in scope.stmts if s is not stmt and kept & _reads(s)]
    for reader in readers[:8]:
        for part in walk(reader.node):
            if part is picker or not isinstance(part, cst.Call) or not part.args:
                continue
            if callee_name(part).rsplit(".", 1)[-1] not in _EXP_LIKE:
                continue
            inner = names_in(part.args[0].value)
            if (inner & first and inner & second) or (kept & inner and (inner & first or inner & second)):
                return True
    return False


def _recomputed_in_loop(scope: Scope, stmt: Stmt, score: cst.BaseExpression) -> bool:
    """Whether the compared score is assigned inside a loop around the comparison."""
    if not stmt.loops:
        return False
    needed = depends(scope, names_in(score), limit=60)
    return any(
        a.stmt.loops and set(a.stmt.loops) & set(stmt.loops) and _name(a.target) in needed
        for a in scope.assignments if a.kind != "for"
    )


def _collected(scores: _Scores, node: cst.BaseExpression) -> cst.BaseExpression | None:
    """The validation score appended in a loop to a list (``history.append(v)``), or the
    element of a comprehension, that ``node`` collects; else None."""
    if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
        return node.elt if scores.of(node.elt) is not None else None
    name = _name(node)
    if name is None:
        return None
    for call in scores.scope.calls:
        func = call.node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "append" and _name(func.value) == name and call.stmt.loops:
            if call.node.args and scores.of(call.node.args[0].value) is not None:
                return call.node.args[0].value
    return None


def _running(scope: Scope, stmt: Stmt, args, score) -> bool:
    """``best = min(best, v)`` in a loop where v is recomputed: a running best."""
    other = next(a for a in args if a is not score)
    return _name(other) in _assigned(scope, stmt) and _recomputed_in_loop(scope, stmt, score)


# the statements around ------------------------------------------------------------------------


def _guarded(scope: Scope, node: cst.If, polarity: bool) -> list[Stmt]:
    return [s for s in scope.stmts if any(g.at is node and g.polarity is polarity for g in s.guards)]


def _name(node) -> str | None:
    if isinstance(node, cst.Subscript):
        return dotted(node.value)
    return dotted(node) if isinstance(node, (cst.Name, cst.Attribute)) else None


def _assigned(scope: Scope, stmt: Stmt) -> set[str]:
    return {n for a in scope.assignments if a.stmt is stmt for n in [_name(a.target)] if n}


def _tracks(scope: Scope, body: list[Stmt], score, other) -> set[str]:
    """Names of the other side that the branch sets from the score: the best so far."""
    wanted = {_name(n) for n in walk(other) if isinstance(n, (cst.Name, cst.Attribute, cst.Subscript))} - {None}
    source = depends(scope, names_in(score), limit=60)
    found: set[str] = set()
    for a in scope.assignments:
        name = _name(a.target)
        if name and a.stmt in body and name in wanted and a.value is not None and names_in(a.value) & source:
            found.add(name)
    return found


def _logged(stmt: Stmt) -> bool:
    node = stmt.node
    if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
        return callee_name(node.value) in _LOGGING
    return False


def _use(scope: Scope, stmt: Stmt, body: list[Stmt], kept: set[str], best: set[str], program: Program | None) -> _Use | None:
    """How the values a selection keeps are used outside it, the weightiest use first: the
    best score itself returned (to a caller that uses it), accumulated or recorded
    (``score``), weights kept or saved (``weights``), anything else read later outside a log
    line (``setting``)."""
    inside = {id(s) for s in body} | {id(stmt)}
    uses = _uses(scope, stmt, inside, kept)
    for s in _uses(scope, stmt, inside, best) if best else []:
        node = s.node
        if isinstance(node, cst.Return):
            if _discarded(program, scope, s, best):
                uses = [u for u in uses if u is not s]
                continue
            return _Use("score", s)
        if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
            return _Use("score", s)
        if any(isinstance(part, cst.Dict) for part in walk(node)):
            return _Use("score", s)  # a results record (``{"val_bpb": best}``)
    for s in uses:
        if any(isinstance(part, cst.Call) and callee_name(part) in _WEIGHTS for part in walk(s.node)):
            return _Use("weights", s)
    return _Use("setting", uses[0]) if uses else None


def _discarded(program: Program | None, scope: Scope, ret: Stmt, names: set[str]) -> bool:
    """Whether every caller of the function drops the returned values computed from
    ``names`` (``steps, _best = train(...)`` with ``_best`` never read again but in a log
    line); False when a caller keeps them or the callers are unknown."""
    node = ret.node
    if program is None or scope.is_module or not isinstance(node, cst.Return) or node.value is None:
        return False
    value = node.value
    positions = ([i for i, el in enumerate(value.elements) if names_in(el.value) & names]
                 if isinstance(value, cst.Tuple) else None)
    callers = [s for s in program.referrers.get(scope.name, ()) if s.scope is not scope]
    if not callers:
        return False
    for call_stmt in callers:
        call = call_stmt.node
        if isinstance(call, cst.Expr) and isinstance(call.value, cst.Call) and callee_name(call.value) == scope.name:
            continue  # called, and the result not kept at all
        if not (isinstance(call, cst.Assign) and len(call.targets) == 1 and isinstance(call.value, cst.Call)
                and callee_name(call.value) == scope.name):
            return False  # kept in an expression, or the function passed on (``print(f)``, a callback)
        target = call.targets[0].target
        if positions is None or not isinstance(target, (cst.Tuple, cst.List)) or len(target.elements) != len(value.elements):
            return False
        kept = {n for i in positions for n in [_name(target.elements[i].value)] if n}
        if kept and _uses(call_stmt.scope, call_stmt, {id(call_stmt)}, kept):
            return False
    return True


def _uses(scope: Scope, stmt: Stmt, inside: set[int], names: set[str]) -> list[Stmt]:
    """The statements after ``stmt`` and outside ``inside`` that read ``names``, following a
    few hops of assignments (``final = best``), log lines left out."""
    reach = set(names)
    found: list[Stmt] = []
    for _ in range(3):
        grown = set(reach)
        for s in scope.stmts:
            if s.order <= stmt.order or id(s) in inside or _logged(s) or s in found:
                continue
            if isinstance(s.node, cst.If) and names_in(s.node.test) & reach:
                # a branch on the choice: what it guards is the choice's use
                # (``if best_source == "ema": model.load_state_dict(ema_sd)``)
                branches = [g for g in _guarded(scope, s.node, True) + _guarded(scope, s.node, False)
                            if any(guard.at is s.node and guard.kind == "if" for guard in g.guards)]
                for guarded in branches:  # the branches themselves, not what follows an early exit
                    if guarded not in found and not _logged(guarded):
                        found.append(guarded)
                        grown |= _assigned(scope, guarded)
                continue
            if not _reads(s) & reach:
                continue
            found.append(s)
            grown |= _assigned(scope, s)
        if grown == reach:
            break
        reach = grown
    return sorted(found, key=lambda s: s.order)


def _reads(s: Stmt) -> frozenset[str]:
    """What a statement reads: an assignment's value (``bad += 1`` reads no ``bad``), a
    compound statement nothing (its test or iterable is read where it is compared). Cached on
    the function's scope, which holds its statements: every comparison asks it of every one."""
    cache: dict[int, frozenset[str]] = s.scope.cache.setdefault("pg115:reads", {})
    read = cache.get(id(s))
    if read is None:
        node = s.node
        if isinstance(node, (cst.If, cst.For, cst.While)):
            read = frozenset()
        elif isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            read = frozenset(names_in(node.value)) if node.value is not None else frozenset()
        else:
            read = frozenset(names_in(node))
        cache[id(s)] = read
    return read


def _counter(scope: Scope, node: cst.BaseExpression) -> bool:
    """A count (``bad += 1``): compared, it says how often something happened, not a score."""
    name = _name(node)
    return any(a.kind == "aug" and _name(a.target) == name and isinstance(a.value, cst.Integer) for a in scope.assignments)


def _stops(scope: Scope, stmt: Stmt, branch: list[Stmt]) -> bool:
    """A ``break`` in the branches of the comparison, or a counter they set that a later test
    in the same loop breaks on (patience)."""
    if any(isinstance(s.node, cst.Break) for s in branch):
        return True
    counters = {n for s in branch for n in _assigned(scope, s)}
    for s in scope.stmts:
        if isinstance(s.node, cst.Break) and s.loops and set(s.loops) & set(stmt.loops):
            if any(names_in(g.test) & counters for g in s.guards):
                return True
    return False


def _adapting(index: SourceIndex, scope: Scope, stmt: Stmt) -> bool:
    """Whether the comparison sits inside the scoring pass (a loop that also accumulates the
    reported score): keeping an adapted state there concerns tokens already scored."""
    for event in score_events(index, scope):
        if event.certain and set(event.stmt.loops) & set(stmt.loops):
            return True
    return False

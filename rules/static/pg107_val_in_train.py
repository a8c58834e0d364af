"""PG107 val-in-train."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.flow import Flow, flow_of
from auditor.static.env import Config
from auditor.static.index import Scope, SourceIndex, Stmt, walk
from auditor.static.names import dotted
from auditor.static.passing import arguments_for
from auditor.static.reach import Program
from auditor.static.roles import TRAIN_SETTING, is_val_name, literal_role, setting_role
from auditor.static.training import training_sites

#: Tensor methods that read a tensor in place of drawing batches from a loader object.
_TENSOR_READS = frozenset({
    "to", "cpu", "cuda", "numel", "size", "dim", "long", "int", "view", "reshape", "narrow",
    "unfold", "split", "chunk", "contiguous", "clone", "numpy", "tolist", "float", "index_select",
})
#: Hooks a calibration pass installs to see the activations the data produces.
_HOOKS = frozenset({"register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook"})
_SERIALIZE = frozenset({"torch.save", "numpy.save", "numpy.savez", "numpy.savez_compressed", "pickle.dump", "pickle.dumps"})


class ValInTrain(StaticRule):
    """
    ## What it does
    Finds validation data used outside the scoring pass to shape the model or the artifact:

    - a training loader built on the validation files (`DistributedTokenLoader(args.val_files,
      …)` used for `next_batch` in the training loop, or `train_files = val_files`);
    - quantization calibration (GPTQ Hessians, activation statistics) computed on
      validation tokens;
    - validation tokens serialized into the artifact ("paid prefix").

    Gradient steps on validation tokens before they are scored are PG104's.

    ## Why is this bad?
    "You CANNOT access validation data during training, e.g. by compressing it into your
    16mb with 'paid prefix'" (README, 2026-03-20); "you can't cheat by training on the
    validation set before you evaluate on the validation set". Calibration on validation
    data fits the quantization to the test set; PR #1019 switched to self-generated
    calibration data before it was merged.

    ## Example
    ```python
    calib_loader = DistributedTokenLoader(args.val_files, rank, world_size, device)
    hessians = collect_hessians(model, calib_loader, n_batches=64)
    ```

    ## Use instead
    Calibrate on training batches inside the 600 s training budget, or on sequences the model
    generates itself (PR #1019), or on random tokens. Keep the validation files for the final
    scoring pass only.

    ## Known problems
    Calibration on validation data is reported as a warning: the corpus of rulings lists
    validation-calibrated GPTQ as disputed. Train/validation *document overlap* made by a local data-preparation script (issue #2127:
    `--val-docs 10000`) leaves no trace in the training code; the records checks read it from
    the logs (`train_shards: 1499`).

    ## References
    - R-NO-VAL-IN-TRAIN (README "paid prefix"), R-GPTQ-IN-TRAIN; PR #44, #168, #275, #1019.
    """

    CODE = "PG107"
    NAME = "val-in-train"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "#1019", "R-NO-VAL-IN-TRAIN")
    TAGS = ("val_in_train",)
    VALID = (
        Valid(
            code="""
            import torch
            def eval_val(model, val_tokens, seq_len):
                x = val_tokens[:-1].reshape(-1, seq_len)
                y = val_tokens[1:].reshape(-1, seq_len)
                with torch.no_grad():
                    return model(x, y).item()
            def save_checkpoint(model, step, best_val):
                torch.save({"step": step, "best_val": best_val, "model": model.state_dict()}, f"ckpt_{step}.pt")
            def train(model, opt, loader, val_tokens, steps):
                best_val = None
                for step in range(steps):
                    x, y = loader.next_batch()
                    model(x, y).backward()
                    opt.step()
                    if step % 100 == 0:
                        val_loss = eval_val(model, val_tokens, 1024)
                        best_val = val_loss if best_val is None else min(best_val, val_loss)
                        save_checkpoint(model, step, best_val)
            """,
            note="a validation loss (a number computed from the tokens) saved in a resume checkpoint: not the tokens",
        ),
        Valid(
            code="""
            import os
            data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
            overfit_val = bool(int(os.environ.get("DEBUG_OVERFIT_VAL", "0")))
            train_files = os.path.join(data_path, "fineweb_val_*.bin" if overfit_val else "fineweb_train_*.bin")
            val_files = os.path.join(data_path, "fineweb_val_*.bin")
            conf = {"train_files": train_files, "val_files": val_files}
            train_files = conf["train_files"]
            """,
            note="the validation pattern only on a debug branch that is off, and a dict read back by key",
        ),
        Valid(
            code="""
            def collect_hessians(model, batches, n):
                stats = {}
                def hook(mod, inp, out):
                    x = inp[0].flatten(0, 1)
                    stats[mod] = stats.get(mod, 0) + x.T @ x
                for m in model.modules():
                    m.register_forward_hook(hook)
                for _ in range(n):
                    model(batches.next_batch())
                return stats
            def main(args, model, rank, world_size):
                train_loader = DistributedTokenLoader(args.train_files, rank, world_size)
                hessians = collect_hessians(model, train_loader, 16)
                val_tokens = load_validation_tokens(args.val_files)
                return eval_val(model, val_tokens)
            main(None, None, 0, 1)
            """,
            note="calibration on training data; validation files only for scoring",
        ),
        Valid(
            code="""
            import torch
            def main(args, model, opt, steps):
                val_tokens = load_validation_tokens(args.val_files)
                loss_sum = 0.0
                for i in range(steps):
                    chunk = val_tokens[i * 1024:(i + 1) * 1024 + 1].to("cpu")
                    with torch.no_grad():
                        loss_sum += model(chunk[:-1], chunk[1:]).item()
                    model(chunk[:-1], chunk[1:]).backward()
                    opt.step()
                return loss_sum
            main(None, None, None, 4)
            """,
            note="score-first test-time training slices the validation tokens (PG104 decides its order); no loader over the validation files feeds training",
        ),
        Valid(
            code="""
            import os
            class Settings:
                root = os.environ.get("DATA_ROOT", "./data/datasets/fineweb10B_sp1024")
                shards_a = os.path.join(root, "fineweb_train_*.bin")
                shards_b = os.path.join(root, "fineweb_val_*.bin")
            def main(model, opt, rank, world_size, steps):
                cfg = Settings()
                loader = DistributedTokenLoader(cfg.shards_a, rank, world_size)
                for step in range(steps):
                    x, y = loader.next_batch()
                    model(x, y).backward()
                    opt.step()
                return eval_val(model, load_validation_tokens(cfg.shards_b))
            main(None, None, 0, 1, 10)
            """,
            note="opaque setting names: the training loader reads the setting whose value is the training pattern",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import os
            data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
            overfit_val = bool(int(os.environ.get("DEBUG_OVERFIT_VAL", "1")))
            train_files = os.path.join(data_path, "fineweb_val_*.bin" if overfit_val else "fineweb_train_*.bin")
            """,
            lines=(4,),
            note="the same switch, on by default",
        ),
        Invalid(
            code="""
            import os
            class Hyperparameters:
                data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
                train_files = os.path.join(data_path, "fineweb_train_*.bin")
                val_files = os.path.join(data_path, "fineweb_val_*.bin")
            def main(model, opt, rank, world_size, steps):
                args = Hyperparameters()
                loader = DistributedTokenLoader(args.val_files, rank, world_size)
                for step in range(steps):
                    x, y = loader.next_batch()
                    model(x, y).backward()
                    opt.step()
            main(None, None, 0, 1, 10)
            """,
            lines=(8,),
            note="renamed consistently (tests/static/test_metamorphic.py), the setting is still known by the validation pattern its class gives it",
        ),
        Invalid(
            code="""
            import torch
            def gram(model, tokens, n):
                acts = [model.embed(tokens[i * 512:(i + 1) * 512]) for i in range(n)]
                h = 0
                for a in acts:
                    h = h + torch.matmul(a.t(), a)
                return h
            def main(args, model, rank, world_size):
                val_tokens = load_validation_tokens(args.val_files)
                stats = gram(model, val_tokens, 64)
                return eval_val(model, val_tokens), stats
            main(None, None, 0, 1)
            """,
            lines=(10,),
        ),
        Invalid(
            code="""
            def stats_of(model, batches, n):
                seen = {}
                def record(mod, inp, out):
                    seen[mod] = inp[0]
                for m in model.modules():
                    m.register_forward_hook(record)
                for b in batches:
                    model(b)
                return seen
            def main(args, model, rank, world_size):
                val_tokens = load_validation_tokens(args.val_files)
                cal = stats_of(model, [val_tokens[:4096]], 1)
                return eval_val(model, val_tokens), cal
            main(None, None, 0, 1)
            """,
            lines=(12,),
        ),
        Invalid(
            code="""
            def main(args, model, opt, rank, world_size, steps):
                train_loader = DistributedTokenLoader(args.val_files, rank, world_size)
                for step in range(steps):
                    x, y = train_loader.next_batch()
                    model(x, y).backward()
                    opt.step()
            main(None, None, None, 0, 1, 10)
            """,
            lines=(2,),
        ),
        Invalid(
            code="""
            def fit(model, opt, source, steps):
                for step in range(steps):
                    x, y = next(source)
                    loss = model(x, y)
                    loss.backward()
                    opt.step()
            def main(args, model, opt):
                src = iter(TokenStream(args.val_files))
                fit(model, opt, src, 100)
            main(None, None, None)
            """,
            lines=(8,),
        ),
        Invalid(
            code="""
            def main(args, model, opt):
                batches = TokenBatches(args.val_files, 8, 1024)
                for x, y in batches:
                    model(x, y).backward()
                    opt.step()
            main(None, None, None)
            """,
            lines=(2,),
        ),
        Invalid(
            code="""
            import torch
            def save_artifact(model, val_tokens, path):
                blob = {"model": model.state_dict(), "prefix": val_tokens[:200000]}
                torch.save(blob, path)
            save_artifact(None, torch.load("fineweb_val_000000.pt"), "final_model.pt")
            """,
            lines=(4,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        memo: dict[int, bool] = {}  # function -> whether its own body calibrates
        for scope in index.scopes:
            for call in scope.calls:
                name = call.method
                if (call.node.args and any(flow.fact(a.value, scope).has("val") for a in call.node.args)
                        and _calibrates(flow, call, memo) and not _calibrates_itself(scope, memo)):
                    for arg in call.node.args:
                        fact = flow.fact(arg.value, scope)
                        if fact.has("val") and self._raw_val(arg.value, scope, flow, program=evidence.program) and not fact.has("grad"):
                            yield self.report(
                                source, call.node, call.stmt,
                                f"`{name}` calibrates quantization on validation data ({index.code(arg.value, 60)}); "
                                "validation-calibrated GPTQ is disputed, not ruled on",
                                evidence={"call": index.code(call.node, 120), "data": fact.reason("val")},
                                severity=Severity.WARNING, confidence=Confidence.HIGH,
                                sources=("R-GPTQ-IN-TRAIN",),
                            )
                            break
                elif any(_names_val_files(index, scope, a.value) for a in call.node.args):
                    used = self._used_for_training(index, flow, scope, call)
                    if used:
                        yield self.report(
                            source, call.node, call.stmt,
                            f"a loader over the validation files feeds training ({used})",
                            evidence={"loader": index.code(call.node, 120), "used": used},
                        )
                elif call.qualified in _SERIALIZE and call.node.args:
                    fact = flow.fact(call.node.args[0].value, scope)
                    if fact.has("val") and self._raw_val(call.node.args[0].value, scope, flow, program=evidence.program):
                        yield self.report(
                            source, call.node, call.stmt,
                            f"validation tokens are serialized with `{call.qualified}` ({fact.reason('val') or 'validation data'})",
                            evidence={"call": index.code(call.node, 120)},
                            sources=("#168", "#275"),
                        )
            for assignment in scope.assignments:
                target = dotted(assignment.target) if isinstance(assignment.target, (cst.Name, cst.Attribute)) else None
                if target and assignment.value is not None and (TRAIN_SETTING.search(target.rsplit(".", 1)[-1]) or (
                        isinstance(assignment.target, cst.Attribute) and setting_role(assignment.target, index).has("train"))):
                    config = evidence.program.scored_configs.get(id(index)) or evidence.program.configs[id(index)]
                    if _live_val_files(flow, config, scope, assignment.value, 0):
                        yield self.report(
                            source, assignment.stmt.node, assignment.stmt,
                            f"the training files are set to the validation files (`{index.code(assignment.stmt.node, 80)}`)",
                            evidence={"assignment": index.code(assignment.stmt.node, 120)},
                        )

    @classmethod
    def _raw_val(cls, node: cst.BaseExpression, scope: Scope, flow: Flow, depth: int = 0,
                 program: Program | None = None) -> bool:
        """Whether an expression holds validation tokens themselves (a slice of them, in a
        dict or tuple, through names and dtype/device conversions), not something computed
        from them."""
        if depth > 8:
            return False
        if isinstance(node, (cst.Dict,)):
            return any(cls._raw_val(e.value, scope, flow, depth + 1, program) for e in node.elements)
        if isinstance(node, (cst.Tuple, cst.List)):
            return any(cls._raw_val(e.value, scope, flow, depth + 1, program) for e in node.elements)
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            return cls._raw_val(node.elt, scope, flow, depth + 1, program)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "unsqueeze":
            return cls._raw_val(node.func.value, scope, flow, depth + 1, program)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
            "to", "cpu", "numpy", "astype", "clone", "contiguous", "view", "reshape", "long", "int", "short", "tolist",
        ):
            return cls._raw_val(node.func.value, scope, flow, depth + 1, program)
        if isinstance(node, cst.Subscript):
            return cls._raw_val(node.value, scope, flow, depth + 1, program)
        if isinstance(node, cst.Call) and any((setting_role(a.value, flow.index) if isinstance(a.value, cst.Attribute)
                                               else literal_role(a.value)).has("val") for a in node.args):
            return True  # a loader over the validation files
        if (isinstance(node, cst.Call) and _holds_val(flow, (dotted(node.func) or "").rsplit(".", 1)[-1])
                and not any(flow.fact(a.value, scope).has("val", "train") for a in node.args)):
            # an object of the submission's that loads the validation data itself
            # (``ValidationData(h)``), not a loader told which files to read
            return True
        name = dotted(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        if name is None:
            return False
        # What a name holds is what it is bound to; its spelling only breaks a tie where
        # nothing binds it here (``best_val = min(best_val, val_loss)`` holds a number).
        if isinstance(node, cst.Name):
            assigned = [a for a in scope.assigned(name) if a.value is not None]
            if assigned:
                return any(cls._raw_val(a.value, scope, flow, depth + 1, program) for a in assigned[:4])
            if name in scope.param_names:
                # a parameter: raw when its callers pass validation data itself (a loss or a
                # bpb computed from it is a number, not the data)
                passed = arguments_for(program, scope, name) if program is not None else None
                if passed:
                    return any(cls._raw_val(arg, caller, flow_of(program.index_of_scope[id(caller)]), depth + 1, program)
                               for arg, caller in passed[:6])
                return flow.name(scope, name).has("val")
            module = flow.index.module_scope
            bound = [a for a in module.assigned(name) if a.value is not None] if scope is not module else []
            if bound:
                return any(cls._raw_val(a.value, module, flow, depth + 1, program) for a in bound[:4])
        return is_val_name(name.rsplit(".", 1)[-1]) and flow.fact(node, scope).has("val")

    @staticmethod
    def _used_for_training(index: SourceIndex, flow: Flow, scope: Scope, call) -> str:
        """Where the object a call over the validation files returns (a loader) feeds a
        gradient step: drawn from in a loop (``loader.next_batch()``, ``next(loader)``, a
        method of it) of a function whose backward loss depends on it; in this function or in
        one it is passed to (two calls deep, across the submission's modules). Slicing a token
        tensor (score-first TTT) is not drawing from a loader."""
        stmt = call.stmt.node
        if not (isinstance(stmt, cst.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name)):
            return ""
        return _drawn_in_training(flow, scope, {stmt.targets[0].target.value}, 0)


def _holds_val(flow: Flow, name: str) -> bool:
    """Whether ``name`` is a class of the source whose constructor stores validation data on
    the object (``self.val_tokens = load_tokens(h.val_files)``)."""
    info = flow.index.classes.get(name)
    init = info.methods.get("__init__") if info is not None else None
    if init is None:
        return False
    return any(isinstance(a.target, cst.Attribute) and a.value is not None and flow.fact(a.value, init).has("val")
               for a in init.assignments)


def _live_val_files(flow: Flow, config: Config, scope: Scope, node: cst.BaseExpression, depth: int) -> bool:
    """Whether a value names the validation files in the run's configuration: a conditional
    expression counts by the branch its test selects (``"fineweb_val_*.bin" if
    debug_overfit_val else "fineweb_train_*.bin"`` with the flag off names the training
    files), and a key of a dict literal by that key's value (``conf["train_files"]``)."""
    if depth > 6:
        return flow.fact(node, scope).has("val:files")
    if isinstance(node, cst.IfExp):
        taken = config.truth(node.test, scope)
        if taken.known:
            return _live_val_files(flow, config, scope, node.body if taken.value else node.orelse, depth + 1)
        return any(_live_val_files(flow, config, scope, branch, depth + 1) for branch in (node.body, node.orelse))
    if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Name) and len(node.slice) == 1:
        key = node.slice[0].slice
        entry = _dict_entry(scope, flow.index, node.value.value, key.value) if isinstance(key, cst.Index) else None
        if entry is not None:
            element, where, order = entry
            if isinstance(element, cst.Name):
                # the value the name had when the dict was built (it may be rebound from it later)
                before = [a for a in where.assigned(element.value)
                          if a.value is not None and a.kind == "assign" and a.stmt.order < order]
                if before:
                    return _live_val_files(flow, config, where, before[-1].value, depth + 1)
            return _live_val_files(flow, config, where, element, depth + 1)
    if isinstance(node, cst.Call) and any(isinstance(n, cst.IfExp) for n in walk(node)):
        return any(_live_val_files(flow, config, scope, arg.value, depth + 1) for arg in node.args)
    return flow.fact(node, scope).has("val:files")


def _dict_entry(scope: Scope, index: SourceIndex, name: str,
                key: cst.BaseExpression) -> tuple[cst.BaseExpression, Scope, int] | None:
    """The value of ``key`` in the dict literal ``name`` is bound to, once, here or at module
    level, with the scope and order of the statement that builds the dict."""
    if not isinstance(key, cst.SimpleString):
        return None
    for where in (scope, index.module_scope):
        bound = [a for a in where.assigned(name) if a.value is not None]
        if bound:
            if len(bound) != 1 or not isinstance(bound[0].value, cst.Dict):
                return None
            for element in bound[0].value.elements:
                if isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString) \
                        and element.key.evaluated_value == key.evaluated_value:
                    return element.value, where, bound[0].stmt.order
            return None
    return None


def _drawn_in_training(flow: Flow, scope: Scope, names: set[str], depth: int) -> str:
    """Where one of ``names`` (loader objects) is drawn from in a training loop of ``scope``
    or of a function it is passed to."""
    from auditor.static.effects import bind, callees

    program = flow.program
    index = program.index_of_scope.get(id(scope), flow.index) if program is not None else flow.index
    losses = [site.loss for site in training_sites(index) if site.call.stmt.scope is scope]
    if losses:
        feeding = names & set().union(*(depends(scope, names_in(loss), limit=200) for loss in losses))
        for other in scope.calls:
            if not other.stmt.loops:
                continue
            drawn = None
            if isinstance(other.node.func, cst.Attribute) and other.node.func.attr.value not in _TENSOR_READS:
                drawn = dotted(other.node.func.value)
            elif isinstance(other.node.func, cst.Name) and other.node.func.value == "next" and other.node.args:
                drawn = dotted(other.node.args[0].value)
            if drawn in feeding:
                return f"`{index.code(other.node, 60)}` in the training loop, {_where(flow, index, other.stmt)}"
        for a in scope.assignments:  # ``for x, y in loader:``
            if a.kind == "for" and isinstance(a.value, cst.Name) and a.value.value in feeding:
                return f"`for … in {a.value.value}` feeds the training loss, {_where(flow, index, a.stmt)}"
    if depth >= 2:
        return ""
    for other in scope.calls:
        passed = {k for k, arg in enumerate(other.node.args) if isinstance(arg.value, cst.Name) and arg.value.value in names}
        if not passed:
            continue
        for callee in callees(flow_of(index), other):
            params = {callee.param_names[k] for k, arg in bind(other.node, callee).items()
                      if isinstance(arg, cst.Name) and arg.value in names and k < len(callee.param_names)}
            if params:
                found = _drawn_in_training(flow, callee, params, depth + 1)
                if found:
                    return found
    return ""


def _where(flow: Flow, index: SourceIndex, stmt: Stmt) -> str:
    """``line 12``, or ``helper.py:12`` in another of the submission's modules."""
    if index is flow.index:
        return f"line {index.line(stmt.node)}"
    return f"{PurePosixPath(index.source.path).name}:{index.line(stmt.node)}"


def _names_val_files(index: SourceIndex, scope: Scope, node: cst.BaseExpression, depth: int = 0) -> bool:
    """Whether an expression is the validation files themselves (their path, pattern or
    setting, a glob or join of it, through local names), not data read from them."""
    if (setting_role(node, index) if isinstance(node, cst.Attribute) else literal_role(node)).has("val"):
        return True
    if depth > 4:
        return False
    if isinstance(node, cst.Name):
        return any(a.value is not None and _names_val_files(index, scope, a.value, depth + 1) for a in scope.assigned(node.value)[:4])
    if isinstance(node, cst.Call) and dotted(node.func) in ("glob.glob", "glob.iglob", "sorted", "list", "Path", "pathlib.Path", "os.path.join", "str"):
        return any(_names_val_files(index, scope, a.value, depth + 1) for a in node.args)
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("glob", "format", "join"):
        return _names_val_files(index, scope, node.func.value, depth + 1) or any(_names_val_files(index, scope, a.value, depth + 1) for a in node.args)
    if isinstance(node, cst.FormattedString):
        return any(_names_val_files(index, scope, p, depth + 1) for p in node.parts if isinstance(p, cst.FormattedStringText))
    if isinstance(node, cst.BinaryOperation):
        return _names_val_files(index, scope, node.left, depth + 1) or _names_val_files(index, scope, node.right, depth + 1)
    return False


def _calibrates(flow: Flow, call, memo: dict[int, bool], depth: int = 0) -> bool:
    """Whether a call runs a calibration pass: a function of the submission that installs
    forward hooks on the model, or accumulates a Gram matrix of activations
    (``X.T @ X``, ``x.t() @ x``, ``torch.matmul(x.T, x)``) — GPTQ's Hessian, AWQ's and
    SmoothQuant's statistics — itself or in what it calls. By what it does, not its name."""
    from auditor.static.effects import callees

    for callee in callees(flow, call):
        if _calibrates_itself(callee, memo):
            return True
        if depth < 2 and any(_calibrates(flow, inner, memo, depth + 1) for inner in callee.calls if inner.node is not call.node):
            return True
    return False


def _calibrates_itself(scope: Scope, memo: dict[int, bool]) -> bool:
    """Whether a function's own body installs forward hooks or accumulates a Gram matrix."""
    if id(scope) not in memo:
        memo[id(scope)] = _gram_or_hooks(scope)
    return memo[id(scope)]


def _gram_or_hooks(scope: Scope) -> bool:
    from auditor.static.index import own_nodes

    for inner in scope.calls:
        if inner.method in _HOOKS:
            return True
    for stmt in scope.stmts:
        if isinstance(stmt.node, (cst.FunctionDef, cst.ClassDef)):
            continue
        for node in own_nodes(stmt.node):  # each statement's own nodes: every node once
            if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply) and _transposed_of(node.left, node.right):
                return True
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in ("matmul", "mm", "addmm_", "addmm") and len(node.args) >= 2:
                a, b = node.args[-2].value, node.args[-1].value
                if _transposed_of(a, b):
                    return True
    return False


def _transposed_of(left: cst.BaseExpression, right: cst.BaseExpression) -> bool:
    """``x.T`` / ``x.t()`` / ``x.transpose(…)`` on the left of the same ``x``."""
    inner = None
    if isinstance(left, cst.Attribute) and left.attr.value in ("T", "mT", "H"):
        inner = left.value
    elif isinstance(left, cst.Call) and isinstance(left.func, cst.Attribute) and left.func.attr.value in ("t", "transpose"):
        inner = left.func.value
    if inner is None:
        return False
    a, b = dotted(inner) if isinstance(inner, (cst.Name, cst.Attribute)) else None, dotted(right) if isinstance(right, (cst.Name, cst.Attribute)) else None
    return a is not None and a == b

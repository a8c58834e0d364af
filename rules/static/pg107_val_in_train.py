"""PG107 val-in-train."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.flow import Flow
from auditor.static.index import Scope, SourceIndex
from auditor.static.names import dotted
from auditor.static.roles import is_val_name, literal_role
from auditor.static.training import training_sites

_CALIBRATE = re.compile(r"hessian|gptq|awq|smoothquant|calib\w*_(quant|gptq|hess)|(quant|gptq)\w*_calib", re.I)
_LOADER = re.compile(r"loader|tokenstream|token_stream|load_data_shard|dataloader|stream|batches|shard", re.I)
_VAL_FILES = re.compile(r"val_files|val_pattern|val_path|val_glob|fineweb_val|val_shards|val_data_path", re.I)
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
            def main(args, model, rank, world_size):
                train_loader = DistributedTokenLoader(args.train_files, rank, world_size)
                hessians = collect_hessians(model, train_loader, 16)
                val_tokens = load_validation_tokens(args.val_files)
                return eval_val(model, val_tokens)
            main(None, None, 0, 1)
            """,
            note="calibration on training data; validation files only for scoring",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            def main(args, model, rank, world_size):
                val_tokens = load_validation_tokens(args.val_files)
                hessians = collect_hessians_gptq(model, val_tokens, 64)
                return eval_val(model, val_tokens)
            main(None, None, 0, 1)
            """,
            lines=(3,),
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
        trains = {id(site.scope) for site in training_sites(index)}
        for scope in index.scopes:
            for call in scope.calls:
                name = call.method
                if _CALIBRATE.search(name) and not _CALIBRATE.search(scope.name) and call.node.args:
                    for arg in call.node.args:
                        fact = flow.fact(arg.value, scope)
                        if fact.has("val") and self._raw_val(arg.value, scope, flow) and not fact.has("grad"):
                            yield self.report(
                                source, call.node, call.stmt,
                                f"`{name}` calibrates quantization on validation data ({index.code(arg.value, 60)}); "
                                "validation-calibrated GPTQ is disputed, not ruled on",
                                evidence={"call": index.code(call.node, 120), "data": fact.reason("val")},
                                severity=Severity.WARNING, confidence=Confidence.HIGH,
                                sources=("R-GPTQ-IN-TRAIN",),
                            )
                            break
                elif _LOADER.search(name) and any(_VAL_FILES.search(index.code(a.value, 80)) for a in call.node.args):
                    used = self._used_for_training(index, scope, call, trains)
                    if used:
                        yield self.report(
                            source, call.node, call.stmt,
                            f"a loader over the validation files feeds training ({used})",
                            evidence={"loader": index.code(call.node, 120), "used": used},
                        )
                elif call.qualified in _SERIALIZE and call.node.args:
                    fact = flow.fact(call.node.args[0].value, scope)
                    if fact.has("val") and self._raw_val(call.node.args[0].value, scope, flow):
                        yield self.report(
                            source, call.node, call.stmt,
                            f"validation tokens are serialized with `{call.qualified}` ({fact.reason('val') or 'validation data'})",
                            evidence={"call": index.code(call.node, 120)},
                            sources=("#168", "#275"),
                        )
            for assignment in scope.assignments:
                target = dotted(assignment.target) if isinstance(assignment.target, (cst.Name, cst.Attribute)) else None
                if target and "train" in target.lower() and ("file" in target.lower() or "pattern" in target.lower()) and assignment.value is not None:
                    if _VAL_FILES.search(index.code(assignment.value, 80)):
                        yield self.report(
                            source, assignment.stmt.node, assignment.stmt,
                            f"the training files are set to the validation files (`{index.code(assignment.stmt.node, 80)}`)",
                            evidence={"assignment": index.code(assignment.stmt.node, 120)},
                        )

    @classmethod
    def _raw_val(cls, node: cst.BaseExpression, scope: Scope, flow: Flow, depth: int = 0) -> bool:
        """Whether an expression holds validation tokens themselves (a slice of them, in a
        dict or tuple, through names and dtype/device conversions), not something computed
        from them."""
        if depth > 8:
            return False
        if isinstance(node, (cst.Dict,)):
            return any(cls._raw_val(e.value, scope, flow, depth + 1) for e in node.elements)
        if isinstance(node, (cst.Tuple, cst.List)):
            return any(cls._raw_val(e.value, scope, flow, depth + 1) for e in node.elements)
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            return cls._raw_val(node.elt, scope, flow, depth + 1)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "unsqueeze":
            return cls._raw_val(node.func.value, scope, flow, depth + 1)
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in (
            "to", "cpu", "numpy", "astype", "clone", "contiguous", "view", "reshape", "long", "int", "short", "tolist",
        ):
            return cls._raw_val(node.func.value, scope, flow, depth + 1)
        if isinstance(node, cst.Subscript):
            return cls._raw_val(node.value, scope, flow, depth + 1)
        if isinstance(node, cst.Call) and any(literal_role(a.value).has("val") for a in node.args):
            return True  # a loader over the validation files
        name = dotted(node) if isinstance(node, (cst.Name, cst.Attribute)) else None
        if name is None:
            return False
        if is_val_name(name.rsplit(".", 1)[-1]):
            return True
        if isinstance(node, cst.Name):
            assigned = [a for a in scope.assigned(name) if a.value is not None]
            if not assigned and name in scope.param_names:
                # a parameter: raw when its callers pass validation data itself
                return flow.name(scope, name).has("val")
            return any(cls._raw_val(a.value, scope, flow, depth + 1) for a in assigned[:4])
        return False

    @staticmethod
    def _used_for_training(index: SourceIndex, scope: Scope, call, trains: set[int]) -> str:
        stmt = call.stmt.node
        target = None
        if isinstance(stmt, (cst.Assign,)) and len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name):
            target = stmt.targets[0].target.value
        if target is None:
            return ""
        for other in scope.calls:
            if isinstance(other.node.func, cst.Attribute) and dotted(other.node.func.value) == target and other.method in ("next_batch", "next", "__next__", "get_batch", "take"):
                if id(scope) in trains and other.stmt.loops:
                    return f"`{index.code(other.node, 60)}` in the training loop, line {index.line(other.stmt.node)}"
        if "train" in target.lower():
            return f"it is the training loader `{target}`"
        return ""

"""PG108 train-data-at-eval."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.training import training_sites

#: Functions that run at evaluation time, by name.
_EVAL_FUNCTION = re.compile(r"(^|_)(eval|evaluate|score|scoring|ttt|ngram|n_gram|cache|prefill|mixer|tilt|rescore)(_|$)", re.I)
_TRAIN_DATA = re.compile(r"train_files|train_pattern|train_glob|train_shards|fineweb_train|train_data_path|train_bin", re.I)
_READERS = re.compile(r"load_data_shard|fromfile|memmap|load|open|glob|read|stream|loader|shard", re.I)


class TrainDataAtEval(StaticRule):
    """
    ## What it does
    Finds the evaluation path reading the training shards: a function that scores, adapts
    or builds an n-gram cache at eval time (`eval_*`, `*_ttt`, `*ngram*`, `prefill*`) that
    opens, globs or loads `fineweb_train_*` files or `args.train_files`.

    ## Why is this bad?
    "You aren't allowed to access any training data during evaluation, unless you pay for
    those bits in the <16MB limit" (README). Statistics of the training set brought in at
    eval time, such as an n-gram cache prefilled from every training shard (PR #925, #945),
    are bits the artifact does not pay for.

    ## Example
    ```python
    def prefill_ngram_cache(cache, args):
        for path in sorted(glob.glob(args.train_files)):
            cache.update(load_data_shard(path))
    ```

    ## Use instead
    Compute such statistics during training (inside the 600 s), store them in the artifact
    and count their bytes; at evaluation, read only the artifact and the validation set.

    ## Known problems
    The check goes by function names to tell the eval path from training (functions whose
    name says both, such as `train_and_eval`, are skipped); a helper that prepares
    calibration data from training shards inside the training budget is reported if its name
    looks like an eval function. A warning, for a human to confirm.

    ## References
    - R-EVAL-NO-TRAIN-DATA (README, "Restrictions on evaluation"); PR #925, #945.
    """

    CODE = "PG108"
    NAME = "train-data-at-eval"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "R-EVAL-NO-TRAIN-DATA")
    TAGS = ("train_data_at_eval",)
    VALID = (
        Valid(
            code="""
            import glob
            def train(args, model, opt):
                for path in sorted(glob.glob(args.train_files)):
                    x, y = load_batch(path)
                    model(x, y).backward()
                    opt.step()
            def eval_val(args, model, val_tokens):
                return model.score(val_tokens)
            """,
            note="training reads the training shards; the eval reads validation only",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import glob
            def prefill_ngram_cache(cache, args):
                for path in sorted(glob.glob(args.train_files)):
                    cache.update(load_data_shard(path))
            prefill_ngram_cache(None, None)
            """,
            lines=(3,),
        ),
    )

    @staticmethod
    def _logged(call) -> bool:
        """A call inside a log line (``log(f"train_shards: {len(glob(...))}")``) reads no data."""
        node = call.stmt.node
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            name = node.value.func
            last = name.attr.value if isinstance(name, cst.Attribute) else name.value if isinstance(name, cst.Name) else ""
            return last in ("log", "log0", "print", "info", "debug", "warning", "write")
        return False

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        trains = {id(site.scope) for site in training_sites(index)}
        for scope in index.functions:
            if id(scope) in trains or not _EVAL_FUNCTION.search(scope.name) or "train" in scope.name.lower():
                continue
            for call in scope.calls:
                if not _READERS.search(call.method or "") or self._logged(call):
                    continue
                args = " ".join(index.code(a.value, 100) for a in call.node.args)
                match = _TRAIN_DATA.search(args)
                if not match:
                    continue
                yield self.report(
                    source, call.node, call.stmt,
                    f"{scope.qualname} reads the training data ({match.group(0)}) on the evaluation path; "
                    "allowed only for statistics paid for in the artifact",
                    evidence={"call": index.code(call.node, 120)},
                )
                break

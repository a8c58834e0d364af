"""PG108 train-data-at-eval."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.evalpath import EvalPart, eval_path, writes_file
from auditor.static.flow import Flow, flow_of
from auditor.static.index import CallSite, Scope, SourceIndex
from auditor.static.reach import program_for
from auditor.static.roles import TRAIN_LITERAL

#: Calls that handle a path or a file list without reading the data behind it.
_PATH_ONLY = frozenset({
    "glob", "iglob", "rglob", "sorted", "list", "tuple", "len", "Path", "PurePath", "join", "exists", "isfile", "isdir",
    "basename", "dirname", "getsize", "stat", "str", "repr", "format", "split", "splitext", "fnmatch", "expanduser",
    "abspath", "resolve", "enumerate", "zip", "range", "append", "extend", "startswith", "endswith", "replace", "int",
    "float", "bool", "isinstance", "type", "set",
})
#: Calls that only print (a tie-breaker for arguments that are not f-strings).
_MESSAGES = frozenset({"print", "log", "log0", "info", "debug", "warning", "warn", "write", "print0", "logprint"})


class TrainDataAtEval(StaticRule):
    """
    ## What it does
    Finds training data used by the code that runs at evaluation. Training data is what a
    loader over the training files returns (a `fineweb_train_*` path, the training-files
    setting such as `args.train_files`, a glob over them, through the submission's own
    loaders) and any object a statement fills with it (`cache.update(chunk)`). The
    evaluation path is found by what the code does: the *scored evaluation* accumulates a
    loss of the scored targets over the validation stream without training on other data;
    everything reachable from it runs at evaluation, and so does the code of its caller after
    training ends (after the loop of the last gradient step on training data and after the
    artifact is written). A call there that reads the training files, or that hands the
    scored evaluation a table filled from them, is reported, unless that table is also
    written into the artifact.

    ## Why is this bad?
    "You aren't allowed to access any training data during evaluation, unless you pay for
    those bits in the <16MB limit" (README). Statistics of the training set brought in at
    eval time, such as an n-gram cache prefilled from every training shard and handed to
    the evaluation in memory instead of through the artifact (PR #925), are bits the
    artifact does not pay for.

    ## Example
    ```python
    def run(m, s):                        # runs from the scored evaluation
        for path in sorted(glob.glob(s.train_files)):
            m.table.update(load_data_shard(path))
    ```

    ## Use instead
    Compute such statistics during training (inside the 600 s), store them in the artifact
    and count their bytes; at evaluation, read only the artifact and the validation set.

    ## Known problems
    Functions are matched by name across modules, so a helper called both by training and
    by the evaluation counts as evaluation code. A read in the training part of a function
    that also evaluates is not reported, nor is one before the artifact is written (GPTQ
    calibration on training data: whether it fits the 600 s is for the logs, PG304). A
    loader built during training and only advanced at evaluation (`loader.next_batch()`)
    is not seen. A warning, for a human to confirm.

    ## References
    - R-EVAL-NO-TRAIN-DATA (README, "Restrictions on evaluation"); R-GPTQ-IN-TRAIN; PR #925,
      #945 (its shipped script is the baseline: nothing to see).
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
            import torch
            import torch.nn.functional as F
            def load_data_shard(path):
                return torch.load(path)
            def fit(m, s, opt):
                for path in sorted(glob.glob(s.train_files)):
                    x = load_data_shard(path)
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
            def run(m, toks):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, s, opt):
                fit(m, s, opt)
                torch.save(m.state_dict(), "final_model.pt")
                m.load_state_dict(torch.load("final_model.pt"))
                print(run(m, load_data_shard(s.val_files)))
            """,
            note="training reads the training shards; the evaluation reads the artifact and validation only",
        ),
        Valid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def run(m, toks):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, s, opt):
                stream = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))
                for step in range(100):
                    x = stream[step * 64:(step + 1) * 64 + 1]
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
                    if step % 10 == 0:
                        print(run(m, np.fromfile(s.val_files, dtype=np.uint16)))
                hessians = [torch.zeros(8, 8)]
                for path in sorted(glob.glob(s.train_files))[:1]:
                    calib = np.fromfile(path, dtype=np.uint16)
                    hessians.append(m.collect(calib))
                blob = m.quantize(hessians)
                torch.save(blob, "final_model.int6.ptz")
                print(run(m.dequantized(torch.load("final_model.int6.ptz")), np.fromfile(s.val_files, dtype=np.uint16)))
            """,
            note="GPTQ calibrated on training shards before the artifact is written is part of producing it",
        ),
        Valid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def run(m, toks, table):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]) + table.bias(), toks[i + 1:i + 65]).item()
                return total
            def main(m, s, opt, table):
                for path in sorted(glob.glob(s.train_files)):
                    x = torch.from_numpy(np.fromfile(path, dtype=np.uint16))
                    table.update(x)
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
                torch.save({"model": m.state_dict(), "table": table}, "final_model.ptz")
                print(run(m, np.fromfile(s.val_files, dtype=np.uint16), table))
            """,
            note="a table filled from the training shards is written into the artifact: its bits are paid for",
        ),
        Valid(
            code="""
            import numpy as np
            import torch
            import torch.nn.functional as F
            def go(m, s, opt):
                stream = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))
                for step in range(100):
                    x = stream[step * 64:(step + 1) * 64 + 1]
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
                torch.save(m.state_dict(), "final_model.pt")
                toks = torch.from_numpy(np.fromfile(s.val_files, dtype=np.uint16))
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                print(total)
            """,
            note="one function trains on the training shards, then scores the validation set inline",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import glob
            import torch
            import torch.nn.functional as F
            def load_data_shard(path):
                return torch.load(path)
            def run(m, s, toks):
                for path in sorted(glob.glob(s.train_files)):
                    m.table.update(load_data_shard(path))
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, s):
                print(run(m, s, load_data_shard(s.val_files)))
            """,
            lines=(8,),
            note="the scored evaluation prefills its table from the training shards",
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            from evalhelp import warm
            def run(m, s, toks):
                warm(m, s)
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            print(run(None, None, torch.load("data/fineweb_val_000000.bin")))
            """,
            files={
                "evalhelp.py": (
                    "import numpy as np\n"
                    "def warm(m, s):\n"
                    "    for k in range(4):\n"
                    "        m.cache.add(np.fromfile(f\"data/fineweb_train_{k:06d}.bin\", dtype=np.uint16))\n"
                ),
            },
            note="the training-shard read is in a helper module the scored evaluation calls",
        ),
        Invalid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def run(m, toks, table):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]) + table.bias(), toks[i + 1:i + 65]).item()
                return total
            def main(m, s, opt, table):
                for path in sorted(glob.glob(s.train_files)):
                    table.update(torch.from_numpy(np.fromfile(path, dtype=np.uint16)))
                for step in range(100):
                    x = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))[:65]
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
                torch.save(m.state_dict(), "final_model.pt")
                frozen = table
                print(run(m, np.fromfile(s.val_files, dtype=np.uint16), frozen))
            """,
            lines=(20,),
            note="a table prefilled from the training shards reaches the evaluation in memory, not in the artifact (PR #925)",
        ),
        Invalid(
            code="""
            import numpy as np
            import torch
            import torch.nn.functional as F
            def run(m, toks):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, s, opt):
                for step in range(100):
                    x = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))[:65]
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
                torch.save(m.state_dict(), "final_model.pt")
                m.load_state_dict(torch.load("final_model.pt"))
                m.adapt(np.fromfile(s.train_files, dtype=np.uint16))
                print(run(m, np.fromfile(s.val_files, dtype=np.uint16)))
            """,
            lines=(17,),
            note="after the artifact is written, the main flow reads the training shards again",
        ),
        Invalid(
            code="""
            import numpy as np
            import torch
            import torch.nn.functional as F
            def go(m, s, opt, cache):
                for step in range(100):
                    x = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))[:65]
                    F.cross_entropy(m(x[:-1]), x[1:]).backward()
                    opt.step()
                torch.save(m.state_dict(), "final_model.pt")
                cache.update(torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16)))
                toks = torch.from_numpy(np.fromfile(s.val_files, dtype=np.uint16))
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]) + cache.bias(), toks[i + 1:i + 65]).item()
                print(total)
            """,
            lines=(10,),
            note="one function trains, writes the artifact, then fills its cache from the training shards and scores",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        program = program_for(source)
        flow = flow_of(index)
        parts = eval_path(program)
        for scope in index.scopes:
            part = parts.get(id(scope))
            if part is None:
                continue
            for call in scope.calls:
                if call.stmt.scope is not scope or not part.covers(call.stmt):
                    continue
                reason = self._train_argument(flow, scope, call)
                if reason is None:
                    continue
                yield self.report(
                    source, call.node, call.stmt,
                    f"{self._where(index, part)} `{index.code(call.node, 80)}` uses training data ({reason}); "
                    "allowed only for statistics paid for in the artifact",
                    evidence={"call": index.code(call.node, 120), "training_data": reason, "evaluation_path": part.why},
                )
                break

    @staticmethod
    def _where(index: SourceIndex, part: EvalPart) -> str:
        scope = part.scope
        name = "the module level" if scope.is_module else scope.qualname
        if part.after is None:
            return f"{name} runs at evaluation ({part.why}):"
        return f"in {name}, after training ends (line {index.line(part.after.node)}):"

    @staticmethod
    def _train_argument(flow: Flow, scope: Scope, call: CallSite) -> str | None:
        """Why an argument of a call holds training data; None for calls that only handle
        paths or print, and for data that is also written into the artifact."""
        if call.method in _PATH_ONLY or call.method in _MESSAGES:
            return None
        for arg in call.node.args:
            value = arg.value
            if _message(value):
                continue
            fact = flow.fact(value, scope)
            if not fact.has("train"):
                continue
            if _paid(flow, scope, value):
                continue
            return fact.reason("train") or "the training files"
        return None


def _message(value: cst.BaseExpression) -> bool:
    """An f-string that formats training data into text (a message), not one that spells a
    training file's name (a path)."""
    if not isinstance(value, cst.FormattedString):
        return False
    return not any(isinstance(part, cst.FormattedStringText) and TRAIN_LITERAL.search(part.value) for part in value.parts)


def _roots(scope: Scope, value: cst.BaseExpression, fills: list[CallSite]) -> set[str]:
    """Names a value is computed from, through assignments and the statements that fill an
    object (``table.update(x)``: ``table`` is computed from ``x``)."""
    roots = depends(scope, names_in(value), limit=120)
    for _ in range(3):
        grown = set(roots)
        for call in fills:
            func = call.node.func
            target = {n for n in names_in(func.value) if n in scope.param_names or scope.assigned(n)} if isinstance(func, cst.Attribute) else set()
            if target & roots:
                for arg in call.node.args:
                    grown |= depends(scope, names_in(arg.value), limit=120)
        if grown == roots:
            break
        roots = grown
    return roots


def _paid(flow: Flow, scope: Scope, value: cst.BaseExpression) -> bool:
    """Whether training data in a value was also written out by the function (the artifact):
    a name holding training data that both the value and a written object are computed from."""
    program = flow.program
    fills = [c for c in scope.calls if c.stmt.scope is scope and isinstance(c.node.func, cst.Attribute) and c.node.args]
    written: set[str] = set()
    for call in scope.calls:
        if call.stmt.scope is scope and program is not None and writes_file(program, call):
            for arg in call.node.args:
                written |= _roots(scope, arg.value, fills)
    if not written:
        return False
    shared = _roots(scope, value, fills) & written
    return any(flow.name(scope, name).has("train") for name in shared)

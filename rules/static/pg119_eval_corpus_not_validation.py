"""PG119 eval-corpus-not-validation."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.evalpath import (
    OTHER_CORPORA,
    bound_args,
    calls_of,
    scored_evaluations,
    scored_names,
    stream_params,
    trainers,
    training_end,
)
from auditor.static.facts import Fact
from auditor.static.flow import flow_of
from auditor.static.index import CallSite, Scope
from auditor.static.reach import Program, program_for

_WHAT = {"train": "the training data", "hub": "a hub dataset", "gen": "generated tokens", "file": "another file"}


def _other(fact: Fact) -> str | None:
    """The other corpus a stream comes from, when it does not (also) come from the validation files."""
    if fact.has("val"):
        return None
    for label in OTHER_CORPORA:
        if fact.has(label):
            return label
    return None


class EvalCorpusNotValidation(StaticRule):
    """
    ## What it does
    Finds a scored evaluation whose token stream is not the validation set: the function that
    accumulates the loss of the scored targets (see PG108 for how it is found) is given, or
    loads itself, a stream that comes from the training shards (`fineweb_train_*`, the
    training-files setting), from a hub dataset (`datasets.load_dataset(...)`, whatever the
    split), from generated tokens (`model.generate`, `torch.multinomial`) or from a token or
    text file a literal names that does not say it is held out (`"data/wiki103.bin"`; a
    custom `"data/val.bin"` is left alone), and not from the validation files. Only the parameters the scored targets are computed from count, and only
    calls outside the training part of their caller (a training loop may compute a loss on
    its own batches). A stream of unknown origin (passed from outside, loaded by code the
    analysis cannot see) is not reported.

    ## Why is this bad?
    val_bpb is measured "on the FineWeb validation set" (README): the first 50,000 documents,
    exported as the `fineweb_val_*` shards. A score over the training split of a hub dataset,
    over training shards (which the model has seen) or over text the model generated itself
    is a different, easier number.

    ## Example
    ```python
    docs = load_dataset("HuggingFaceFW/fineweb", split="train")
    stream = torch.tensor(sp.encode(docs[0]["text"]))
    print(run(model, stream))          # run() accumulates the scored NLL
    ```

    ## Use instead
    Score the `fineweb_val_*` shards of the official export (`args.val_files`), all of them,
    with the official byte tables.

    ## Known problems
    A function that only ever scores training shards and never validation data is not taken
    for the scored evaluation (it may be a diagnostic of the training loss), and a stream
    the scored evaluation only hands on to a helper that slices it is not followed. A
    bits-per-byte
    denominator over other tokens than the NLL is not a static check: PG206 runs the scorer
    on a known stream and compares the bytes it divided by, PG306 recomputes the byte count
    from the logs.

    ## References
    - README: val_bpb "on the FineWeb validation set"; R-FULL-VAL; R-EVAL-NO-NETWORK
      (`datasets.load_dataset` at eval); issue #1017, condition V (the official validation
      stream).
    """

    CODE = "PG119"
    NAME = "eval-corpus-not-validation"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "R-FULL-VAL", "#1017")
    TAGS = ("eval_corpus",)
    VALID = (
        Valid(
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
                    if step % 10 == 0:
                        print(run(m, torch.from_numpy(np.fromfile(s.val_files, dtype=np.uint16))))
                print(run(m, torch.from_numpy(np.fromfile(s.val_files, dtype=np.uint16))))
            """,
            note="the scored evaluation reads the validation files",
        ),
        Valid(
            code="""
            import numpy as np
            import mlx.core as mx
            import mlx.nn as nn
            def evaluate(loss_fn, toks, T):
                x = mx.array(toks[:-1].reshape(-1, T))
                y = mx.array(toks[1:].reshape(-1, T))
                return float(loss_fn(x, y).item())
            def main(model, opt, s, steps):
                train = np.fromfile(s.train_files, dtype=np.uint16)
                val = np.fromfile(s.val_files, dtype=np.uint16)[:8193]
                loss_and_grad = mx.compile(nn.value_and_grad(model, model.loss))
                for step in range(steps):
                    train_loss = 0.0
                    x = mx.array(train[:8192].reshape(-1, 128))
                    y = mx.array(train[1:8193].reshape(-1, 128))
                    loss, grads = loss_and_grad(x, y)
                    train_loss += float(loss.item())
                    opt.update(model, grads)
                print(f"final val_loss:{evaluate(model.loss, val, 128):.4f}")
            """,
            note="an MLX training loop (value_and_grad, no backward) sums its training loss; the scored evaluation reads the validation files",
        ),
        Valid(
            code="""
            import glob
            import numpy as np
            import torch
            import torch.nn.functional as F
            def main(model, s, T):
                val = torch.cat([torch.from_numpy(np.fromfile(f, dtype=np.uint16).astype(np.int64)) for f in sorted(glob.glob(s.val_files))])
                n = (val.numel() - 1) // T
                np.save("rows.npy", np.arange(n))
                rows = torch.from_numpy(np.load("rows.npy"))
                x, y = val[:n * T].view(n, T), val[1:n * T + 1].view(n, T)
                total = 0.0
                with torch.no_grad():
                    for r in rows.tolist():
                        total += F.cross_entropy(model(x[r][None]).flatten(0, 1), y[r], reduction="sum").item()
                print(f"final val_loss:{total / (n * T):.4f}")
            """,
            note="a file the script writes itself and reads back (row indices) is not another corpus",
        ),
        Valid(
            code="""
            import numpy as np
            class Counts:
                def __init__(self, size):
                    self.ctx = np.zeros(size, np.int64)
                    self.full = np.zeros(size, np.int64)
                    self.mask = size - 1
                def update(self, toks, lo, hi):
                    targets = toks[lo:hi]
                    self.ctx += np.bincount(toks[lo - 1:hi - 1] & self.mask, minlength=self.mask + 1)
                    self.full += np.bincount((toks[lo - 1:hi - 1] * 31 + targets) & self.mask, minlength=self.mask + 1)
                def prob(self, toks, p):
                    return (self.full[(toks[p - 1] * 31 + toks[p]) & self.mask] + 1) / (self.ctx[toks[p - 1] & self.mask] + 1024)
            def build(s):
                table = Counts(1 << 16)
                shard = np.fromfile(s.train_files, dtype=np.uint16).astype(np.int64)
                table.update(shard, 1, shard.size)
                return table
            def score(table, val, chunk):
                nll = 0.0
                for lo in range(1, val.size, chunk):
                    hi = min(lo + chunk, val.size)
                    nll += float(-np.log(table.prob(val, np.arange(lo, hi))).sum())
                    table.update(val, lo, hi)
                return nll
            """,
            note="count tables filled from training shards (then updated score-first): counting is not scoring",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def run(m, toks):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, stream):
                print(run(m, stream))
            """,
            note="a stream passed from outside: its origin is unknown, not reported",
        ),
        Valid(
            code="""
            import torch
            import torch.nn.functional as F
            def run(m, toks, w):
                total = 0.0
                for i in range(0, len(toks) - 1, 64):
                    total += F.cross_entropy(m(toks[i:i + 64], w), toks[i + 1:i + 65])
                return total
            def main(m, s, opt, w):
                calib = torch.multinomial(torch.ones(1024), 4096, replacement=True)
                for step in range(8):
                    run(m, calib, w).backward()
                    opt.step()
                print(run(m, torch.load(s.val_files), w))
            """,
            note="generated tokens used to train (here, a calibration), not as the scored stream",
        ),
        Valid(
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
            print(run(None, torch.from_numpy(np.fromfile("data/sp4096/val.bin", dtype=np.uint16))))
            """,
            note="a file named like a held-out split is not reported (its origin is not known)",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            from datasets import load_dataset
            def run(m, toks):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, sp):
                docs = load_dataset("HuggingFaceFW/fineweb", split="train")
                stream = torch.tensor(sp.encode(docs[0]["text"]))
                print(run(m, stream))
            """,
            lines=(13,),
            note="a hub dataset's training split is the scored stream",
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
                    if step % 10 == 0:
                        print(run(m, torch.from_numpy(np.fromfile(s.val_files, dtype=np.uint16))))
                held = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))
                print(run(m, held[-100000:]))
            """,
            lines=(18,),
            note="the final score is computed over the training shards",
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            def run(m, toks):
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            def main(m, prompt, s):
                print(run(m, torch.load(s.val_files)[:4096]))
                sample = m.generate(prompt, max_new_tokens=100000)
                print(run(m, sample[0]))
            """,
            lines=(12,),
            note="the model scores text it generated",
        ),
        Invalid(
            code="""
            import torch
            import torch.nn.functional as F
            from datasets import load_dataset
            def run(m, sp):
                docs = load_dataset("HuggingFaceFW/fineweb-edu", split="train[:1000]")
                toks = torch.tensor(sp.encode(docs["text"][0]))
                total = 0.0
                with torch.no_grad():
                    for i in range(0, len(toks) - 1, 64):
                        total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
                return total
            print(run(None, None))
            """,
            lines=(5,),
            note="the scored evaluation loads its own stream from the hub",
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
            def main(m, s):
                print(run(m, torch.from_numpy(np.fromfile(s.val_files, dtype=np.uint16))[:4096]))
                print(run(m, torch.from_numpy(np.fromfile("data/wikitext103_sp1024.bin", dtype=np.uint16))))
            """,
            lines=(12,),
            note="a file that is not the validation shards is the scored stream",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        program = program_for(source)
        mine = {id(scope) for scope in index.scopes}
        for scoring in scored_evaluations(program):
            params = stream_params(program, scoring)
            if id(scoring) in mine:
                yield from self._own_stream(source, program, scoring)
            for call in calls_of(program, scoring):
                caller = call.stmt.scope
                if id(caller) not in mine or caller is scoring or self._in_training(program, caller, call):
                    continue
                flow = flow_of(index)
                for param, arg in bound_args(scoring, call):
                    if param not in params:
                        continue
                    fact = flow.fact(arg, caller)
                    other = _other(fact)
                    if other is None:
                        continue
                    yield self.report(
                        source, call.node, call.stmt,
                        f"the scored evaluation {scoring.qualname} is given {_WHAT[other]} as its stream `{param}` "
                        f"({fact.reason(other)}), not the validation files",
                        evidence={"call": index.code(call.node, 120), "stream": index.code(arg, 80), "corpus": other},
                    )
                    break

    def _own_stream(self, source: PythonSource, program: Program, scoring: Scope) -> Iterable[Finding]:
        """A stream the scored evaluation loads itself: an assignment its targets come from."""
        index = self.index(source)
        flow = flow_of(index)
        needed = scored_names(program, scoring)
        for assignment in scoring.assignments:
            target = assignment.target
            if not isinstance(target, cst.Name) or target.value not in needed or assignment.value is None:
                continue
            if target.value in scoring.param_names or assignment.kind not in ("assign", "ann"):
                continue
            fact = flow.fact(assignment.value, scoring)
            other = _other(flow.name(scoring, target.value))
            if other is None or not fact.has(other):
                continue
            yield self.report(
                source, assignment.stmt.node, assignment.stmt,
                f"the scored evaluation {scoring.qualname} scores {_WHAT[other]} (`{target.value}`: "
                f"{fact.reason(other)}), not the validation files",
                evidence={"stream": index.code(assignment.stmt.node, 120), "corpus": other},
            )
            return

    @staticmethod
    def _in_training(program: Program, caller: Scope, call: CallSite) -> bool:
        """Whether a call is in the training part of its caller (a training loop's own loss)."""
        if id(caller) not in trainers(program):
            return False
        end = training_end(program, caller)
        return end is not None and call.stmt.order <= end.order

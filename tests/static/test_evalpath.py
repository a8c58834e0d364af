"""The evaluation path: the scored evaluation and the code after training, found without names."""

from __future__ import annotations

from auditor.static.evalpath import eval_path, scored_evaluations, stream_params, training_end
from auditor.static.reach import program_for

from .helpers import function, indexed

CODE = """
import numpy as np
import torch
import torch.nn.functional as F
def a(m, toks):
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(toks) - 1, 64):
            total += F.cross_entropy(m(toks[i:i + 64]), toks[i + 1:i + 65]).item()
    return total
def b(m, s, opt, c):
    for step in range(100):
        x = torch.from_numpy(np.fromfile(s.train_files, dtype=np.uint16))[:65]
        F.cross_entropy(m(x[:-1]), x[1:]).backward()
        opt.step()
        if step % 10 == 0:
            print(a(m, np.fromfile(s.val_files, dtype=np.uint16)))
    torch.save(m.state_dict(), "final_model.pt")
    c(m)
    print(a(m, np.fromfile(s.val_files, dtype=np.uint16)))
def c(m):
    return m
"""


def test_the_scored_evaluation_and_what_runs_after_training():
    source, index = indexed(CODE)
    program = program_for(source)
    assert [s.name for s in scored_evaluations(program)] == ["a"]
    assert stream_params(program, function(index, "a")) == {"toks"}
    end = training_end(program, function(index, "b"))
    assert end is not None and index.line(end.node) == 17  # the artifact write
    parts = {p.scope.name: p for p in eval_path(program).values()}
    assert parts["a"].after is None and parts["c"].after is None  # reachable / called after training
    assert parts["b"].after is end

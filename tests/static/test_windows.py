"""Windows assigned to chunks by their first scored position, decided by provenance."""

from __future__ import annotations

from auditor.static.windows import by_scored_start

from .helpers import function, indexed

CODE = """
import torch
import torch.nn.functional as F
def eval_windows(model, val_tokens, starts, span, stride, n, chunks):
    groups = [[] for _ in range(chunks)]
    for ws in starts:
        off = 0 if ws == 0 else span - stride
        first = ws + off
        groups[min(first // n, chunks - 1)].append(ws)
    loss_sum = 0.0
    for ci in range(chunks):
        for ws in groups[ci]:
            w = val_tokens[ws:ws + span + 1]
            with torch.no_grad():
                nll = F.cross_entropy(model(w[:-1]), w[1:], reduction="none")
            s = 0 if ws == 0 else span - stride
            loss_sum += nll[s:span].sum()
    return loss_sum
"""


def test_assigned_by_the_scored_start_whatever_its_name():
    _, index = indexed(CODE)
    found = by_scored_start(index, function(index, "eval_windows"), None)
    assert found is not None and found.offset == "off" and index.line(found.stmt.node) == 8


def test_assigned_by_the_window_start_is_not():
    _, index = indexed(CODE.replace("first // n", "ws // n"))
    assert by_scored_start(index, function(index, "eval_windows"), None) is None

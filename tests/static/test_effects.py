"""Effects: which parameters a function writes into state that outlives the call, decided by
what it writes, never by its name."""

from __future__ import annotations

from auditor.static.effects import fills
from auditor.static.flow import flow_of

from .helpers import function, indexed

CODE = """
import numpy as np
import torch

class Cache:
    def __init__(self, n):
        self.counts = np.zeros(n)
        self.table = {}
        self.hist = []
    def absorb_block(self, a):
        for t in a:
            self.counts[t] += 1
    def put(self, seq):
        np.add.at(self.counts, seq, 1)
    def update(self, seq):
        return self.counts[seq].sum()
    def grow(self, seq):
        self.hist.extend(seq.tolist())
    def keep(self, seq):
        self.tokens = seq.cuda()
    def via(self, seq):
        for t in seq:
            self._bump(t)
    def _bump(self, t):
        c = self.table
        c[int(t)] = c.get(int(t), 0) + 1
    def size(self, seq):
        self.n = len(seq)

def tally(tab, toks):
    for a, b in zip(toks[:-1], toks[1:]):
        tab[a, b] += 1

def build(toks):
    out = np.zeros(10)
    np.add.at(out, toks, 1)
    return out

def copyto(buf, toks):
    buf[: len(toks)] = toks

def outer(cache, toks):
    cache.put(toks)

def main():
    val = torch.load("fineweb_val_000000.pt").numpy()
    c = Cache(5)
    tab = np.zeros((5, 5))
    c.absorb_block(val)
    c.put(val)
    c.update(val)
    c.grow(val)
    c.keep(val)
    c.via(val)
    c.size(val)
    tally(tab, val)
    t2 = build(val)
    copyto(tab, val)
    outer(c, val)
    build(val)
    tally(tab, np.load("fineweb_train_000001.npy"))
    val.tolist()
"""


def _fills() -> dict[str, list]:
    _, index = indexed(CODE)
    flow = flow_of(index)
    out: dict[str, list] = {}
    for call in function(index, "main").calls:
        found = fills(flow, call)
        out.setdefault(index.code(call.node, 60), []).append(found)
    return out


def test_fills_by_effect_not_by_name():
    found = _fills()
    for call in ("c.absorb_block(val)", "c.put(val)", "c.grow(val)", "c.via(val)", "tally(tab, val)", "outer(c, val)"):
        assert found[call][0], call
    assert found["c.via(val)"][0][0].write.into == "self"
    assert found["tally(tab, val)"][0][0].write.into == "param:tab"
    assert found["outer(c, val)"][0][0].write.into == "param:cache"


def test_reads_copies_and_counts_are_not_fills():
    found = _fills()
    for call in ("c.update(val)", "c.keep(val)", "c.size(val)", "copyto(tab, val)"):
        assert found[call] == [[]], call


def test_a_returned_table_is_state_only_when_kept():
    found = _fills()
    kept, dropped = found["build(val)"]
    assert kept and kept[0].write.into == "returned"
    assert dropped == []


def test_training_data_and_unknown_callees():
    found = _fills()
    assert found['tally(tab, np.load("fineweb_train_000001.npy"))'] == [[]]
    assert found["val.tolist()"] == [None]  # not the submission's: the rules decide

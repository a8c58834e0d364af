"""The functions behind the claimed line: whatever returned the values it prints."""

from __future__ import annotations

from auditor.scored.formats import formats_of
from auditor.scored.producers import printed_producers
from auditor.static.index import index_of
from auditor.static.reach import Program

from ..static.helpers import source_of

CODE = '''
import torch
def measure(model, toks):
    return 2.0, 1.2
def read_out(model, toks):
    return torch.tensor(1.1)
def mixture_bpb(nll, nbytes):
    bpb = nll / nbytes
    print(f"mix bytes={nbytes} mix_bpb={bpb:.6f}")
    return bpb
class Scorer:
    def score(self, toks):
        return 1.0
def train_and_score(model, toks, opt):
    for x in toks:
        loss = model(x)
        loss.backward()
        opt.step()
    return 1.5
def main(model, toks, opt):
    loss, bpb = measure(model, toks)
    print(f"final_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
    shown = read_out(model, toks).item()
    copy = shown
    print(f"final_read val_bpb:{copy:.8f}")
    s = Scorer().score(toks)
    print(f"final_method val_bpb:{s:.8f}")
    t = train_and_score(model, toks, opt)
    print(f"final_trained val_bpb:{t:.8f}")
    mixture_bpb(3.0, 2.0)
'''


def _producers() -> dict[str, list[str]]:
    source = source_of(CODE)
    program = Program([source])
    return {f.template.split()[0]: printed_producers(f, program) for f in formats_of(source, index_of(source))}


def test_the_function_a_printed_value_came_from_is_the_scorer():
    found = _producers()
    assert found["final_exact"] == ["measure"]  # unpacked from its call
    assert found["final_read"] == ["read_out"]  # through .item() and a copy
    assert found["mix"] == ["mixture_bpb"]  # prints what it returns


def test_methods_and_training_functions_are_not_scorers():
    found = _producers()
    assert found["final_method"] == []  # a method: not a module-level function to wrap
    assert found["final_trained"] == []  # it trains: capturing it would replay training

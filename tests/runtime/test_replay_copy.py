"""Replays restore an evaluation's arguments with ``copy.deepcopy``; the short paths the replay
module installs for OrderedDict and set must give what the general path gives."""

from __future__ import annotations

import collections
import copy

import torch

from auditor.runtime import replay  # noqa: F401  (installs the copiers)


def test_module_copy_keeps_structure_values_and_tied_weights():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 11, bias=False))
    model[1].weight = model[0].weight  # tied, as in most submissions
    model.register_buffer("steps", torch.zeros(()))
    copied = copy.deepcopy(model)
    assert type(copied._modules) is type(model._modules)
    assert list(copied.state_dict()) == list(model.state_dict())
    assert copied[1].weight is copied[0].weight  # sharing kept through one memo
    assert copied[0].weight is not model[0].weight
    with torch.no_grad():
        copied[0].weight.add_(1.0)
    assert not torch.equal(copied[0].weight, model[0].weight)  # a copy, not a view


def test_ordered_dict_copy_is_deep_ordered_and_keeps_cycles():
    inner = [1, 2]
    od = collections.OrderedDict([("b", inner), ("a", inner)])
    od["self"] = od
    copied = copy.deepcopy(od)
    assert list(copied) == ["b", "a", "self"]
    assert copied["b"] is copied["a"] and copied["b"] is not inner
    assert copied["self"] is copied


def test_ordered_dict_with_attributes_and_subclasses_keep_the_general_path():
    od = collections.OrderedDict(x=[1])
    od.note = ["kept"]  # type: ignore[attr-defined]
    copied = copy.deepcopy(od)
    assert copied.note == ["kept"] and copied.note is not od.note  # type: ignore[attr-defined]

    class Counted(collections.OrderedDict):
        pass

    sub = Counted(y=[2])
    assert type(copy.deepcopy(sub)) is Counted


def test_set_copy_copies_members_through_the_memo():
    class Key:
        def __init__(self, value: int) -> None:
            self.value = value

    key = Key(3)
    holder = {"set": {key}, "key": key}
    copied = copy.deepcopy(holder)
    (member,) = copied["set"]
    assert member is copied["key"] and member is not key
    assert copy.deepcopy(set()) == set()

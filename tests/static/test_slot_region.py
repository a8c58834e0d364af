"""PG103 beyond its embedded cases: the region a SLOT loss covers is read from the code, never
from what its mask is called."""

from __future__ import annotations

import pytest

from auditor.engine import AuditOptions, audit

SLOT = """
import torch
import torch.nn.functional as F
def eval_slot(H, val_tokens, head, wlens, stride, steps):
    bsz, n, d = H.shape
    yb = val_tokens[1:bsz * n + 1].view(bsz, n)
    {mask} = torch.zeros(bsz, n, dtype=torch.bool)
    for i, wl in enumerate(wlens):
        {mask}[i, {extent}] = True
    delta = torch.zeros(1, 1, d, requires_grad=True)
    opt = torch.optim.AdamW([delta], lr=0.01)
    for _ in range(steps):
        lg = head(H + delta)
        F.cross_entropy(lg[{mask}], yb[{mask}]).backward()
        opt.step()
    with torch.no_grad():
        return F.cross_entropy(head(H + delta.detach()).flatten(0, 1), yb.reshape(-1), reduction="none")
eval_slot(None, torch.load("fineweb_val_000000.pt"), None, [], 64, 8)
"""


def _severity(tmp_path, mask: str, extent: str) -> str:
    path = tmp_path / "train_gpt.py"
    path.write_text(SLOT.format(mask=mask, extent=extent))
    (finding,) = [f for f in audit([path], AuditOptions(select=["PG103"])).findings if f.code == "PG103"]
    return finding.severity.value


@pytest.mark.parametrize("mask", ["ctx_mask", "m", "scored_mask"])
def test_a_prefix_whose_end_is_not_related_to_the_scored_start_is_undecided(tmp_path, mask):
    # the first half of each window: whether it reaches the scored positions depends on the
    # stride, which the code does not relate to it; the mask's name decides nothing
    assert _severity(tmp_path, mask, ":wl // 2") == "warning"


@pytest.mark.parametrize("mask", ["ctx_mask", "m"])
def test_the_whole_window_is_an_error_whatever_the_mask_is_called(tmp_path, mask):
    assert _severity(tmp_path, mask, ":") == "error"


IN_CALLER = """
import torch
import torch.nn.functional as F
def slot_step(H, yb, head, chosen, steps):
    delta = torch.zeros(1, 1, H.shape[-1], requires_grad=True)
    opt = torch.optim.AdamW([delta], lr=0.01)
    for _ in range(steps):
        F.cross_entropy(head(H + delta)[chosen], yb[chosen]).backward()
        opt.step()
    with torch.no_grad():
        return F.cross_entropy(head(H + delta.detach()).flatten(0, 1), yb.reshape(-1), reduction="none")
def eval_slot(H, val_tokens, head, wlens, stride, steps):
    bsz, n, d = H.shape
    yb = val_tokens[1:bsz * n + 1].view(bsz, n)
    {mask} = torch.zeros(bsz, n, dtype=torch.bool)
    for i, wl in enumerate(wlens):
        s = max(wl - stride, 0)
        {mask}[i, {extent}] = True
    return slot_step(H, yb, head, {mask}, steps)
eval_slot(None, torch.load("fineweb_val_000000.pt"), None, [], 64, 8)
"""


@pytest.mark.parametrize(("extent", "severity"), [(":s", "warning"), ("s:wl", "error")])
def test_a_mask_the_caller_writes_decides_the_region(tmp_path, extent, severity):
    # context-only (the already-scored prefix) stays undecided; the scored positions are SLOT
    path = tmp_path / "train_gpt.py"
    path.write_text(IN_CALLER.format(mask="sel", extent=extent))
    (finding,) = [f for f in audit([path], AuditOptions(select=["PG103"])).findings if f.code == "PG103"]
    assert finding.severity.value == severity, finding.message
    assert "sel[i" in finding.message

"""PG115 beyond its embedded cases: what a selection on validation decides is read from its uses."""

from __future__ import annotations

from auditor.engine import AuditOptions, audit
from auditor.findings import Severity

EARLY_STOP = """
import glob
import numpy as np
import torch
def evaluate(model, val_tokens):
    with torch.no_grad():
        return float(model(val_tokens[:-1], val_tokens[1:]))
def main(args, model, opt, batch):
    val_tokens = torch.from_numpy(np.fromfile(sorted(glob.glob(args.val_files))[0], dtype=np.uint16))
    best, patience, step = float("inf"), 0, 0
    while True:
        stop = step == args.iterations
        if step % 100 == 0:
            v = evaluate(model, val_tokens)
            if v < best:
                best, patience = v, 0
            else:
                patience += 1
                if patience >= 5:
                    stop = True
        if stop:
            break
        model(*batch()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
    torch.save(model.state_dict(), "final_model.pt")
"""


def test_statements_after_an_early_exit_on_the_choice_are_not_its_uses(tmp_path):
    # early stopping on validation decides when training stops (a warning); the gradient
    # clipping after `if stop: break` does not keep any weights the comparison chose
    path = tmp_path / "train_gpt.py"
    path.write_text(EARLY_STOP)
    findings = [f for f in audit([path], AuditOptions(select=["PG115"])).findings if f.code == "PG115"]
    assert findings and all(f.severity is Severity.WARNING for f in findings), [f.message for f in findings]

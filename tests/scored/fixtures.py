"""Small records folders for the scored configuration: a script and the logs of its runs.

Three shapes, each with logs that say the guarded path ran and logs that say it did not:

- ``ngram``: a hashed n-gram eval (target in the key) behind ``if args.order >= 2`` whose
  environment default is 0; the run that printed ``ngram_eval:order=7`` used it;
- ``slot``: a SLOT eval behind ``use = getattr(args, "slot_on", _OFF)`` with ``_OFF = False``
  and a default of ``"0"``; a README also shows an ablation command that switches it on;
- ``world``: a hashed cache whose default is ``"1" if world > 1 else "0"`` with the world size
  taken from ``torch.distributed``; the logs say how many processes ran.

:func:`renamed` rewrites a script's identifiers and environment variables (the logs keep
what the script printed), so each test can require the same statuses after renaming.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

NGRAM = '''\
import os
import numpy as np

class Hyperparameters:
    ngram_eval_order = int(os.environ.get("NGRAM_EVAL_ORDER", 0))
    seed = int(os.environ.get("SEED", 1))

def log0(msg):
    print(msg, flush=True)

def eval_val(model, val_tokens):
    return 2.0, 1.2

def eval_ngram(val_np, starts, tables, mask, primes, order):
    h = np.zeros(starts.size, dtype=np.uint64)
    for k in range(order - 1):
        h ^= val_np[starts - (order - 1 - k)].astype(np.uint64) * primes[k]
    full = (h ^ (val_np[starts].astype(np.uint64) * primes[order])) & mask
    p = tables[1][full] / np.maximum(tables[0][h & mask], 1)
    return float(-np.log(p).mean()), float(-np.log2(p).mean())

def main():
    args = Hyperparameters()
    log0(f"seed:{args.seed}")
    loss, bpb = eval_val(None, None)
    log0(f"final_int6_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
    if args.ngram_eval_order >= 2:
        log0(f"ngram_eval:order={args.ngram_eval_order}")
        nl, nb = eval_ngram(None, None, None, 0, None, args.ngram_eval_order)
        log0(f"final_int6_sliding_window_ngram{args.ngram_eval_order}_exact val_loss:{nl:.8f} val_bpb:{nb:.8f}")

if __name__ == "__main__":
    main()
'''

SLOT = '''\
import os
import torch
import torch.nn.functional as F
_OFF = False

class Hyperparameters:
    slot_on = bool(int(os.environ.get("SLOT_ENABLED", "0")))
    slot_steps = int(os.environ.get("SLOT_STEPS", 8))
    seed = int(os.environ.get("SEED", 1))

def log0(msg):
    print(msg, flush=True)

def eval_val(model, val_tokens):
    return 2.0, 1.2

def eval_slot(model, val_tokens, steps, seq_len, stride):
    total = 0.0
    for start in range(0, val_tokens.numel() - seq_len, stride):
        x = val_tokens[start:start + seq_len].unsqueeze(0)
        y = val_tokens[start + 1:start + seq_len + 1].unsqueeze(0)
        delta = torch.zeros(1, 1, model.dim, requires_grad=True)
        opt = torch.optim.AdamW([delta], lr=0.01)
        for _ in range(steps):
            logits = model.head(model.hidden(x) + delta)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            logits = model.head(model.hidden(x) + delta)
            total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1)).item()
    return total, total

def main():
    args = Hyperparameters()
    log0(f"seed:{args.seed}")
    use_slot = getattr(args, "slot_on", _OFF)
    loss, bpb = eval_val(None, None)
    log0(f"final_int6_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")
    if use_slot:
        log0(f"slot:starting steps={args.slot_steps}")
        sl, sb = eval_slot(None, None, args.slot_steps, 1024, 64)
        log0(f"final_slot_exact val_loss:{sl:.8f} val_bpb:{sb:.8f}")

if __name__ == "__main__":
    main()
'''

WORLD = '''\
import os
import numpy as np
import torch.distributed as dist

def log0(msg):
    print(msg, flush=True)

def eval_val(model, val_tokens):
    return 2.0, 1.2

def eval_cached(val_np, starts, tables, mask, primes):
    ctx = val_np[starts - 1].astype(np.uint64) * primes[0]
    full = (ctx ^ (val_np[starts].astype(np.uint64) * primes[1])) & mask
    return tables[1][full] / np.maximum(tables[0][ctx & mask], 1)

def main():
    dist.init_process_group("nccl")
    world = dist.get_world_size()
    cache_default = "1" if world > 1 else "0"
    use_cache = bool(int(os.environ.get("SHARED_CACHE", cache_default)))
    log0(f"world_size:{world} grad_accum_steps:{8 // world}")
    if use_cache:
        log0("shared cache: filling the tables")
        p = eval_cached(None, None, None, 0, None)
        log0(f"final_cached_exact val_loss:{p:.8f} val_bpb:{p:.8f}")
    loss, bpb = eval_val(None, None)
    log0(f"final_int6_sliding_window_exact val_loss:{loss:.8f} val_bpb:{bpb:.8f}")

if __name__ == "__main__":
    main()
'''


def _log(seed: int, lines: list[str]) -> str:
    head = ["val_bpb:enabled tokenizer_kind=sentencepiece", f"seed:{seed}"]
    return "\n".join(head + lines) + "\n"


def _base_score(seed: int) -> str:
    return f"final_int6_sliding_window_exact val_loss:2.0{seed}000000 val_bpb:1.1{seed}000000"


def ngram_folder(root: Path, ran: bool, claim_ngram: bool = True) -> Path:
    """The n-gram script; ``ran``: its logs show the n-gram block's own lines; ``claim_ngram``:
    submission.json claims the n-gram stage's score (else the plain sliding window's)."""
    logs = {}
    for seed in (1, 2):
        lines = [_base_score(seed)]
        if ran:
            lines += ["ngram_eval:order=7", f"final_int6_sliding_window_ngram7_exact val_loss:1.5{seed}000000 val_bpb:0.9362230{seed}"]
        logs[f"train_seed{seed}.log"] = _log(seed, lines)
    claim = 0.936223015 if ran and claim_ngram else 1.115
    name = ("ngram_on" if ran else "ngram_off") + ("" if claim_ngram else "_sliding_claimed")
    return _folder(root / name, NGRAM, logs, claim)


def slot_folder(root: Path, ran: bool) -> Path:
    """The SLOT script; a README runs it both ways; ``ran``: its logs show the SLOT lines."""
    logs = {}
    for seed in (1, 2):
        lines = [_base_score(seed)]
        if ran:
            lines += ["slot:starting steps=8", f"final_slot_exact val_loss:1.7{seed}000000 val_bpb:1.0{seed}000000"]
        logs[f"train_seed{seed}.log"] = _log(seed, lines)
    readme = ("# run\n\n```\nSEED=1 torchrun --nproc_per_node=8 train_gpt.py\n```\n\n"
              "Ablation (not the claimed score):\n\n```\nSLOT_ENABLED=1 torchrun --nproc_per_node=8 train_gpt.py\n```\n")
    claim = 1.015 if ran else 1.115
    return _folder(root / ("slot_on" if ran else "slot_off"), SLOT, logs, claim, readme)


def world_folder(root: Path, world: int) -> Path:
    """The world-size script run on ``world`` processes (the cache is on with more than one)."""
    logs = {}
    for seed in (1, 2):
        lines = [f"world_size:{world} grad_accum_steps:{8 // world}"]
        if world > 1:
            lines += ["shared cache: filling the tables", f"final_cached_exact val_loss:1.1{seed}000000 val_bpb:0.5{seed}000000"]
        lines.append(_base_score(seed))
        logs[f"train_seed{seed}.log"] = _log(seed, lines)
    return _folder(root / f"world{world}", WORLD, logs, 1.115)


def _folder(path: Path, script: str, logs: dict[str, str], claim: float, readme: str | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "train_gpt.py").write_text(script)
    for name, text in logs.items():
        (path / name).write_text(text)
    (path / "submission.json").write_text(json.dumps({"val_bpb": claim, "seeds": [1, 2], "track": "track_10min_16mb"}))
    if readme:
        (path / "README.md").write_text(readme)
    return path


#: Identifiers and environment variables, renamed (logs keep what the script printed).
RENAMES = {
    "ngram_eval_order": "qz_k", "NGRAM_EVAL_ORDER": "QZ_DEPTH", "Hyperparameters": "Cfg", "args": "hp",
    "eval_ngram": "fz", "log0": "say", "slot_on": "w3", "SLOT_ENABLED": "MODE_W3", "_OFF": "_Q",
    "use_slot": "u", "eval_slot": "gz", "world": "nw", "cache_default": "cd", "use_cache": "uc",
    "SHARED_CACHE": "TBL_X", "eval_cached": "hz", "slot_steps": "k9", "SLOT_STEPS": "K9",
}


def renamed(folder: Path) -> Path:
    """Rename the script's identifiers and environment variables in place (README commands
    too). No renamed name occurs inside the text the script prints, so the logs still match."""
    script = folder / "train_gpt.py"
    text = script.read_text()
    for old, new in RENAMES.items():
        text = re.sub(rf"\b{re.escape(old)}\b", new, text)
    script.write_text(text)
    readme = folder / "README.md"
    if readme.exists():
        body = readme.read_text()
        for old, new in RENAMES.items():
            body = re.sub(rf"\b{re.escape(old)}=", f"{new}=", body)
        readme.write_text(body)
    return folder

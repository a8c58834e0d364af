"""Dataflow labels: targets through aliases, keys, demotion, summaries and closures."""

from __future__ import annotations

from auditor.static.flow import flow_of, is_tgt_name, is_val_name

from .helpers import function, indexed


def _labels(code: str, fn: str, name: str) -> set[str]:
    _, index = indexed(code)
    return set(flow_of(index).name(function(index, fn), name).labels)


def test_names():
    assert is_tgt_name("y_batch") and is_tgt_name("tgt_np") and is_tgt_name("targets") and is_tgt_name("next_tok")
    assert not is_tgt_name("y_pred") and not is_tgt_name("nll") and not is_tgt_name("byte")
    assert is_val_name("val_tokens") and is_val_name("val_np") and not is_val_name("val_loss") and not is_val_name("interval")


def test_target_through_numpy_and_torch_aliases():
    code = """
    import numpy as np
    def f(y_batch, val_np, j, chunk):
        y_np = y_batch.cpu().numpy().astype(np.uint64)
        fy = y_np.reshape(-1)
        nxt = val_np[j + 1]
        return fy
    """
    assert "tgt" in _labels(code, "f", "fy")
    assert "tgt" in _labels(code, "f", "nxt")


def test_next_token_of_a_validation_chunk():
    code = """
    def f(val_tokens, ws, end):
        chunk = val_tokens[ws:end + 1]
        x = chunk[:-1]
        y = chunk[1:]
        return x, y
    """
    assert "tgt" not in _labels(code, "f", "x")
    assert "tgt" in _labels(code, "f", "y") and "val" in _labels(code, "f", "y")


def test_a_key_needs_the_target_and_the_context():
    code = """
    import numpy as np
    def f(x_np, y_np, primes, mask, V):
        ctx_hash = x_np * primes[0]
        full_key = (ctx_hash ^ (y_np * primes[1])) & mask
        cand = ctx_hash ^ (np.arange(V) * primes[1])
        lut = y_np * 3
        return full_key
    """
    assert "joined" in _labels(code, "f", "full_key")
    assert "joined" not in _labels(code, "f", "cand")
    assert "joined" not in _labels(code, "f", "lut")


def test_scores_are_demoted():
    code = """
    import torch.nn.functional as F
    def f(logits, y):
        nll = F.cross_entropy(logits, y)
        return nll
    """
    labels = _labels(code, "f", "nll")
    assert "tgtdep" in labels and "tgt" not in labels


def test_helper_summaries_and_closures():
    code = """
    import torch
    class C:
        def _full(self, ctx_hash, t, w):
            return ctx_hash ^ (t * self.PRIMES[w])
        def predict(self, ctx_h, target):
            full_h = self._full(ctx_h, target, 1)
            return full_h
    def slot(hidden, y):
        delta = torch.zeros(1, 1, 8, requires_grad=True)
        def closure():
            loss = (hidden + delta).sum()
            return loss
        return closure
    """
    assert "joined" in _labels(code, "predict", "full_h")
    _, index = indexed(code)
    closure = next(s for s in index.functions if s.name == "closure")
    assert "grad" in flow_of(index).name(closure, "loss").labels


def test_roles_come_from_uses_not_names():
    code = """
    import torch
    import torch.nn.functional as F
    def f(a, b, c, d):
        lp = F.log_softmax(a.float(), dim=-1)
        g = lp.gather(-1, b.unsqueeze(-1))
        loss = F.cross_entropy(a, c)
        e = d + 1
        return g, loss
    """
    assert "tgt" in _labels(code, "f", "b") and "tgt:name" not in _labels(code, "f", "b")
    assert "tgt" in _labels(code, "f", "c")
    assert "tgt" not in _labels(code, "f", "d") and "tgt" not in _labels(code, "f", "e")
    assert "tgtdep" in _labels(code, "f", "g")


def test_a_gather_over_something_else_is_not_a_target():
    code = """
    import torch
    def f(a, b):
        g = torch.gather(a, 1, b)
        return g
    """
    assert "tgt" not in _labels(code, "f", "b")


def test_validation_data_from_the_files_and_through_call_arguments():
    code = """
    import glob
    import numpy as np
    def load(p):
        return np.concatenate([np.fromfile(f, dtype=np.uint16) for f in sorted(glob.glob(p))])
    def score(q, n):
        w = q[n : n + 65]
        a, b = w[:-1], w[1:]
        return a, b
    def main(args):
        s = load("data/fineweb_val_*.bin")
        t = load(args.val_files)
        u = load("data/fineweb_train_*.bin")
        return score(s, 0), score(u, 0)
    """
    assert "val" in _labels(code, "main", "s") and "val" in _labels(code, "main", "t")
    assert "val" not in _labels(code, "main", "u")
    assert "val" in _labels(code, "score", "q")
    assert "tgt" in _labels(code, "score", "b") and "tgt" not in _labels(code, "score", "a")


def test_a_combination_reduced_to_a_slot_is_a_hashed_join():
    _, index = indexed("""
    def slot(v):
        return v % 4096
    def f(s, i):
        a = s[i + 1]
        k = slot(s[i - 1] * 31 + a * 17)
        return k
    f(open("fineweb_val_000000.bin", "rb").read(), 3)
    """)
    fact = flow_of(index).name(function(index, "f"), "k")
    assert fact.has("joined") and fact.has("hash") and fact.join.hashed


def test_some_of_the_same_positions_keep_the_n_gram_shape():
    """``pos = positions[idx]``: reads at ``pos - 1`` are the context of the tokens at ``positions``."""
    code = """
    import numpy as np
    def f(s, positions, p, mask):
        cur = s[positions]
        idx = np.nonzero(positions > 2)[0]
        pos = positions[idx]
        h = np.zeros(len(idx), dtype=np.uint64)
        h ^= s[pos - 1] * p[0]
        k = (h ^ (cur[idx] * p[1])) & mask
        return k
    f(np.fromfile("fineweb_val_000000.bin", dtype=np.uint16), np.arange(64), [3, 5], 1023)
    """
    labels = _labels(code, "f", "k")
    assert "joined" in labels and "tgt" in labels


def test_validation_data_from_the_files_is_told_apart_from_a_name():
    code = """
    import numpy as np
    def load(pattern):
        return np.fromfile(pattern, dtype=np.uint16)
    def main(args, val_tokens):
        a = load(args.val_files)
        b = load("data/fineweb_val_000000.bin")[1:]
        c = val_tokens[1:]
        return a, b, c
    """
    assert {"val", "val:files"} <= _labels(code, "main", "a")
    assert {"val", "val:files"} <= _labels(code, "main", "b")
    labels = _labels(code, "main", "c")
    assert "val" in labels and "val:files" not in labels


def test_training_data_and_other_corpora_by_provenance():
    code = """
    import glob
    import numpy as np
    from datasets import load_dataset
    def load(p):
        return np.concatenate([np.fromfile(f, dtype=np.uint16) for f in sorted(glob.glob(p))])
    def main(args, table, model, prompt):
        u = load(args.train_files)
        v = load("data/fineweb_train_000001.bin")
        w = load(args.val_files)
        table.update(u[:1000])
        docs = load_dataset("HuggingFaceFW/fineweb", split="train")
        out = model.generate(prompt)
        wiki = np.fromfile("data/wiki103.bin", dtype=np.uint16)
        held = np.fromfile("data/val.bin", dtype=np.uint16)
        return u, v, w, docs, out, wiki, held
    """
    assert "train" in _labels(code, "main", "u") and "train" in _labels(code, "main", "v")
    assert "train" not in _labels(code, "main", "w") and "val" not in _labels(code, "main", "u")
    assert "train" in _labels(code, "main", "table")  # filled from the training data
    assert "hub" in _labels(code, "main", "docs") and "gen" in _labels(code, "main", "out")
    assert "file" in _labels(code, "main", "wiki") and "file" not in _labels(code, "main", "held")


def test_comprehension_variables_are_local_to_the_comprehension():
    code = """
    import numpy as np
    def main(args, loader, text):
        x = loader.next_batch(args.train_files)
        weights = tuple(float(x) for x in text.split(","))
        return weights
    """
    assert "train" in _labels(code, "main", "x")
    assert "train" not in _labels(code, "main", "weights")


def test_a_list_collects_the_target_appended_to_it():
    code = """
    import torch.nn.functional as F
    def f(v0, v1, v2):
        v3 = F.cross_entropy(v0(v1), v2, reduction="none")
        v4 = v2.tolist()
        v5, v6 = [], []
        for t in range(len(v4)):
            v5.append(v4[t])
            v6.append(t)
        return v3, v5, v6
    """
    assert "tgt" in _labels(code, "f", "v5")
    assert "tgt" not in _labels(code, "f", "v6")


def test_log_probabilities_read_at_the_target_depend_on_it():
    code = """
    import torch
    import torch.nn.functional as F
    def f(v0, v1, v2, rows):
        v3 = F.log_softmax(v0(v1), dim=-1)
        v4 = F.cross_entropy(v0(v1), v2)
        v5 = v3[rows, v2]
        v6 = v3[rows, 0]
        counts = torch.zeros(8)
        v7 = counts[rows]
        return v4, v5, v6, v7
    """
    assert "tgtdep" in _labels(code, "f", "v5")
    assert "tgtdep" not in _labels(code, "f", "v6")
    assert "tgtdep" not in _labels(code, "f", "v7")

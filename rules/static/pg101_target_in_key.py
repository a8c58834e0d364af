"""PG101 target-in-key."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity, Status
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.deps import depends, names_in
from auditor.static.facts import Fact
from auditor.static.index import Scope
from auditor.static.passing import passed_facts

#: Calls that read a table at a key: ``d.get(k)``, ``np.take(t, k)``, ``t.index_select(0, k)``.
READ_METHODS = {"get": 0, "take": 1, "index_select": 1, "__getitem__": 0}


class TargetInKey(StaticRule):
    """
    ## What it does
    Finds lookups, while scoring, in count tables or caches whose key is built from the
    context *and* the token being predicted: a hash such as
    `ctx_hash ^ (tgt * primes[k])`, a product or shift combination, or a tuple key
    `(context, target)`. The target is followed through assignments and aliases inside the
    function (`y_np = y_batch.cpu().numpy()`, `tgt = y[:, 1:]`, `val_np[j + 1]`), through the
    submission's helper functions (a `_hash_full(ctx, target)` called while scoring), and
    through the n-gram shape `tokens[pos - k] … tokens[pos]`, where the token after the
    context is the one being predicted. Counting (context, target) pairs into a table after
    the tokens are scored is not reported: only reads are.

    ## Why is this bad?
    The looked-up count exists only for the realized target, so the "probability" it yields
    is computed for the true token alone and is not a distribution over the vocabulary: in
    the hash-collision limit it drives P(correct) towards 1. Maintainers disallowed the
    whole family (PR #779, PR #982): such caches "do not renormalize correctly … look ahead
    to the target token to mix probabilities and therefore leak eval tokens". Summed over
    the vocabulary the implied distribution reaches about 277 (#886). Issue #1017 names the
    conditions it violates: C1 (the score depends on x_t) and C2 (not normalized).

    ## Example
    ```python
    full_key = ((ctx_hash ^ (y_np.astype(np.uint64) * primes[cw])) & mask).astype(np.int64)
    full_c = full_counts[full_key]              # the count of the true next token only
    p_ngram = np.minimum(full_c, ctx_c) / np.maximum(ctx_c, 1.0)
    ```

    ## Use instead
    Score every candidate token: build the n-gram distribution over the whole vocabulary
    from the context alone (`ctx_hash ^ (np.arange(V) * prime)`), normalize it, mix it with
    the model's distribution, then read the target's probability. Or use the closed-form
    token tilt of PR #1514, whose hint comes from a prefix-only table.

    ## Known problems
    A table keyed on (context, target) *without* hashing (a dict of exact tuples) is a
    normalized conditional distribution when its denominator is the context count; such
    keys are reported as warnings, only when the target comes from validation data (an exact
    bigram table read while training, to weight the loss, is not reported), and the runtime
    normalization probe decides. A lookup in
    code switched off by its environment defaults is reported `inactive`.

    ## References
    - R-NGRAM-TARGET-KEY; PR #779 (valerio-oai's ruling), PR #982 (closing text), PR #886.
    - Issue #1017, conditions C1 and C2.
    """

    CODE = "PG101"
    NAME = "target-in-key"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#779", "#982", "#1017", "R-NGRAM-TARGET-KEY")
    TAGS = ("target_in_key",)
    VALID = (
        Valid(
            code="""
            import numpy as np
            import torch
            def comp_weights(x_np, y_np, ctx_tab, full_tab, mask):
                h = x_np.reshape(-1).astype(np.uint64) * np.uint64(36313)
                fk = ((h ^ (y_np.reshape(-1).astype(np.uint64) * np.uint64(27191))) & mask).astype(np.int64)
                cc = ctx_tab[(h & mask).astype(np.int64)].astype(np.float64)
                fc = full_tab[fk].astype(np.float64)
                return (1.0 - 0.5 * np.minimum(fc, cc) / np.maximum(cc, 1.0)).astype(np.float32)
            def main(args, model, opt, steps):
                loader = TokenLoader(args.train_files)
                ctx_tab, full_tab = np.zeros(1 << 20, np.uint32), np.zeros(1 << 20, np.uint32)
                for _ in range(steps):
                    x, y = loader.next_batch()
                    w = comp_weights(x.numpy(), y.numpy(), ctx_tab, full_tab, np.uint64((1 << 20) - 1))
                    (model(x, y) * torch.from_numpy(w)).mean().backward()
                    opt.step()
            """,
            note="a hashed (context, target) table read with training batches to weight the training loss: nothing is scored",
        ),
        Valid(
            code="""
            import numpy as np
            def update(table, tokens, primes, mask):
                ctx = tokens[:-1].astype(np.uint64) * primes[0]
                tgt = tokens[1:].astype(np.uint64)
                key = (ctx ^ (tgt * primes[1])) & mask
                np.add.at(table, key, 1)          # counting after scoring: a write
            """,
            note="counting (context, target) pairs is how the table is built",
        ),
        Valid(
            code="""
            import numpy as np
            def score(full_counts, ctx_counts, ctx_hash, y, primes, mask, V):
                cand = (ctx_hash[:, None] ^ (np.arange(V)[None, :] * primes[1])) & mask
                dist = full_counts[cand] / np.maximum(ctx_counts[ctx_hash & mask], 1)[:, None]
                dist = dist / dist.sum(axis=1, keepdims=True)
                return dist[np.arange(len(y)), y]
            """,
            note="a full-vocabulary distribution from the context, normalized, then read at y",
        ),
        Valid(
            code="""
            def bytes_of(base_bytes_lut, has_space_lut, is_boundary_lut, tgt, prev):
                b = base_bytes_lut[tgt]
                b += has_space_lut[tgt] & ~is_boundary_lut[prev]
                return b
            """,
            note="byte accounting indexes lookup tables with the target alone",
        ),
        Valid(
            code="""
            import torch
            class BigramHash(torch.nn.Module):
                def forward(self, input_ids):
                    prev = input_ids[:, :-1]
                    cur = input_ids[:, 1:]
                    h = (prev * 92821) ^ (cur * 1000003)
                    return self.table[h % 4096]
            """,
            note="BigramHash input embeddings key on (previous, current) input tokens",
        ),
        Valid(
            code="""
            import os
            import numpy as np
            ORDER = int(os.environ.get("NGRAM_ORDER", "0"))
            def lookup(table, ctx_hash, y_np, prime):
                return table[(ctx_hash ^ (y_np * prime)) & 1023]
            def main():
                if ORDER > 0:
                    lookup(np.zeros(1024), np.zeros(4, dtype=np.uint64), np.zeros(4, dtype=np.uint64), 36313)
            if __name__ == "__main__":
                main()
            """,
            note="switched off by its default: reported inactive, not active",
        ),
        Valid(
            code="""
            import numpy as np
            class Phrases:
                def look(self, a, b, c):
                    h = np.zeros(len(b), dtype=np.uint64)
                    for k in range(2, 5):
                        h ^= a[b - k].astype(np.uint64) * 1000003
                    g = (h ^ (a[b - 1].astype(np.uint64) * 40503)) & 1023
                    return self.tab[g]
            VAL = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
            P = np.arange(8, 64)
            Phrases().look(VAL, P, VAL[P])
            """,
            note="the key reads the stream before the scored positions only; the target passed alongside is unused",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import numpy as np
            def mix_and_score(full_counts, ctx_counts, x_batch, y_batch, primes, mask):
                x_np = x_batch.cpu().numpy().astype(np.uint64)
                y_np = y_batch.cpu().numpy()
                ctx_hash = x_np * primes[0]
                full_key = ((ctx_hash ^ (y_np.astype(np.uint64) * primes[1])) & mask).astype(np.int64)
                full_c = full_counts[full_key.reshape(-1)]
                return full_c / np.maximum(ctx_counts[ctx_hash & mask], 1)
            VAL = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
            mix_and_score(None, None, VAL[:-1], VAL[1:], None, None)
            """,
            lines=(7,),
        ),
        Invalid(
            code="""
            class Cache:
                PRIMES = [36313, 27191, 51647]
                def _hash_full(self, ctx_hash, target, w):
                    return (ctx_hash ^ (target * self.PRIMES[w % 3])) & self.mask
                def predict(self, ctx_h, target, w):
                    full_h = self._hash_full(ctx_h, target, w)
                    return self.full_tables[w][full_h] / max(self.ctx_tables[w][ctx_h], 1)
            VAL = open("fineweb_val_000000.bin", "rb").read()
            Cache().predict(VAL[:-1], VAL[1:], 1)
            """,
            lines=(7,),
        ),
        Invalid(
            code="""
            import numpy as np
            def ngram_keys(tokens_np, pos, order, mask, primes):
                h = np.zeros(pos.size, dtype=np.uint64)
                for k in range(order - 1):
                    h ^= tokens_np[pos - (order - 1 - k)].astype(np.uint64) * primes[k]
                return h & mask, (h ^ (tokens_np[pos].astype(np.uint64) * primes[order])) & mask
            def eval_ngram(val_np, gj, tables, mask, primes):
                ck, fk = ngram_keys(val_np, gj, 3, mask, primes)
                return tables[1][fk] / np.maximum(tables[0][ck], 1)
            eval_ngram(np.fromfile("fineweb_val_000000.bin", dtype=np.uint16), np.arange(3, 67), None, None, None)
            """,
            lines=(9,),
        ),
        Invalid(
            code="""
            def eval_cache(val_tokens, counts, starts):
                total = 0.0
                for j in starts:
                    ctx = (int(val_tokens[j - 1]), int(val_tokens[j]))
                    nxt = int(val_tokens[j + 1])
                    total += counts.get((ctx, nxt), 0)
                return total
            eval_cache(open("fineweb_val_000000.bin", "rb").read(), {}, range(1, 64))
            """,
            lines=(6,),
        ),
        Invalid(
            code="""
            import os
            import numpy as np
            ORDER = int(os.environ.get("NGRAM_ORDER", "0"))
            def lookup(table, ctx_hash, y_np, prime):
                return table[(ctx_hash ^ (y_np * prime)) & 1023]
            if ORDER > 0:
                VAL = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.uint64)
                lookup(np.zeros(1024), VAL[:-1], VAL[1:], 36313)
            """,
            lines=(5,),
            status=Status.INACTIVE,
        ),
        Invalid(
            code="""
            import numpy as np
            class Phrases:
                def look(self, a, b, c):
                    h = np.zeros(len(b), dtype=np.uint64)
                    for k in range(1, 4):
                        h ^= a[b - k].astype(np.uint64) * 1000003
                    g = (h ^ (c.astype(np.uint64) * 40503)) & 1023
                    return self.tab[g]
            VAL = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
            P = np.arange(8, 64)
            Phrases().look(VAL, P, VAL[P])
            """,
            lines=(8,),
            note="the caller passes the stream, the positions and the tokens at them: the third argument is the target",
        ),
        Invalid(
            code="""
            import numpy as np
            def blend(a, tabs, m):
                j = np.arange(8, len(a))
                t = a[j].astype(np.uint64)
                out = np.zeros(len(j))
                for n in (2, 3):
                    v = np.nonzero(j >= n)[0]
                    u = j[v]
                    h = np.zeros(len(u), dtype=np.uint64)
                    for k in range(1, n):
                        h ^= a[u - k].astype(np.uint64) * 1000003
                    out[v] += tabs[n][(h ^ (t[v] * 40503)) & m]
                for n in (4, 5):
                    v = np.nonzero(j >= n)[0]
                    u = j[v]
                    h = np.zeros(len(u), dtype=np.uint64)
                    for k in range(1, n):
                        h ^= a[u - k].astype(np.uint64) * 1000003
                    out[v] = np.maximum(out[v], tabs[n][(h ^ (t[v] * 40503)) & m])
                return out
            blend(np.fromfile("fineweb_val_000000.bin", dtype=np.uint16), {}, 1023)
            """,
            lines=(12, 19),
            note="positions assigned in two loops from the same index still say which token follows the context",
        ),
        Invalid(
            code="""
            import numpy as np
            class Phrases:
                def _context(self, s, p, n):
                    h = np.zeros(len(p), dtype=np.uint64)
                    for k in range(1, n):
                        h ^= s[p - k].astype(np.uint64) * 1000003
                    return h
                def look(self, a, b, c):
                    h = self._context(a, b, 4)
                    return self.tab[(h ^ (c.astype(np.uint64) * 40503)) & 1023]
            VAL = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
            P = np.arange(8, 64)
            Phrases().look(VAL, P, VAL[P])
            """,
            lines=(10,),
            note="a helper hashes the context before the positions it is given: read at the call, before b",
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        flow = self.flow(source)
        for scope in index.scopes:
            reads: list[tuple[cst.CSTNode, object, Fact, cst.CSTNode]] = []
            for site in scope.subscripts:
                if site.store:
                    continue
                for element in site.node.slice:
                    inner = element.slice
                    if not isinstance(inner, cst.Index):
                        continue
                    fact = flow.fact(inner.value, scope)
                    if fact.join is not None and fact.has("joined"):
                        reads.append((site.node, site.stmt, fact, inner.value))
                        break
            for call in scope.calls:
                position = READ_METHODS.get(call.method)
                if position is None or not isinstance(call.node.func, cst.Attribute):
                    continue
                arg = call.arg(position)
                if arg is None:
                    continue
                fact = flow.fact(arg, scope)
                if fact.join is not None and fact.has("joined"):
                    reads.append((call.node, call.stmt, fact, arg))
            if not reads:
                continue
            in_module = scope.cls is not None and scope.cls.is_module
            for node, stmt, fact, key_expr in reads:
                if in_module and self._structural(fact):
                    continue  # a model's own input hashing (BigramHash-style), not a cache read
                if self._exact(fact) and not fact.has("val"):
                    continue  # an exact (context, target) table of training batches: counting, not scoring
                if not fact.has("val") and (fact.has("train") or _training_targets(evidence.program, scope, key_expr)):
                    continue  # keyed on a training batch's target (a loss weight while training): nothing scored
                yield self._finding(source, index, node, stmt, fact, key_expr)

    @staticmethod
    def _structural(fact: Fact) -> bool:
        """A key whose target is only the token after the context in the n-gram shape
        ``S[B - k] … S[B]`` (nothing else says it is the scored token)."""
        return fact.join is not None and fact.join.how == "ngram" and not fact.has("tgt:name")

    @staticmethod
    def _exact(fact: Fact) -> bool:
        """A key of exact (context, target) values: no hash on either side."""
        return fact.join is not None and not fact.join.hashed and not fact.has("hash")

    def _finding(self, source, index, node, stmt, fact: Fact, key_expr) -> Finding:
        exact = self._exact(fact)
        join = fact.join
        key_code = index.code(join.node, 120) if join is not None else index.code(key_expr, 120)
        key_line = None
        if join is not None:
            key_line = index.line(join.stmt.node) if join.stmt is not None else index.line(join.node)
        target = str(join.target) if join is not None and str(join.target) else (fact.reason("tgt") or "the target")
        table = index.code(node.value, 60) if isinstance(node, cst.Subscript) else index.code(node.func, 60)
        evidence = {
            "key": key_code,
            "key_line": key_line,
            "target": target,
            "table": table,
            "hashed": not exact,
        }
        if exact:
            message = (
                f"`{table}` is read with a key of the context and the target ({key_code}); an exact table "
                "is only legal when its probabilities are normalized over the vocabulary"
            )
            return self.report(
                source, node, stmt, message, evidence=evidence, severity=Severity.WARNING, confidence=Confidence.MEDIUM
            )
        message = (
            f"`{table}` is read with a hash key that includes the token being predicted "
            f"({key_code}, line {key_line}); the target comes from {target}"
        )
        return self.report(source, node, stmt, message, evidence=evidence)


def _training_targets(program, scope: Scope, key: cst.BaseExpression) -> bool:
    """Whether the parameters a key is computed from receive, at every call of the function,
    training data and never validation data (``_comp_weights(y_np, …)`` called from the
    training loop with ``y`` drawn from the training loader)."""
    params = depends(scope, names_in(key), limit=80) & set(scope.param_names)
    if not params or program is None:
        return False
    seen = False
    for name in params:
        for fact in passed_facts(program, scope, name):
            if fact.has("val"):
                return False
            if fact.has("tgt", "tok") and not fact.has("train"):
                return False  # tokens of unknown origin
            seen = seen or fact.has("train")
    return seen

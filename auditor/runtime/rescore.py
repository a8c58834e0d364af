"""Rescorers: functions that turn per-token losses into a claimed score outside the tracked
arrays (sandbox side).

A byte-level PPM mixture (#1835, #1854, #1881) receives the model's per-token NLLs and the
target ids as arrays, spreads each token's log-probability over its bytes in pure Python,
mixes it with a byte model and returns the bits per byte that the claimed line prints. Python
floats carry no stream positions, so the capture (:mod:`auditor.runtime.track`) sees no
per-token loss in it and its pass stays incomplete.

Such a function is probed as a black box, on the rule itself (C2 of issue #1017: the scored
probabilities sum to at most 1 over the tokenizer's alphabet, #1902's exclusion of the
byte-mixture rows). Its position-aligned arguments are known by their tags: an array of
per-token losses, the array of the targets they score (tagged with the same positions, holding
the stream's tokens there) and any other array of the same length. For an index k:

- called on the first k elements of every aligned array, it returns F_R; called on the first
  k + 1 with target k set to v and the loss of target k set to log |S|, it returns F(v);
- the bits per byte it returns are nats over canonical bytes: T = F * B * ln 2, with B the
  bytes of the targets it was given (pipeline.md's formula, on the harness's tokenizer); so
  NLL(v) = T(v) - T_R is what it charged target k for being v, every earlier target being
  scored as before (a causal scorer cannot see the length of what follows);
- the injected loss is that of a model whose distribution is uniform over S, the tokens of
  one byte or more (boundary tokens have no bytes, so they move no bpb), and then of one
  sharpened towards the candidates the rescorer favoured (q(v) proportional to the square of
  what it gave v). A mixture of any such model with a normalized distribution gives
  sum_v exp(-NLL(v)) <= 1; a sum above 1 is a score that is not a distribution.

Anything the probe cannot read the same way (a figure that is not a bpb, a rounded one, a
float argument that is not the losses or a plain transform of them, a call that raises) makes
it inconclusive, never a pass of the claim.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from auditor.runtime import data, probes, track
from auditor.runtime.bytecount import ByteTables
from auditor.runtime.capture import _floats

#: Fewest aligned elements for a call to be a rescorer (shorter arrays are not a stream).
MIN_ALIGNED = 32
#: Indices probed per rescorer, spread over the second half of its targets (the byte model
#: has learned something by then), and the seed that picks them.
PROBE_INDICES = 6
SEED = 20260
#: Decimals below which a returned figure counts as rounded (no NLL can be read from it).
ROUNDED_DECIMALS = 9


@dataclass
class Aligned:
    """One position-aligned argument: where it is (positional index or keyword), what it holds."""

    where: int | str
    role: str  # "target", "loss", "logp" (-loss), "prob" (exp(-loss)) or "other" (truncated only)
    values: np.ndarray  # a plain copy, taken before the call
    torch_dtype: torch.dtype | None = None  # it was a tensor of this dtype


@dataclass
class Rescorer:
    """A call whose returned figure no tracked loss explains, with copies of its aligned inputs."""

    fn: Callable[..., Any]
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    aligned: list[Aligned]
    positions: np.ndarray  # stream index of each aligned element's target
    returned: list[float]


def _tags(value: Any) -> np.ndarray | None:
    """Stream positions of a 1-D tagged array or tensor, element by element."""
    if isinstance(value, np.ndarray):
        pos = getattr(value, track.POS, None)
        return None if pos is None else np.asarray(pos, dtype=np.int64).reshape(-1)
    if isinstance(value, torch.Tensor):
        pos = track.pos_of(value)
        return None if pos is None else pos.detach().cpu().numpy().astype(np.int64).reshape(-1)
    return None


def _plain(value: np.ndarray | torch.Tensor) -> np.ndarray:
    """A plain copy of a 1-D array or tensor (no tags, nothing shared with the call)."""
    if isinstance(value, np.ndarray):
        return np.array(value.view(np.ndarray), copy=True)
    return value.detach().cpu().clone().numpy()


def aligned_inputs(args: tuple[Any, ...], kwargs: dict[str, Any],
                   stream: np.ndarray) -> tuple[list[Aligned], np.ndarray] | None:
    """The position-aligned arguments of a call about to be made, copied, or None when they
    are not per-token losses beside the targets they score."""
    items = [(where, value, _tags(value)) for where, value in (*enumerate(args), *kwargs.items())
             if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 1]
    floats = [tags for _, value, tags in items
              if tags is not None and len(tags) >= MIN_ALIGNED and _is_float(value) and (tags >= 0).all()]
    if not floats:
        return None
    positions = floats[0]
    n = len(positions)
    if any(not np.array_equal(tags, positions) for tags in floats):
        return None
    if positions.max() >= len(stream) or positions.min() < 1:
        return None
    out: list[Aligned] = []
    for where, value, tags in items:
        if len(value) != n:
            continue
        plain = _plain(value)
        role = "other"
        if _is_float(value):
            role = "float"  # named by :func:`_name_floats`
        elif tags is not None and np.array_equal(tags, positions) \
                and np.array_equal(plain.astype(np.int64), stream[positions]):
            role = "target"
        out.append(Aligned(where, role, plain, value.dtype if isinstance(value, torch.Tensor) else None))
    if not any(a.role == "target" for a in out) or not _name_floats(out):
        return None
    return out, positions


def _is_float(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.is_floating_point()
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def _name_floats(aligned: list[Aligned]) -> bool:
    """Give each float argument its relation to the losses (the losses, their negation, their
    probabilities); False when one is none of these (an input the probe could not set for
    another target without guessing)."""
    floats = [a for a in aligned if a.role == "float"]
    # NLLs in nats: finite, never negative, and some above 1 (probabilities never are)
    losses = [a for a in floats if np.isfinite(a.values).all() and (a.values >= 0).all() and (a.values > 1.0).any()]
    if len(losses) != 1:
        return False
    loss = losses[0].values.astype(np.float64)
    for a in floats:
        v = a.values.astype(np.float64)
        if a is losses[0]:
            a.role = "loss"
        elif np.allclose(v, -loss, rtol=1e-5, atol=1e-6):
            a.role = "logp"
        elif np.allclose(v, np.exp(-loss), rtol=1e-5, atol=1e-7):
            a.role = "prob"
        else:
            return False
    return True


def _call(rescorer: Rescorer, k: int, token: int | None, loss: float) -> Any:
    """The rescorer on the first ``k`` aligned elements, or on the first ``k + 1`` with target
    k set to ``token`` and its loss to ``loss``."""
    args = list(rescorer.args)
    kwargs = dict(rescorer.kwargs)
    for a in rescorer.aligned:
        if token is None:
            values = a.values[:k].copy()
        else:
            values = a.values[: k + 1].copy()
            if a.role == "target":
                values[k] = token
            elif a.role == "loss":
                values[k] = loss
            elif a.role == "logp":
                values[k] = -loss
            elif a.role == "prob":
                values[k] = math.exp(-loss)
        value: Any = torch.from_numpy(values).to(a.torch_dtype) if a.torch_dtype is not None else values
        if isinstance(a.where, int):
            args[a.where] = value
        else:
            kwargs[a.where] = value
    torch.manual_seed(SEED)
    np.random.seed(SEED % 2**32)
    random.seed(SEED)
    return rescorer.fn(*args, **kwargs)


def _figure(result: Any, slot: int) -> float:
    values = _floats(result)
    if slot >= len(values):
        raise probes.Inconclusive("the rescorer returned fewer numbers than in the run")
    return values[slot]


def probe(rescorer: Rescorer, slot: int, stream: np.ndarray, tables: ByteTables, vocab: int,
          deadline: float) -> probes.ProbeResult:
    """The substitution probe of the module docstring on returned figure ``slot`` (a bpb)."""
    started = time.monotonic()
    name = rescorer.name

    def result(status: str, detail: str, **evidence: Any) -> probes.ProbeResult:
        evidence["rescorer"] = True
        return probes.ProbeResult("substitution", status, detail, evidence, scorer=name,
                                  seconds=time.monotonic() - started)

    canonical = tables.canonical(stream)
    positions = rescorer.positions
    n = len(positions)
    rng = np.random.default_rng(SEED)
    pool = np.arange(n // 2, n)
    indices = sorted(rng.choice(pool, size=min(PROBE_INDICES, len(pool)), replace=False).tolist())
    done: list[dict[str, Any]] = []
    try:
        for k in indices:
            if time.monotonic() > deadline:
                break
            p = int(positions[k])
            bytes_before = int(canonical[positions[:k]].sum())
            candidates = [v for v in range(vocab) if v != data.BOS and _bytes_at(tables, stream, p, v) > 0]
            if len(candidates) < 2:
                continue
            first = _figure(_call(rescorer, k, None, 0.0), slot)
            again = _figure(_call(rescorer, k, None, 0.0), slot)
            if first != again:
                return result("inconclusive", f"the rescorer returned {first!r} and then {again!r} for the same input")
            if first != 0.0 and _rounded(first):
                return result("inconclusive", f"the rescorer returns a rounded figure ({first!r}): no per-token "
                              "loss can be read from it")
            rest = first * bytes_before * math.log(2)
            tol = max(probes.SUM_TOL, 64 * np.finfo(np.float64).eps * abs(rest))

            def charges(model: dict[int, float], k: int = k, p: int = p, before: int = bytes_before,
                        rest: float = rest) -> dict[int, float]:
                """What the rescorer charges target k for each candidate, the model's loss of
                candidate v being ``model[v]``."""
                out = {}
                for v, loss in model.items():
                    size = before + _bytes_at(tables, stream, p, v)
                    out[v] = _figure(_call(rescorer, k, v, loss), slot) * size * math.log(2) - rest
                    if not math.isfinite(out[v]):
                        raise probes.Inconclusive(f"target {p}, token {v}: non-finite NLL")
                return out

            # a uniform model first, then one sharpened towards what the rescorer favoured
            # (any distribution will do: mixed with a distribution, it gives a sum <= 1)
            model = {v: math.log(len(candidates)) for v in candidates}
            for which in ("uniform", "sharpened"):
                nlls = charges(model)
                if min(nlls.values()) < -tol:
                    return result("inconclusive", f"at target {p} the figure does not read as bits per canonical "
                                  f"byte (a candidate would cost {min(nlls.values()):.3g} nats)")
                total = sum(math.exp(-x) for x in nlls.values())
                original = int(stream[p])
                evidence = {"position": p, "sum": total, "tokens": len(nlls), "original_token": original,
                            "original_nll": nlls.get(original), "tolerance": tol, "model": which,
                            "left_out": [v for v in range(vocab) if v not in nlls]}
                if total > 1.0 + tol:
                    return result("fail", f"at target {p}, with the model's losses those of a {which} distribution "
                                  f"over the {len(nlls)} tokens of one byte or more, the probabilities {name}() "
                                  f"gives them sum to {total:.4g} (> 1): its score is not a distribution over the "
                                  "tokens", **evidence)
                weights = {v: math.exp(-2.0 * x) for v, x in nlls.items()}
                norm = sum(weights.values())
                if not norm > 0.0:
                    break
                model = {v: -math.log(w / norm) if w > 0.0 else 50.0 for v, w in weights.items()}
            done.append(evidence)
    except probes.Inconclusive as exc:
        return result("inconclusive", str(exc))
    except Exception as exc:  # the submission's code raised on a shortened input
        return result("inconclusive", f"the rescorer raised {type(exc).__name__} on a shortened input: "
                      f"{str(exc)[:160]}")
    if not done:
        return result("skipped", "time budget spent before a target was tried")
    sums = ", ".join(f"{d['position']}: {d['sum']:.6f}" for d in done)
    return result("pass", f"sums over the tokens of one byte or more at targets {sums}",
                  positions=[d["position"] for d in done], sums=[d["sum"] for d in done])


def _rounded(value: float) -> bool:
    scaled = value * 10 ** ROUNDED_DECIMALS
    return abs(scaled - round(scaled)) < 1e-6


def _bytes_at(tables: ByteTables, stream: np.ndarray, position: int, token: int) -> int:
    """Canonical bytes of ``token`` as the target at ``position`` (after the stream's token)."""
    before = int(stream[position - 1])
    lead = bool(tables.has_leading_space[token]) and not bool(tables.is_boundary[before])
    return int(tables.base_bytes[token]) + int(lead)

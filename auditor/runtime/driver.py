"""Runs a submission's own pipeline on the CPU and probes every evaluation it makes (sandbox side).

One job (a :class:`auditor.runtime.protocol.Job` on standard input) describes the script and
the scale. The driver

1. writes synthetic shards and a tokenizer, sets the script's own knobs to a tiny run
   (vocabulary 64, a few thousand validation tokens, short sequences, small chunks, two
   training steps) and executes the script's entry point (its ``__main__`` block);
2. sees every call of an evaluation function (the loader wraps them), captures the
   per-position NLLs behind the loss it returns (:mod:`auditor.runtime.track`) and snapshots
   its arguments (model, optimiser state, tokens) and the random state;
3. reruns the whole pipeline on a stream changed after a cut: anything that learns from
   validation tokens before scoring them (pre-quantization TTT, validation-calibrated
   quantization) shows up as a moved NLL before the cut;
4. replays each evaluation function from its snapshot on perturbed streams and runs the
   probes of :mod:`auditor.runtime.probes` on it;
5. reports a :class:`auditor.runtime.protocol.DriverResult` on the pipe the parent gave it
   (checkpoints on the way, so a run stopped at the wall-clock limit still reports).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import functools
import importlib.abc
import importlib.util
import io
import itertools
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditor.runtime import confine, data, guard, loader, probes, protocol, stubs, track
from auditor.runtime.track import TRACKER

OUT_OF_TIME = "time budget spent"


@dataclass
class Settings:
    vocab: int = 64
    seq_len: int = 64
    stride: int = 32
    chunk: int = 256
    val_tokens: int = 1024
    train_tokens: int = 65536
    real_val_tokens: int = 50_000_000  # for scaling hashed tables to the same load
    seed: int = 1337
    threads: int = 1
    budget_s: float = 100.0
    model_dim: int = 32
    substitution_positions: int = 2
    replay_limit_s: float = 20.0  # a replay slower than this is not used for the probes
    fp32: bool = True  # run models in float32 on the CPU (see stubs.install)

    @classmethod
    def from_job(cls, job: protocol.Job) -> Settings:
        known = {k: v for k, v in job.settings.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# -- knobs ---------------------------------------------------------------------------------

def knob_values(knobs: dict[str, loader.Knob], s: Settings, paths: dict[str, str],
                run_env: dict[str, str] | None = None, source_text: str = "") -> dict[str, str]:
    """Values for the script's own environment knobs that shrink the run."""
    scale = s.val_tokens / s.real_val_tokens
    exact: dict[str, Any] = {
        "VOCAB_SIZE": s.vocab, "MODEL_DIM": s.model_dim, "NUM_HEADS": 2, "NUM_KV_HEADS": 1, "EMBED_DIM": s.model_dim,
        "TRAIN_SEQ_LEN": s.seq_len, "EVAL_SEQ_LEN": s.seq_len, "TTT_EVAL_SEQ_LEN": s.seq_len, "SEQ_LEN": s.seq_len,
        "EVAL_STRIDE": s.stride, "STRIDE": s.stride, "SLIDING_STRIDE": s.stride, "TTT_STRIDE": s.stride,
        "TRAIN_BATCH_TOKENS": 8 * s.seq_len * 2, "VAL_BATCH_SIZE": 8 * s.val_tokens, "VAL_BATCH_TOKENS": 8 * s.val_tokens,
        "ITERATIONS": 2, "WARMUP_STEPS": 0, "WARMDOWN_ITERS": 0, "VAL_LOSS_EVERY": 0, "TRAIN_LOG_EVERY": 1,
        "MAX_WALLCLOCK_SECONDS": 100_000_000, "GPTQ_RESERVE_SECONDS": 0, "GPTQ_RESERVE_MS": 0,
        "TTT_CHUNK_TOKENS": s.chunk, "TTT_EPOCHS": 1, "TTT_BATCH_SEQS": 4, "TTT_CHUNK_SIZE": 32,
        "TTT_BATCH_SIZE": 4, "TTT_LORA_RANK": 4, "PHASED_TTT_PREFIX_DOCS": 3, "GLOBAL_TTT_CHUNK_TOKENS": 512,
        "GLOBAL_TTT_BATCH_SEQS": 2, "GLOBAL_TTT_EPOCHS": 1, "SLOT_BATCH_SEQS": 8,
        "SEED": s.seed, "RUN_ID": "pgolf_audit", "FUSED_CE_ENABLED": 0, "LOGIT_CHUNK": 0,
        "DATA_PATH": paths["data_path"], "TOKENIZER_PATH": paths["tokenizer"], "DATA_DIR": paths["data_dir"],
        "DATASETS_DIR": paths["data_path"], "NGRAM_EVAL_MAX_SECONDS": 0, "TRAIN_SEQ_SCHEDULE": "",
    }
    out: dict[str, str] = {}
    for name, knob in knobs.items():
        value: Any = None
        default = knob.default
        number = _number(default)
        if name in exact:
            value = exact[name]
        elif "BUCKET" in name.upper() or "TABLE_SIZE" in name.upper():
            if number and number >= 4096 and "ART" not in name.upper():
                value = loader.scaled_buckets(int(number), scale)
        elif re.search(r"MIN_TOKENS$", name) and number and number > 64:
            # a cache or mixer that waits for N tokens before it mixes would never switch on in a
            # stream of a few thousand; the threshold shrinks with the stream
            value = max(16, int(number * scale))
        elif re.search(r"SEQ_LEN$", name):
            value = s.seq_len
        elif re.search(r"STRIDE$", name):
            value = s.stride
        elif re.search(r"CHUNK_TOKENS$", name):
            value = s.chunk
        elif re.search(r"BATCH_SEQS$", name):
            value = 4
        elif re.search(r"(^|_)EPOCHS$", name) and number and number > 1:
            value = 1
        elif re.search(r"CALIB\w*(BATCHES|SAMPLES|SEQS|TOKENS|NUM)$", name) and number and number > 2:
            value = 2
        elif re.search(r"(SLOT|TTT|LBFGS|ADAPT)\w*(STEPS|ITERS|MAX_ITER)$", name) and number and number > 3:
            value = 3
        elif re.search(r"(AR|GEN)\w*(SEQS|SAMPLES)$", name) and number and number > 2:
            value = 2
        if name == "CASEOPS_ENABLED" and value is None and "val_bytes" in source_text:
            value = (run_env or {}).get(name, "1")  # the byte sidecar is written; CaseOps scripts expect it
        if name == "COMPRESSOR" and value is None:
            # lrzip is a program (refused in the sandbox); the round trip is lossless either way
            chosen = (run_env or {}).get(name, default or "")
            if re.search(r"lrzip|pergroup|zpaq|xz_cli", chosen, re.I):
                value = default if default and not re.search(r"lrzip|pergroup", default, re.I) else "lzma"
        if value is None and knob.multi_gpu_default is not None and name not in (run_env or {}):
            value = knob.multi_gpu_default  # the default the 8-GPU run had ("1" if world_size > 1)
        if value is not None:
            out[name] = str(value)
    for name in ("DATA_PATH", "TOKENIZER_PATH", "DATA_DIR"):
        out.setdefault(name, str(exact[name]))
    return out


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


# -- passes -------------------------------------------------------------------------------


@dataclass
class PassResult:
    name: str
    index: int  # how many calls of this function came before it in the run
    depth: int
    seconds: float
    returned: list[float]
    complete: bool
    reason: str = ""
    strategy: str = ""
    positions: np.ndarray | None = None
    nll: np.ndarray | None = None
    starts: list[int] = field(default_factory=list)
    returned_loss: float | None = None
    coverage: dict[str, int] = field(default_factory=dict)
    ordinals: np.ndarray | None = None  # record ordinal of each scored element
    ignored: bool = False  # not an evaluation after all
    record_positions: dict[int, np.ndarray] = field(default_factory=dict)  # ordinal -> all positions

    def scored(self) -> probes.Scored:
        assert self.positions is not None and self.nll is not None
        return probes.Scored(self.positions, self.nll, self.returned_loss, self.seconds, self.starts)

    def summary(self) -> protocol.PassRecord:
        return protocol.PassRecord(
            name=self.name, index=self.index, depth=self.depth, seconds=round(self.seconds, 3),
            returned=self.returned[:4], complete=self.complete, reason=self.reason, strategy=self.strategy,
            scored=0 if self.positions is None else int(len(self.positions)),
            coverage={k: int(v) for k, v in self.coverage.items()},
        )


def _floats(value: Any, depth: int = 0) -> list[float]:
    """Finite floats in a returned value (tuples, lists, dicts, tensors, numbers)."""
    out: list[float] = []
    if depth > 2:
        return out
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        if math.isfinite(float(value)):
            out.append(float(value))
    elif isinstance(value, torch.Tensor) and value.numel() == 1:
        out.append(float(value.detach().double().item()))
    elif isinstance(value, np.ndarray) and value.size == 1:
        out.append(float(value.reshape(-1)[0]))
    elif isinstance(value, np.generic):
        out.append(float(value))
    elif isinstance(value, (tuple, list)):
        for v in value[:8]:
            out.extend(_floats(v, depth + 1))
    elif isinstance(value, dict):
        for k, v in list(value.items())[:16]:
            if isinstance(k, str) and ("loss" in k or "nll" in k or "bpb" in k):
                out.extend(_floats(v, depth + 1))
    return [x for x in out if math.isfinite(x)]


def _has_number(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_has_number(v) for v in value[:8])
    return isinstance(value, (float, np.floating)) or (isinstance(value, torch.Tensor) and value.numel() == 1)


def _matches(total: float, count: int, returned: list[float]) -> float | None:
    """The returned number that is the mean (or the sum) of the captured losses, if any."""
    mean = total / count
    for r in returned:
        if abs(mean - r) <= 2e-6 * max(1.0, abs(r)):
            return r
    for r in returned:
        if abs(total - r) <= 2e-6 * max(1.0, abs(r)):
            return r / count
    return None


def select_scored(pass_id: int, returned: list[float]) -> tuple[str, list[track.Record], float | None, str]:
    """The records whose mean is the returned loss: (strategy, records, loss, why-not).

    Strategies, in order: the records whose provenance reached a ``.item()`` of the pass (the
    accumulator), their union, every record made without autograd (scores, not optimisation
    losses), and the same keeping only the latest score of each target (re-scoring passes).
    """
    records = {rid: r for rid, r in TRACKER.records.items() if pass_id in r.passes}
    if not records:
        return "", [], None, "no per-token loss of a validation target was seen"
    if not returned:
        return "", [], None, "the function returned no number to check the capture against"
    candidates: list[tuple[str, Any]] = []
    provs = [prov for value, prov, passes in TRACKER.items if pass_id in passes]
    seen: set[frozenset[int]] = set()
    for prov in reversed(provs):
        if prov not in seen:
            seen.add(prov)
            candidates.append(("provenance", lambda prov=prov: [records[r] for r in sorted(prov) if r in records]))
    if provs:
        union = frozenset().union(*provs)
        candidates.append(("provenance-union", lambda: [records[r] for r in sorted(union) if r in records]))
    for acc in sorted({r.acc for r in records.values() if r.acc}):  # scalars added to one accumulator
        candidates.append(("accumulator", lambda acc=acc: [r for _, r in sorted(records.items()) if r.acc == acc]))
    no_grad = [r for _, r in sorted(records.items()) if not r.grad]
    candidates.append(("no-grad", lambda: no_grad))
    candidates.append(("no-grad-latest", lambda: _latest(no_grad)))
    candidates.append(("latest", lambda: _latest([r for _, r in sorted(records.items())])))
    tried = []
    for strategy, make in candidates:
        chosen = make()
        if not chosen:
            continue
        values = np.concatenate([r.values for r in chosen])
        # A loss of exactly 0 is a masked-out term ((nll * mask).sum()), not a scored target.
        counted = int(np.count_nonzero(values))
        if not counted:
            continue
        loss = _matches(float(values.sum()), counted, returned)
        if loss is not None:
            return strategy, chosen, loss, ""
        tried.append(f"{strategy}: mean {float(values.sum()) / counted:.6g} over {counted}")
    return "", [], None, (f"no set of captured per-token losses averages to the returned value(s) "
                          f"{', '.join(f'{r:.6g}' for r in returned[:3])} ({'; '.join(tried[-4:])})")


def _latest(chosen: list[track.Record]) -> list[track.Record]:
    """Per target, only the most recent non-zero score (copies; the records are not changed)."""
    owner: dict[int, int] = {}
    for i, rec in enumerate(chosen):
        for p, v in zip(rec.positions.tolist(), rec.values.tolist()):
            if v != 0.0:
                owner[p] = i
    out = []
    for i, rec in enumerate(chosen):
        mask = np.array([owner.get(p) == i and v != 0.0 for p, v in zip(rec.positions.tolist(), rec.values.tolist())],
                        dtype=bool)
        if mask.any():
            out.append(track.Record(rec.rid, rec.positions[mask], rec.values[mask], rec.kind, rec.grad, rec.passes,
                                    rec.ordinal))
    return out


# -- the session -----------------------------------------------------------------------------


@dataclass
class Snapshot:
    fn: Any
    name: str
    args: Any
    kwargs: Any
    rng: tuple[Any, Any, Any]
    module: Any
    result: PassResult | None = None


@dataclass
class Run:
    """One run of the pipeline: its record for the report and the passes it captured."""

    record: protocol.RunRecord
    passes: list[PassResult]


class Session:
    def __init__(self, job: protocol.Job, workdir: Path, channel: ResultPipe | None = None) -> None:
        self.job = job
        self.settings = Settings.from_job(job)
        self.workdir = workdir
        self.started = time.monotonic()
        self.deadline = self.started + self.settings.budget_s
        self.stream = data.markov_stream(self.settings.val_tokens + 1, self.settings.vocab, self.settings.seed)
        self.current = self.stream
        self.passes: list[PassResult] = []
        self.snapshots: dict[str, Snapshot] = {}
        self.take_snapshots = True
        self.depth = 0
        self.pass_ids = itertools.count(1)
        self.calls: dict[str, int] = {}
        self.module: Any = None
        self.log_tail: list[str] = []
        self.result = protocol.DriverResult()
        self.channel = channel
        self.prepared: loader.Prepared | None = None
        self.val_shards: list[Path] = []
        self.siblings: set[str] = set()
        self.builtins: dict[str, Any] = dict(vars(builtins))
        self.source_text = ""
        self.applied_knobs: dict[str, str] = {}
        self.guard: guard.Guard | None = None
        self.byte_table: np.ndarray | None = None
        self.tokenizer_path: Path | None = None
        self.last_pass: PassResult | None = None
        self.snapshots_before: dict[str, Snapshot] = {}

    # -- files ----------------------------------------------------------------------------

    def prepare_data(self) -> dict[str, str]:
        s = self.settings
        root = self.workdir / "data"
        tokenizers = root / "tokenizers"
        model = data.train_tokenizer(tokenizers, s.vocab, s.seed)
        for name in (f"fineweb_{s.vocab}_bpe.model", "fineweb_1024_bpe.model", "fineweb_4096_bpe.model",
                     "fineweb_8192_bpe.model"):
            target = tokenizers / name
            if not target.exists():
                target.write_bytes(model.read_bytes())
        train = data.markov_stream(s.train_tokens, s.vocab, s.seed + 1)
        dirs = [root / "datasets" / f"fineweb10B_sp{v}" for v in (s.vocab, 1024, 4096, 8192)] + [root / "datasets"]
        self.val_shards = []
        for d in dirs:
            data.write_shard(d / "fineweb_train_000000.bin", train)
            self.val_shards.append(d / "fineweb_val_000000.bin")
        self.byte_table = data.token_bytes(model, s.vocab)
        self.write_val(self.stream)
        self.tokenizer_path = model
        return {"data_path": str(dirs[0]), "tokenizer": str(model), "data_dir": str(root),
                "datasets_dir": str(root / "datasets")}

    def write_val(self, stream: np.ndarray) -> None:
        sidecar = "val_bytes" in self.source_text
        for path in self.val_shards:
            data.write_shard(path, stream)
            if sidecar and self.byte_table is not None:
                data.write_shard(path.with_name("fineweb_val_bytes_000000.bin"), self.byte_table[stream])
        self.current = stream

    # -- wrapping evaluation functions ------------------------------------------------------

    def wrap(self, fn: Any, name: str) -> Any:
        if getattr(fn, "__pg_original__", None) is not None:
            return fn

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, name, args, kwargs)

        wrapper.__pg_original__ = fn  # type: ignore[attr-defined]
        return wrapper

    def call(self, fn: Any, name: str, args: tuple, kwargs: dict, record: bool = True) -> Any:
        depth = self.depth
        pass_id = next(self.pass_ids)
        self._tag_tokens((args, kwargs))
        snapshot = None
        if depth == 0 and self.take_snapshots:
            snapshot = self._snapshot(fn, name, args, kwargs)
        TRACKER.open_passes.append(pass_id)
        self.depth += 1
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            TRACKER.forget(pass_id)
            raise
        finally:
            self.depth -= 1
            TRACKER.open_passes.remove(pass_id)
        seconds = time.perf_counter() - started
        index = self.calls.get(name, 0)
        self.calls[name] = index + 1
        pr = self._read_pass(pass_id, name, index, depth, seconds, result)
        TRACKER.forget(pass_id)
        if not pr.returned and not pr.complete and "no per-token loss" in pr.reason:
            pr.ignored = True  # a helper with "eval" in its name (it prepares, it does not score)
            snapshot = None
        if record and not pr.ignored:
            self.passes.append(pr)
        self.last_pass = pr
        if snapshot is not None:
            snapshot.result = pr
            if pr.complete:
                self.snapshots[name] = snapshot
        return result

    def _read_pass(self, pass_id: int, name: str, index: int, depth: int, seconds: float, result: Any) -> PassResult:
        returned = _floats(result)
        strategy, records, loss, why = select_scored(pass_id, returned)
        if not returned and _has_number(result):
            why = "the evaluation returned a non-finite loss (the shrunk model diverged)"
        pr = PassResult(name, index, depth, seconds, returned, bool(records), why, strategy)
        if records:
            positions = np.concatenate([r.positions for r in records])
            values = np.concatenate([r.values for r in records])
            unattributed = positions < 0
            if unattributed.any() and np.abs(values[unattributed]).max() > 1e-9:
                pr.complete = False
                pr.reason = (f"{int(unattributed.sum())} of {len(values)} per-token losses could not be tied to a "
                             "validation target")
                return pr
            ordinals = np.concatenate([np.full(len(r.positions), r.ordinal, dtype=np.int64) for r in records])
            keep = ~unattributed & (values != 0.0)  # exact zeros are masked-out terms
            pr.positions, pr.nll = positions[keep], values[keep]
            pr.ordinals = ordinals[keep]
            pr.record_positions = {r.ordinal: r.positions for r in records}
            pr.returned_loss = loss
            pr.starts = sorted({int(r.positions[r.positions >= 0].min()) for r in records if (r.positions >= 0).any()})
            counts = np.bincount(pr.positions, minlength=len(self.current))
            scored_range = counts[1:]
            pr.coverage = {"targets": int(len(self.current) - 1), "scored": int((scored_range > 0).sum()),
                           "scored_twice_or_more": int((scored_range > 1).sum()), "records": len(records)}
        return pr

    def _tag_tokens(self, obj: Any) -> None:
        """Tag untagged integer tensors/arrays that hold the validation stream (by content)."""
        stream = self.current
        for holder, key, value in _walk(obj):
            if isinstance(value, torch.Tensor) and not value.is_floating_point() and value.dim() == 1:
                if track.pos_of(value) is None and value.numel() >= 64 and value.numel() <= len(stream):
                    n = value.numel()
                    try:
                        same = bool(np.array_equal(value.detach().cpu().numpy().astype(np.int64), stream[:n]))
                    except Exception:
                        same = False
                    if same:
                        track.tag_stream(value)
            elif isinstance(value, np.ndarray) and not isinstance(value, track.TArr) and value.ndim == 1 \
                    and np.issubdtype(value.dtype, np.integer) and 64 <= value.size <= len(stream):
                if np.array_equal(value.astype(np.int64), stream[: value.size]) and holder is not None:
                    tagged = track.to_tarr(value, np.arange(value.size, dtype=np.int64))
                    _set(holder, key, tagged)

    def _snapshot(self, fn: Any, name: str, args: tuple, kwargs: dict) -> Snapshot | None:
        rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        state = {k: v for k, v in vars(self.module).items()
                 if not k.startswith("__") and isinstance(v, (dict, list, set, np.ndarray, torch.Tensor))}
        try:
            with torch.no_grad():
                copied = copy.deepcopy((args, kwargs, state))
        except Exception as exc:
            self.result.notes.append(f"{name}: arguments could not be copied for replays ({type(exc).__name__}: {exc})")
            return None
        snap = Snapshot(fn, name, copied[0], copied[1], rng, self.module)
        snap.globals = copied[2]  # type: ignore[attr-defined]
        return snap

    def _replay(self, snap: Snapshot, stream: np.ndarray, watch: int | None = None) -> track.StopReplay | None:
        """Call the evaluation again from its snapshot on another stream; where it stopped, or None."""
        if time.monotonic() > self.deadline:
            raise probes.Inconclusive(OUT_OF_TIME)
        args, kwargs, state = copy.deepcopy((snap.args, snap.kwargs, getattr(snap, "globals", {})))
        module_vars = vars(snap.module)
        saved = {k: module_vars.get(k) for k in state}
        module_vars.update(state)
        self._swap_tokens((args, kwargs), stream)
        globals_restore = self._swap_tokens(module_vars, stream, top_level=True)
        self.write_val(stream)
        torch.set_rng_state(snap.rng[0])
        np.random.set_state(snap.rng[1])
        random.setstate(snap.rng[2])
        self.take_snapshots = False
        TRACKER.watch = watch
        try:
            with _quiet(self):
                self.call(snap.fn, snap.name, args, kwargs, record=False)
        except track.StopReplay as stop:
            return stop
        except probes.Inconclusive:
            raise
        except Exception as exc:
            raise probes.Inconclusive(f"the replay raised {type(exc).__name__}: {exc}") from exc
        finally:
            TRACKER.watch = None
            self.take_snapshots = True
            for undo in globals_restore:
                undo()
            module_vars.update(saved)
            self.write_val(self.stream)
        return None

    def replay(self, snap: Snapshot, stream: np.ndarray) -> probes.Scored:
        """The NLLs of a full replay on ``stream``."""
        self._replay(snap, stream)
        pr = self.last_pass
        if not pr.complete:
            raise probes.Inconclusive(f"capture incomplete in a replay: {pr.reason}")
        return pr.scored()

    def replay_at(self, snap: Snapshot, stream: np.ndarray, position: int) -> float:
        """The NLL of one target, replaying only until the record that scores it exists."""
        pr = snap.result
        assert pr is not None and pr.positions is not None and pr.ordinals is not None
        where = np.flatnonzero(pr.positions == position)
        if not len(where):
            raise probes.Inconclusive(f"target {position} is not scored")
        ordinal = int(pr.ordinals[where[-1]])
        stop = self._replay(snap, stream, watch=ordinal)
        if stop is None:  # the pass ended first: read it whole
            scored = self.last_pass
            if not scored.complete:
                raise probes.Inconclusive(f"capture incomplete in a replay: {scored.reason}")
            values = scored.scored().by_position().get(position)
            if not values:
                raise probes.Inconclusive(f"target {position} was not scored in a replay")
            return values[-1]
        record = stop.record
        expected = pr.record_positions.get(ordinal)
        if expected is None or not np.array_equal(record.positions, expected):
            raise probes.Inconclusive("the replay made its per-token losses in another order")
        hits = np.flatnonzero((record.positions == position) & (record.values != 0.0))
        if not len(hits):
            raise probes.Inconclusive(f"target {position} was masked out in a replay")
        return float(record.values[hits[-1]])

    def replay_upto(self, snap: Snapshot, stream: np.ndarray, cut: int) -> probes.Scored:
        """The NLLs of every target <= cut, replaying only until the last record that scores one."""
        pr = snap.result
        assert pr is not None and pr.positions is not None and pr.ordinals is not None
        early = pr.ordinals[pr.positions <= cut]
        if not len(early):
            return self.replay(snap, stream)
        watch = int(early.max())
        stop = self._replay(snap, stream, watch=watch)
        if stop is None:
            scored = self.last_pass
            if not scored.complete:
                raise probes.Inconclusive(f"capture incomplete in a replay: {scored.reason}")
            return scored.scored()
        by_ordinal = {r.ordinal: r for r in stop.earlier}
        positions, values = [], []
        for ordinal in sorted({int(o) for o in pr.ordinals.tolist() if o <= watch}):
            rec = by_ordinal.get(ordinal)
            expected = pr.record_positions.get(ordinal)
            if rec is None or expected is None or not np.array_equal(rec.positions, expected):
                return self.replay(snap, stream)  # another order: read the whole pass instead
            keep = (rec.positions >= 0) & (rec.values != 0.0)
            positions.append(rec.positions[keep])
            values.append(rec.values[keep])
        return probes.Scored(np.concatenate(positions), np.concatenate(values))

    def _swap_tokens(self, obj: Any, stream: np.ndarray, top_level: bool = False) -> list[Any]:
        undo: list[Any] = []
        for holder, key, value in _walk(obj, max_depth=1 if top_level else 3):
            if isinstance(value, torch.Tensor) and not value.is_floating_point():
                pos = track.pos_of(value)
                if pos is None or pos.shape != value.shape:
                    continue
                mask = pos >= 0
                if not bool(mask.any()) or int(pos.max()) >= len(stream):
                    continue
                new = torch.from_numpy(stream[pos[mask].numpy()]).to(value.dtype)
                old = value.detach().clone()
                _assign_masked(value, mask, new)
                if top_level:
                    undo.append(functools.partial(_assign_masked, value, mask, old[mask]))
            elif isinstance(value, track.TArr) and value._pg_pos is not None and np.issubdtype(value.dtype, np.integer):
                pos = value._pg_pos
                mask = pos >= 0
                if not mask.any() or int(pos.max()) >= len(stream):
                    continue
                raw = value.view(np.ndarray)
                old = raw.copy()
                raw[mask] = stream[pos[mask]]
                if top_level:
                    undo.append(functools.partial(np.copyto, raw, old))
        return undo

    # -- running the pipeline ---------------------------------------------------------------

    def checkpoint(self, phase: str | None = None) -> None:
        """Write what is known so far (a run stopped at the wall-clock limit still reports)."""
        if phase is not None:
            self.result.phase = phase
        if self.channel is not None:
            self.channel.send(self._filled(), final=False)

    def _filled(self) -> protocol.DriverResult:
        out = self.result
        out.log_tail = self.log_tail[-20:]
        events = self.guard.events if self.guard is not None else []
        out.sandbox_events = [protocol.SandboxEvent(str(e.get("kind", "")), str(e.get("detail", "")),
                                                    bool(e.get("blocked"))) for e in events]
        out.seconds = round(time.monotonic() - self.started, 2)
        return out

    def load_module(self) -> Any:
        assert self.prepared is not None
        for name in list(self.siblings):  # sibling modules are loaded afresh for every run
            sys.modules.pop(name, None)
        self.siblings.clear()
        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = stubs.SubmissionImporter(self.prepared.triton_optional)
        self.builtins["exec"] = self._exec
        module = types.ModuleType("train_gpt")
        module.__file__ = str(self.workdir / "submission" / self.job.file)
        module.__dict__[loader.WRAP] = self.wrap
        module.__dict__["__builtins__"] = self.builtins
        sys.modules["train_gpt"] = module
        exec(self.prepared.code, module.__dict__)  # noqa: S102 - the sandboxed submission
        self.module = module
        return module

    def _exec(self, source: Any, globals: Any = None, locals: Any = None, *args: Any, **kwargs: Any) -> Any:
        """``exec`` for submission code: source text (a shim that runs ``train_gpt_decode.py``, a
        wrapper's payload) is adjusted like the script itself before it runs."""
        if globals is None:  # exec(source) runs in its caller's namespace, not in this function's
            frame = sys._getframe(1)
            globals = frame.f_globals
            locals = frame.f_locals if frame.f_locals is not frame.f_globals else None
            del frame
        if isinstance(source, (bytes, str)) and locals is None and not args and not kwargs:
            text = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
            try:
                prepared = loader.prepare(text, globals.get("__file__", "<exec>"),
                                          self.settings.val_tokens / self.settings.real_val_tokens)
            except SyntaxError:
                prepared = None
            if prepared is not None:
                globals.setdefault(loader.WRAP, self.wrap)
                self.result.adjustments.extend(prepared.adjustments)
                return builtins.exec(prepared.code, globals)
        return builtins.exec(source, globals, locals, *args, **kwargs)

    def install_sibling_finder(self) -> None:
        """Modules beside the script load like the script: adjusted, wrapped, with its imports."""
        session = self
        root = (self.workdir / "submission" / self.job.script).parent
        scale = self.settings.val_tokens / self.settings.real_val_tokens

        class Loader(importlib.abc.Loader):
            def __init__(self, path: Path) -> None:
                self.path = path

            def create_module(self, spec: Any) -> None:
                return None

            def exec_module(self, module: Any) -> None:
                text = self.path.read_text(encoding="utf-8", errors="replace")
                prepared = loader.prepare(text, str(self.path), scale)
                module.__dict__[loader.WRAP] = session.wrap
                module.__dict__["__builtins__"] = session.builtins
                session.siblings.add(module.__name__)
                exec(prepared.code, module.__dict__)  # noqa: S102 - the sandboxed submission

        class Finder(importlib.abc.MetaPathFinder):
            def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
                rel = name.replace(".", "/")
                for candidate, package in ((root / f"{rel}.py", False), (root / rel / "__init__.py", True)):
                    if candidate.is_file():
                        return importlib.util.spec_from_file_location(
                            name, candidate, loader=Loader(candidate),
                            submodule_search_locations=[str(candidate.parent)] if package else None)
                return None

        sys.meta_path.insert(0, Finder())

        # A helper loaded by path (importlib.util.spec_from_file_location + exec_module, as some
        # scripts load their evaluation module) gets the same loader: its evaluation functions
        # are wrapped and captured like those of an imported sibling.
        original_spec = importlib.util.spec_from_file_location
        folder = root.resolve()

        def spec_from_file_location(name: str, location: Any = None, *, loader: Any = None, **kwargs: Any) -> Any:
            if loader is None and location is not None:
                try:
                    path = Path(os.fsdecode(location)).resolve()
                    if path.suffix == ".py" and path.is_file() and path.is_relative_to(folder):
                        loader = Loader(path)
                except (OSError, TypeError, ValueError):
                    pass
            return original_spec(name, location, loader=loader, **kwargs)

        importlib.util.spec_from_file_location = spec_from_file_location  # type: ignore[assignment]

    def run_pipeline(self, label: str, stream: np.ndarray) -> Run:
        self.take_snapshots = label == "baseline"
        self.write_val(stream)
        self.passes = []
        self.calls = {}
        self.snapshots_before = dict(self.snapshots)
        info = protocol.RunRecord(label)
        started = time.monotonic()
        torch.manual_seed(self.settings.seed)
        np.random.seed(self.settings.seed)
        random.seed(self.settings.seed)
        os.chdir(self.workdir / "run")
        try:
            with _quiet(self):
                module = self.load_module()
                entry = module.__dict__.get(loader.ENTRY) or module.__dict__.get("main")
                if entry is None:
                    raise LookupError("no entry point: neither an `if __name__ == \"__main__\":` block nor main()")
                entry()
        except SystemExit as exc:
            if exc.code not in (None, 0):
                info.error = _error(exc, self.job)
        except BaseException as exc:  # noqa: BLE001 - report whatever the submission raised
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.error = _error(exc, self.job)
        self.take_snapshots = True
        info.seconds = round(time.monotonic() - started, 2)
        info.passes = [p.summary() for p in self.passes]
        self.write_val(self.stream)
        return Run(info, self.passes)


def _deepcopy_function(fn: types.FunctionType, memo: dict) -> types.FunctionType:
    """Functions are copied with their closures, so that a closure over the model (a
    ``forward_ttt_train`` built around it) refers to the copied model, not the one the run mutated."""
    if not fn.__closure__ or getattr(fn, "__pg_original__", None) is not None:
        return fn  # no state, or the harness's own wrapper of an evaluation
    cells = []
    for cell in fn.__closure__:
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (the variable was not assigned yet)
            cells.append(types.CellType())
            continue
        try:
            cells.append(types.CellType(copy.deepcopy(contents, memo)))
        except Exception:  # a module, a lock, a file: shared, as it was
            cells.append(types.CellType(contents))
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, tuple(cells))
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__dict__.update(fn.__dict__)
    return new


copy._deepcopy_dispatch[types.FunctionType] = _deepcopy_function  # type: ignore[attr-defined]


def _assign_masked(t: torch.Tensor, mask: torch.Tensor, values: torch.Tensor) -> None:
    """t[mask] = values, in place, for any integer dtype (uint16 included) and inference tensors."""
    raw = t.detach().numpy()
    raw = raw.view(np.ndarray) if isinstance(raw, np.ndarray) else raw
    raw[mask.numpy()] = values.numpy().astype(raw.dtype)


def _set(holder: Any, key: Any, value: Any) -> None:
    try:
        if isinstance(holder, dict):
            holder[key] = value
        elif isinstance(holder, list):
            holder[key] = value
        elif holder is not None and not isinstance(holder, tuple):
            setattr(holder, key, value)
    except Exception:
        pass


def _walk(obj: Any, max_depth: int = 3):
    """(holder, key, value) for values reachable through tuples, lists, dicts and plain objects."""
    seen: set[int] = set()
    stack = [(None, None, obj, 0)]
    while stack:
        holder, key, value, depth = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield holder, key, value
        if depth >= max_depth:
            continue
        if isinstance(value, (torch.Tensor, np.ndarray, str, bytes, int, float, types.ModuleType, type,
                              torch.nn.Module)) or callable(value) and not hasattr(value, "__dict__"):
            continue
        if isinstance(value, (tuple, list)):
            for i, v in enumerate(value[:256]):
                stack.append((value, i, v, depth + 1))
        elif isinstance(value, dict):
            for k, v in list(value.items())[:512]:
                if isinstance(k, str) and k.startswith("__"):
                    continue
                stack.append((value, k, v, depth + 1))
        elif hasattr(value, "__dict__") and not isinstance(value, types.FunctionType):
            try:
                items = list(vars(value).items())[:128]
            except TypeError:
                continue
            for k, v in items:
                stack.append((value, k, v, depth + 1))


def _error(exc: BaseException, job: protocol.Job) -> protocol.ErrorInfo:
    """The exception reduced to its type, the submission's line and a short message (no
    traceback: library paths and whatever else it holds stay in the sandbox)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if f.filename.endswith(job.file) or "/submission/" in f.filename]
    where = own[-1] if own else None
    kind = "kernel" if isinstance(exc, stubs.KernelUnavailable) else "error"
    if isinstance(exc, (FileNotFoundError, ModuleNotFoundError, ImportError)):
        kind = "import" if isinstance(exc, ImportError) else "file"
    if isinstance(exc, guard.Refused):  # a FileNotFoundError too, so that scripts handle it as one
        kind = "refused"
    if isinstance(exc, MemoryError):
        kind = "memory"
    return protocol.ErrorInfo(type=type(exc).__name__, message=str(exc)[:400], kind=kind,
                              line=where.lineno if where else None,
                              code=(where.line or "")[:200] if where else "", in_submission=bool(own))


@contextlib.contextmanager
def _quiet(session: Session):
    """Send the script's prints to a buffer (the tail is kept for error reports)."""
    buffer = io.StringIO()
    old_out, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = buffer
    try:
        yield
    finally:
        sys.stdout, sys.stderr = old_out, old_err
        text = buffer.getvalue()
        if text:
            session.log_tail = (session.log_tail + text.splitlines())[-40:]


# -- probing --------------------------------------------------------------------------------


def compare_runs(base: Run, other: Run, cut: int | None, tol: float) -> list[protocol.PipelineRow]:
    """Pass-by-pass comparison of two pipeline runs (positions <= cut, or all)."""
    out = []
    others = {(p.name, p.index): p for p in other.passes if p.complete}
    for p in base.passes:
        if not p.complete or p.depth:
            continue
        q = others.get((p.name, p.index))
        if q is None:
            out.append(protocol.PipelineRow(p.name, p.index, "inconclusive",
                                            "the pass was not captured in the other run"))
            continue
        cmp = probes.compare(p.scored(), q.scored(), upto=cut, tol=tol)
        row = protocol.PipelineRow(p.name, p.index, "pass", max_abs_delta=float(cmp.max_delta),
                                   at_position=None if cmp.at is None else int(cmp.at),
                                   positions_compared=int(cmp.compared), positions_changed=int(cmp.changed))
        if not cmp.ok:
            row.status, row.detail = "inconclusive", cmp.mismatch
        elif cmp.changed:
            row.status = "fail"
        out.append(row)
    return out


def probe_pipeline(session: Session, base: Run) -> list[protocol.PipelineRow]:
    """Rerun the whole pipeline on a stream changed after a cut (catches adaptation before scoring)."""
    s = session.settings
    cut = (s.val_tokens // 2) + 5
    perturbed = data.perturb_after(session.stream, cut, s.vocab, s.seed + 99)
    other = session.run_pipeline("perturbed", perturbed)
    session.result.runs.append(other.record)
    comparisons = compare_runs(base, other, cut, probes.ABS_TOL)
    moved = [c for c in comparisons if c.status == "fail"]
    noise_runs = None
    if moved:
        if time.monotonic() < session.deadline:
            again = session.run_pipeline("repeat", session.stream)
            session.result.runs.append(again.record)
            noise_runs = compare_runs(base, again, None, 0.0)
        noise = {(c.name, c.index): c.max_abs_delta if c.max_abs_delta is not None else math.inf
                 for c in (noise_runs or [])}
        for c in moved:
            floor = noise.get((c.name, c.index))
            if floor is None or not math.isfinite(floor):
                c.status, c.detail = "inconclusive", "the pipeline could not be repeated to measure its noise"
                continue
            c.tolerance = probes.tolerance(floor)
            c.noise = floor
            if c.max_abs_delta is not None and c.max_abs_delta <= c.tolerance:
                c.status = "pass"
    for c in comparisons:
        c.cut = cut
    return comparisons


def _row(result: probes.ProbeResult) -> protocol.ProbeRow:
    return protocol.ProbeRow(result.probe, result.status, result.detail, result.evidence, result.scorer,
                             round(result.seconds, 3))


def probe_snapshots(session: Session) -> None:
    """Probe each evaluation function from its last call. The evaluation called last (the one
    whose number is reported) goes first with most of the budget; the others share the rest."""
    s = session.settings
    calls = [p.name for p in session.passes if p.depth == 0]
    final = calls[-1] if calls else None
    order = sorted(session.snapshots.values(),
                   key=lambda sn: (sn.name != final, sn.result.seconds if sn.result else 0))
    probed: list[Snapshot] = []
    for i, snap in enumerate(order):
        pr = snap.result
        assert pr is not None
        twin = next((o for o in probed if o.result is not None and o.result.positions is not None
                     and np.array_equal(o.result.positions, pr.positions) and np.array_equal(o.result.nll, pr.nll)),
                    None)
        if twin is not None:  # a wrapper around an evaluation already probed (timed_eval(eval_val, ...))
            session.result.scorers.append(protocol.ScorerRecord(snap.name, final=snap.name == final,
                                                                same_as=twin.name, seconds=round(pr.seconds, 3)))
            continue
        probed.append(snap)
        entry = protocol.ScorerRecord(snap.name, final=snap.name == final, calls=session.calls.get(snap.name, 1),
                                      seconds=round(pr.seconds, 3), strategy=pr.strategy,
                                      coverage={k: int(v) for k, v in pr.coverage.items()})
        session.result.scorers.append(entry)
        if pr.seconds > s.replay_limit_s:
            entry.probes.append(_row(probes.ProbeResult("replay", "skipped",
                                                        f"one call takes {pr.seconds:.1f} s, too slow to replay",
                                                        scorer=snap.name)))
            continue
        left = session.deadline - time.monotonic()
        if left <= 0:
            entry.probes.append(_row(probes.ProbeResult("replay", "skipped", OUT_OF_TIME, scorer=snap.name)))
            continue
        # the reported evaluation: two substitution positions; the others: one
        plan = probes.ProbePlan(substitution_positions=s.substitution_positions if snap.name == final else 1)
        chunked = "CHUNK" in " ".join(session.applied_knobs)
        share = left / (len(order) - i) if snap.name != final or len(order) == 1 else left * 0.6
        session.checkpoint(f"probing {snap.name}()")
        runner = probes.ProbeRunner(
            snap.name, lambda stream, sn=snap: session.replay(sn, stream), session.stream, s.vocab,
            chunk_tokens=s.chunk if chunked else None, plan=plan, deadline=time.monotonic() + share,
            score_at=lambda stream, t, sn=snap: session.replay_at(sn, stream, t), seq_len=s.seq_len,
            score_upto=lambda stream, cut, sn=snap: session.replay_upto(sn, stream, cut),
            cost=_cost_of(pr),
        )
        base = pr.scored()
        runner.run(base)
        entry.noise = None if runner.noise is None else float(runner.noise)
        entry.probes = [_row(r) for r in runner.results]
        session.checkpoint()


def _cost_of(pr: PassResult) -> Any:
    """Share of a full replay needed before a target's score exists (from the record order)."""
    assert pr.positions is not None and pr.ordinals is not None
    last = {int(p): int(o) for p, o in zip(pr.positions.tolist(), pr.ordinals.tolist())}
    top = max(last.values(), default=0) + 1

    def cost(position: int) -> float:
        return (last.get(position, top) + 1) / top

    return cost


class ResultPipe:
    """The driver's end of the result channel: numbered messages with the run's nonce."""

    def __init__(self, fd: int, nonce: str) -> None:
        self._fd, self._nonce, self._seq = fd, nonce, 0

    def send(self, result: protocol.DriverResult, final: bool) -> None:
        data = protocol.message(self._nonce, self._seq, final, result)
        self._seq += 1
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError:
                return  # the parent is gone
            view = view[written:]


def read_job() -> protocol.Job:
    """The job from standard input, which is then closed (the submission gets an empty one)."""
    text = sys.stdin.buffer.read()
    job = protocol.Job.from_json(text)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return job


def main() -> int:
    """The sandbox's entry point: read the job, run and probe the script, report on the pipe."""
    job = read_job()
    workdir = Path.cwd()
    session = Session(job, workdir, ResultPipe(job.result_fd, job.nonce))
    try:
        _drive(session, job, workdir)
    except Exception as exc:  # noqa: BLE001 - the driver reports, never crashes silently
        session.result.error = protocol.ErrorInfo(type(exc).__name__, str(exc)[:400], kind="harness")
    assert session.channel is not None
    session.channel.send(session._filled(), final=True)
    return 0


def _drive(session: Session, job: protocol.Job, workdir: Path) -> None:
    out = session.result
    out.settings = dict(session.settings.__dict__)
    submission = workdir / "submission"
    shutil.copytree(job.input, submission, symlinks=False, dirs_exist_ok=True)
    (workdir / "run").mkdir(exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    tempfile.tempdir = str(workdir / "tmp")
    paths = session.prepare_data()
    script = submission / job.script
    text = script.read_text(encoding="utf-8", errors="replace")
    session.source_text = text
    scale = session.settings.val_tokens / session.settings.real_val_tokens
    try:
        session.prepared = loader.prepare(text, str(submission / job.file), scale)
    except SyntaxError as exc:
        out.error = protocol.ErrorInfo("SyntaxError", str(exc)[:400], kind="import")
        return
    out.adjustments = list(session.prepared.adjustments)
    out.wrapped = list(session.prepared.wrapped)
    knobs = dict(session.prepared.knobs)
    for other in sorted(submission.rglob("*.py")):  # a shim runs a sibling's code
        if other != script:
            try:
                for name, knob in loader.scan_knobs(ast.parse(other.read_text(encoding="utf-8",
                                                                               errors="replace"))).items():
                    knobs.setdefault(name, knob)
            except (SyntaxError, ValueError, RecursionError):
                pass
    session.prepared.knobs = knobs
    run_env = {k: str(v) for k, v in job.run_env.items() if k in session.prepared.knobs}
    out.run_env = run_env
    env = dict(run_env)
    env.update(knob_values(session.prepared.knobs, session.settings, paths, run_env, text))
    session.applied_knobs = env
    out.knobs = env
    os.environ.update(env)
    sys.path.insert(0, str(script.parent))
    stubs.install(session.settings.threads, session.settings.fp32)
    wall = guard.Guard(str(workdir), extra_read_roots=[str(Path(__file__).resolve().parent.parent)])
    # the kernel's wall goes up before any submission code runs; only behind it may the
    # submission's own native code run
    confinement = confine.confine(str(workdir), wall.read_roots)
    wall.native_code = confinement.native_code_allowed
    out.confinement = confinement.to_dict()
    session.guard = wall
    guard.redirect_host_temp(str(workdir), wall)
    wall.install()
    torch.from_numpy = track.from_numpy(torch.from_numpy)
    _patch_numpy_loaders(session)
    session.install_sibling_finder()
    _modes_follow_threads()
    with track.TrackMode(cpu=True):
        session.checkpoint("running the script")
        base = session.run_pipeline("baseline", session.stream)
        out.runs.append(base.record)
        session.checkpoint()
        complete = [p for p in base.passes if p.complete and p.depth == 0]
        if complete and time.monotonic() < session.deadline:
            session.checkpoint("rerunning the script on a changed stream")
            out.pipeline = probe_pipeline(session, base)
            out.pipeline_ran = True
            session.checkpoint()
        probe_snapshots(session)


def _modes_follow_threads() -> None:
    """Torch function modes are per thread: threads the script starts (data prefetchers) get ours too."""
    import threading

    original = threading.Thread.run
    if getattr(original, "__pg_wrapped__", False):
        return

    def run(self: threading.Thread) -> None:
        with track.TrackMode(cpu=True):
            original(self)

    run.__pg_wrapped__ = True  # type: ignore[attr-defined]
    threading.Thread.run = run  # type: ignore[method-assign]


def _patch_numpy_loaders(session: Session) -> None:
    """Tag validation tokens at the source: reads of the validation shard come back tagged."""
    original_fromfile = np.fromfile
    original_memmap = np.memmap
    shards = {str(p.resolve()) for p in session.val_shards}
    header = data.shard_header_bytes()

    def _is_val(file: Any) -> bool:
        name = getattr(file, "name", file)
        try:
            return str(Path(os.fspath(name)).resolve()) in shards
        except TypeError:
            return False

    def fromfile(file, dtype=float, count=-1, sep="", offset=0, **kwargs):  # noqa: A002
        arr = original_fromfile(file, dtype=dtype, count=count, sep=sep, offset=offset, **kwargs)
        if _is_val(file) and np.dtype(dtype).itemsize == 2 and arr.ndim == 1:
            start = (offset - header) // 2 if offset >= header else 0
            if hasattr(file, "tell") and not isinstance(file, (str, bytes, os.PathLike)):
                start = max(0, (file.tell() - header) // 2 - arr.size)
            return track.to_tarr(arr, np.arange(start, start + arr.size, dtype=np.int64))
        return arr

    class memmap(original_memmap):  # noqa: N801
        def __new__(cls, filename, dtype=np.uint8, mode="r+", offset=0, shape=None, order="C"):
            arr = original_memmap.__new__(original_memmap, filename, dtype=dtype, mode=mode, offset=offset, shape=shape,
                                          order=order)
            if _is_val(filename) and np.dtype(dtype).itemsize == 2 and arr.ndim == 1:
                start = (offset - header) // 2 if offset >= header else -(header // 2)
                pos = np.arange(start, start + arr.size, dtype=np.int64)
                pos[pos < 0] = -1
                return track.to_tarr(np.asarray(arr), pos)
            return arr

    np.fromfile = fromfile
    np.memmap = memmap


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

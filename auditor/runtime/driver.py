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
   probes of :mod:`auditor.runtime.probes` on it; for the reported evaluation, compares the
   rerun of step 3 with a replay on the same stream, and reruns the script with a substituted
   target where what it computed before the call came from the stream
   (:mod:`auditor.runtime.precomputed`);
5. reports a :class:`auditor.runtime.protocol.DriverResult` on the pipe the parent gave it
   (checkpoints on the way, so a run stopped at the wall-clock limit still reports).
"""

from __future__ import annotations

import ast
import base64
import builtins
import functools
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditor.runtime import absent, bytecount, confine, data, guard, layout, loader, protocol, rescore, stage, stubs, track
from auditor.runtime.capture import PassResult, _floats, _has_number, scored_terms, select_scored, set_in, walk
from auditor.runtime.knobs import Settings, is_table_size, knob_values, required_seq_len, restored_sizes, role_of
from auditor.runtime.patches import install_sibling_finder, modes_follow_threads, patch_numpy_loaders
from auditor.runtime.precomputed import ChangedRun
from auditor.runtime.probing import probe_pipeline, probe_rescorers, probe_snapshots, replays_per_scorer
from auditor.runtime.replay import Replays, Snapshot, quiet
from auditor.runtime.track import TRACKER



# -- the session -----------------------------------------------------------------------------


@dataclass
class Run:
    """One run of the pipeline: its record for the report and the passes it captured."""

    record: protocol.RunRecord
    passes: list[PassResult]


class Session(Replays):
    """One sandboxed run: the files, the submission's module, its captured passes and their snapshots."""

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
        #: calls whose returned figure no tracked loss explains, with their aligned inputs
        self.rescorers: list[rescore.Rescorer] = []
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
        self.byte_tables: bytecount.ByteTables | None = None  # the official LUT of the harness's tokenizer
        self.tokenizer_watch = bytecount.TokenizerWatch()
        self.tokenizer_path: Path | None = None
        self.train_stream: np.ndarray | None = None
        self.last_pass: PassResult | None = None
        self.snapshots_before: dict[str, Snapshot] = {}
        self.changed_run: ChangedRun | None = None  # the rerun of the script on a stream changed after a cut
        self.in_baseline = False
        self.unguarded: frozenset[str] = frozenset()  # packages imported outside any try: block
        self.importer: stubs.SubmissionImporter | None = None
        #: The copy of the audited folder, relative to the working folder (the checkout's root).
        self.folder = layout.records_folder(job.folder)

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
        train = self.train_stream = data.markov_stream(s.train_tokens, s.vocab, s.seed + 1)
        dirs = [root / "datasets" / f"fineweb10B_sp{v}" for v in (s.vocab, 1024, 4096, 8192)] + [root / "datasets"]
        self.val_shards = []
        for d in dirs:
            data.write_shard(d / "fineweb_train_000000.bin", train)
            self.val_shards.append(d / "fineweb_val_000000.bin")
        self.byte_table = data.token_bytes(model, s.vocab)
        self.byte_tables = bytecount.ByteTables.from_model(model, s.vocab)
        self.tokenizer_watch.expect(model.read_bytes())
        self.write_val(self.stream)
        self.tokenizer_path = model
        return {"data_path": str(dirs[0]), "tokenizer": str(model), "data_dir": str(root),
                "datasets_dir": str(root / "datasets")}

    def provide_default_paths(self, texts: list[str]) -> list[str]:
        """Fill the paths the scripts' own literals name (``./data/...``) with the harness's
        shards and tokenizer (:mod:`auditor.runtime.layout`); the notes say what was written."""
        assert self.tokenizer_path is not None and self.train_stream is not None
        train = self.train_stream
        made = layout.materialize(layout.default_paths(texts), self.workdir, self.tokenizer_path,
                                  lambda path: data.write_shard(path, train), self.folder)
        if made.val_shards:
            self.val_shards.extend(made.val_shards)
            self.write_val(self.current)
        return [f"{note} (a path the script names)" for note in made.notes]

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
        # copied before the call, which may change them in place
        aligned = rescore.aligned_inputs(args, kwargs, self.current) if self.in_baseline else None
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
        if aligned is not None and not pr.complete and pr.returned and "no per-token loss" in pr.reason:
            self.rescorers.append(rescore.Rescorer(fn, name, args, kwargs, *aligned, returned=pr.returned))
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
            # exact zeros are masked-out terms, unless the returned mean counted them
            keep = ~unattributed & scored_terms(strategy, values)
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
        for holder, key, value in walk(obj):
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
                    set_in(holder, key, tagged)

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
        self.importer = stubs.SubmissionImporter(self.prepared.triton_optional, self.unguarded)
        self.builtins["__import__"] = self.importer
        self.builtins["exec"] = self._exec
        # the script is ``__main__``, as in ``python train_gpt.py`` (its main block is the entry
        # the driver calls; the loader took it out of the module's body)
        module = types.ModuleType("__main__")
        module.__file__ = str(self.workdir / self.folder / self.job.file)
        module.__dict__[loader.WRAP] = self.wrap
        module.__dict__["__builtins__"] = self.builtins
        sys.modules["__main__"] = module
        exec(self.prepared.code, module.__dict__)  # the sandboxed submission
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
                                          self.settings.val_tokens / self.settings.real_val_tokens,
                                          frozenset(self.job.scorers), self.job.inline)
            except SyntaxError:
                prepared = None
            if prepared is not None:
                globals.setdefault(loader.WRAP, self.wrap)
                self.result.adjustments.extend(prepared.adjustments)
                return builtins.exec(prepared.code, globals)
        return builtins.exec(source, globals, locals, *args, **kwargs)

    def saw_output(self, text: str) -> None:
        """Keep the baseline run's lines that carry a claimed stage's label (the parent checks
        that the scored stage ran and printed a value a captured evaluation returned)."""
        if self.in_baseline and len(self.result.stage_lines) < stage.MAX_STAGE_LINES:
            lines = self.result.stage_lines + stage.stage_lines(text, self.job.stage_labels)
            self.result.stage_lines = lines[: stage.MAX_STAGE_LINES]
        if self.in_baseline and len(self.result.metric_lines) < bytecount.MAX_METRIC_LINES:
            lines = self.result.metric_lines + bytecount.metric_lines(text)
            self.result.metric_lines = lines[: bytecount.MAX_METRIC_LINES]

    def account_bytes(self, base: Run) -> None:
        """The canonical bytes of what each evaluation call of the baseline run scored (the
        parent compares them with the bits per byte the script printed)."""
        watch = self.tokenizer_watch
        self.result.tokenizer_loaded = "harness" if watch.loaded_harness else "other" if watch.loaded_other else ""
        if self.byte_tables is None:
            return
        try:
            self.result.byte_accounts = bytecount.accounts(base.passes, self.stream, self.byte_tables)
        except Exception as exc:  # the byte check is then inconclusive, the other probes go on
            self.result.notes.append(f"byte accounting failed ({type(exc).__name__}: {exc})")

    def ask_for_time(self, base: Run) -> None:
        """Grow the probing budget to the measured cost of the work left, within ``max_budget_s``:
        the whole-pipeline rerun (as long as the baseline run, twice when it needs its noise) and
        each evaluation's replays (its call's seconds times the replays of its probes). The
        parent grows its wall-clock limit to match (``DriverResult.wanted_s``)."""
        s = self.settings
        if s.max_budget_s <= s.budget_s:
            return
        need = time.monotonic() - self.started + 2 * base.record.seconds
        for snap in self.snapshots.values():
            pr = snap.result
            if pr is not None and pr.seconds <= s.replay_limit_s:
                need += pr.seconds * replays_per_scorer(s.substitution_positions, s.vocab)
        total = min(max(s.budget_s, need), s.max_budget_s)
        self.deadline = self.started + total
        self.result.wanted_s = round(total, 1)

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
        os.chdir(self.workdir)  # the repository's root, where README commands run
        self.in_baseline = label == "baseline"
        try:
            with quiet(self):
                module = self.load_module()
                entry = module.__dict__.get(loader.ENTRY) or module.__dict__.get("main")
                if entry is None:
                    raise LookupError("no entry point: neither an `if __name__ == \"__main__\":` block nor main()")
                entry()
        except SystemExit as exc:
            if exc.code not in (None, 0):
                info.error = _error(exc, self.job)
        except BaseException as exc:  # report whatever the submission raised
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.error = _error(exc, self.job)
        self.take_snapshots = True
        self.in_baseline = False
        info.seconds = round(time.monotonic() - started, 2)
        info.passes = [p.summary() for p in self.passes]
        self.write_val(self.stream)
        return Run(info, self.passes)


def _retry_with_real_sizes(session: Session, base: Run) -> Run:
    """Run the script once more when the shrunk settings stopped it: the knob its error names,
    or the model's widths after a shape error, get the scored run's value back
    (:func:`auditor.runtime.knobs.restored_sizes`); the data stays small."""
    error = base.record.error
    if error is None or error.kind != "error" or session.prepared is None or time.monotonic() > session.deadline:
        return base
    real = {**{k: str(v) for k, v in session.job.run_env.items()}, **session.job.scored_env}
    if session.job.scored_world_size:  # the logs say how many processes the scored run had
        real.setdefault("WORLD_SIZE", str(session.job.scored_world_size))
    restore = restored_sizes(error.type, error.message, session.applied_knobs, session.prepared.knobs, real)
    if not restore:
        return base
    for name, value in restore.items():
        if is_table_size(name):
            session.result.tables_above_scale.append(name)
        if value is None:
            os.environ.pop(name, None)
            session.applied_knobs.pop(name, None)
        else:
            os.environ[name] = session.applied_knobs[name] = value
    out = session.result
    out.knobs = dict(session.applied_knobs)
    where = f"line {error.line}: " if error.line else ""
    given = ", ".join(f"{k}={v}" if v is not None else f"{k} (the script's default)" for k, v in sorted(restore.items()))
    out.adjustments.append(f"not shrunk: {given}; shrunk, the run stopped ({where}{error.type}: {error.message[:160]})")
    session.snapshots = {}
    session.rescorers = []
    out.stage_lines = []
    out.metric_lines = []
    return session.run_pipeline("baseline", session.stream)


def unguarded_imports(texts: list[str]) -> frozenset[str]:
    """Packages the scripts import outside any ``try:`` block and never inside one."""
    inside: set[str] = set()
    outside: set[str] = set()
    for text in texts:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        found = loader.import_places(tree)
        inside |= found[0]
        outside |= found[1]
    return frozenset(outside - inside)


def _error(exc: BaseException, job: protocol.Job) -> protocol.ErrorInfo:
    """The exception reduced to its type, the submission's line and a short message (no
    traceback: library paths and whatever else it holds stay in the sandbox)."""
    frames = traceback.extract_tb(exc.__traceback__)
    folder = f"/{layout.records_folder(job.folder)}/"
    own = [f for f in frames if f.filename.endswith(job.file) or folder in f.filename]
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
        _drive(session, job, workdir, Path(job.home) if job.home else workdir)
    except Exception as exc:  # the driver reports, never crashes silently
        session.result.error = protocol.ErrorInfo(type(exc).__name__, str(exc)[:400], kind="harness")
    assert session.channel is not None
    session.channel.send(session._filled(), final=True)
    return 0


def write_files(folder: Path, job: protocol.Job) -> None:
    """The copy of the submission: the job's files (or its input folder) in its records folder.
    The script's place held the sandbox's first code (:mod:`auditor.runtime.boot`) until now."""
    (folder / job.file).unlink(missing_ok=True)
    if job.input:
        shutil.copytree(job.input, folder, symlinks=False, dirs_exist_ok=True)
    root = folder.resolve()
    for rel, content in job.files.items():
        target = (folder / rel).resolve()
        if target.is_relative_to(root):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(base64.b64decode(content))


def _drive(session: Session, job: protocol.Job, workdir: Path, home: Path) -> None:
    out = session.result
    out.settings = dict(session.settings.__dict__)
    submission = workdir / session.folder
    write_files(submission, job)
    (home / "tmp").mkdir(exist_ok=True)
    tempfile.tempdir = str(home / "tmp")
    # programs the submission may run (a C compiler, behind the kernel's wall) write their
    # temporary files in the working folder too: Landlock allows writes nowhere else
    os.environ["TMPDIR"] = tempfile.tempdir
    paths = session.prepare_data()
    script = submission / job.script
    text = script.read_text(encoding="utf-8", errors="replace")
    session.source_text = text
    scale = session.settings.val_tokens / session.settings.real_val_tokens
    try:
        session.prepared = loader.prepare(text, str(submission / job.file), scale, frozenset(job.scorers), job.inline)
    except SyntaxError as exc:
        out.error = protocol.ErrorInfo("SyntaxError", str(exc)[:400], kind="import")
        return
    out.adjustments = list(session.prepared.adjustments)
    out.wrapped = list(session.prepared.wrapped)
    knobs = dict(session.prepared.knobs)
    texts = [text]
    for other in sorted(submission.rglob("*.py")):  # a shim runs a sibling's code
        if other != script:
            other_text = other.read_text(encoding="utf-8", errors="replace")
            texts.append(other_text)
            try:
                for name, knob in loader.scan_knobs(ast.parse(other_text)).items():
                    knobs.setdefault(name, knob)
            except (SyntaxError, ValueError, RecursionError):
                pass
    session.prepared.knobs = knobs
    out.adjustments.extend(session.provide_default_paths(texts))
    session.unguarded = unguarded_imports(texts)
    session.settings.seq_len = required_seq_len(texts, session.settings.seq_len)
    run_env = {k: str(v) for k, v in job.run_env.items() if k in session.prepared.knobs}
    out.run_env = run_env
    env = dict(run_env)
    env.update(knob_values(session.prepared.knobs, session.settings, paths, run_env, text,
                           scored=job.scored_env, world_size=job.scored_world_size))
    for name, knob in session.prepared.knobs.items():
        role = role_of(name, knob)
        if role != name and name in env:
            what = "scaled as a hashed table's size" if is_table_size(role) else f"set as {role}"
            out.adjustments.append(f"line {knob.line}: {name}={env[name]} {what}: the script binds its value to "
                                   f"{knob.bound}")
    session.applied_knobs = env
    out.knobs = env
    os.environ.update(env)
    if str(script.parent) not in sys.path[:1]:  # the interpreter put it there when it ran the script
        sys.path.insert(0, str(script.parent))
    stubs.install(session.settings.threads, session.settings.fp32)
    session.tokenizer_watch.install()
    # writes go to the home folder, which holds the checkout (the harness's code is not on disk)
    wall = guard.Guard(str(home))
    # the kernel's wall goes up before any submission code runs; only behind it may the
    # submission's own native code run
    confinement = confine.confine(str(home), wall.read_roots)
    wall.native_code = confinement.native_code_allowed
    out.confinement = confinement.to_dict()
    session.guard = wall
    guard.redirect_host_temp(str(home), wall)
    wall.install()
    torch.from_numpy = track.from_numpy(torch.from_numpy)
    patch_numpy_loaders(session)
    install_sibling_finder(session)
    modes_follow_threads()
    with track.TrackMode(cpu=True):
        session.checkpoint("running the script")
        base = session.run_pipeline("baseline", session.stream)
        base = _retry_with_real_sizes(session, base)
        out.runs.append(base.record)
        for name in sorted(session.importer.absent if session.importer is not None else ()):
            role = "a logger: its calls do nothing" if absent.is_logger(name) else "any use stops the run"
            out.adjustments.append(f"{name}: missing in the sandbox, imported as a stand-in ({role})")
        session.account_bytes(base)
        session.ask_for_time(base)
        session.checkpoint()
        probe_rescorers(session)
        complete = [p for p in base.passes if p.complete and p.depth == 0]
        if complete and time.monotonic() < session.deadline:
            session.checkpoint("rerunning the script on a changed stream")
            out.pipeline = probe_pipeline(session, base)
            out.pipeline_ran = True
            session.checkpoint()
        probe_snapshots(session)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

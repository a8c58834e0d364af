"""Training logs → runs: scores, sizes, times, hardware, data fingerprints, with line numbers.

A log is streamed line by line and never read whole. Every figure keeps the line it came from
(file line number, 1-based, and the cleaned text), because every finding must point at its
evidence.

What the parser copes with (all seen in real logs):

- two physical kinds of log: the console capture (torchrun warnings, then rank-0 lines) and
  the logfile a script writes, which starts with the script's entire source, a ``=====``
  separator, versions and ``nvidia-smi`` output. Source lines contain the same literal strings
  as real lines (f-strings), so a segment ending at a separator that looks like Python is
  dropped, lines with ``f"`` or ``log0(`` are ignored, and every pattern is anchored;
- ANSI colour codes, CRLF line ends, carriage-return progress bars, epoch / ISO-time /
  ``[date] INFO:`` / ``# `` prefixes and dynamo tracebacks;
- torchrun's worker prefixes (``[default0]:``, ``[rank3]:``, any ``[<role><rank>]:``): a prefixed
  line parses like a plain one. One stream is read: plain and rank-0 lines, or, in a log that
  has neither, the first other rank that prints something the parser reads (every rank of an
  unguarded script prints the same lines; reading them all would count each figure eight
  times, and a stray rank line in a plain log is not the run's evidence);
- several runs in one file (ablation logs, concatenated logfiles): a new run starts at a
  ``Hyperparameters:`` header, a ``logs/<id>.txt`` line, a ``Running Python`` line or after a
  dumped script, once the current run has shown progress;
- truncated files (the last line is kept only if it parses), undecodable bytes (replaced).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from auditor.records import patterns as P

#: Stage lines kept per run (a log of an ablation sweep can print thousands).
MAX_SCORES = 400
MAX_STEP_VALS = 200
#: Lines longer than this are not parsed (a serialized blob or a minified dump).
MAX_LINE = 4000
#: Events buffered per segment before they are applied anyway (bounded memory on huge logs).
MAX_PENDING = 20_000
#: Python source lines a segment needs before it counts as a dumped script.
CODE_LINES_MIN = 3
CODE_START = re.compile(r"^(?:\"\"\"|'''|r\"\"\"|#!/|from __future__ import|import \w|from [\w.]+ import )")

#: Hyperparameter keys worth keeping from a ``Hyperparameters:`` block.
HPARAM_KEYS = frozenset(
    {
        "seed", "world_size", "vocab_size", "max_wallclock_seconds", "gptq_reserve_seconds", "tokenizer_path",
        "datasets_dir", "data_path", "data_dir", "train_files", "val_files", "val_bytes_files", "caseops_enabled",
        "eval_seq_len", "train_seq_len", "iterations", "ttt_enabled", "distributed", "grad_accum_steps",
        "eval_stride", "ppm_subset_tokens", "val_docs", "num_val_docs", "force_stop_step",
    }
)


#: The device name a log of an MLX run (Apple silicon) is given.
MLX_DEVICE = "Apple silicon (MLX)"

@dataclass(frozen=True)
class At:
    """A value read from a log line."""

    value: Any
    line: int
    text: str


@dataclass
class Score:
    """A metric line: a stage of the final evaluation, a TTT summary or a mixture score."""

    label: str  # without "_exact"
    raw_label: str
    bpb: float
    loss: float | None
    bpb_text: str  # as printed (for rounding-aware comparisons)
    loss_text: str | None
    eval_s: float | None
    line: int
    text: str
    kind: str  # "stage", "done", "noloss"
    final: bool  # not a diagnostic / pre-quantization / sweep label
    exact: bool
    scored_bytes: int | None = None  # "bytes=N" on the line
    scored_tokens: int | None = None  # "tokens=N" / "subset=N" on the line

    @property
    def decimals(self) -> int:
        return len(self.bpb_text.split(".", 1)[1]) if "." in self.bpb_text else 0

    @property
    def loss_decimals(self) -> int:
        text = self.loss_text or ""
        return len(text.split(".", 1)[1]) if "." in text else 0


#: The label of a score read from a training-time validation line (``step:2979/20000
#: val_loss:2.0089 val_bpb:1.1898``): a claim may rest on one when no final stage shows it.
STEP_LABEL = "step"


def step_score(step_val: At) -> Score | None:
    """A training-time validation line as a score: not a final stage (it is the model before
    any averaging, quantization or evaluation-time method), labeled :data:`STEP_LABEL`."""
    m = P.STEP_VAL.match(step_val.text)  # the pattern the parser read the line with
    if m is None:
        return None
    return Score(label=STEP_LABEL, raw_label=STEP_LABEL, bpb=float(m.group("bpb")), loss=float(m.group("loss")),
                 bpb_text=m.group("bpb"), loss_text=m.group("loss"), eval_s=None, line=step_val.line,
                 text=step_val.text, kind="step", final=False, exact=False)


@dataclass(frozen=True)
class SizeLine:
    fmt: str | None
    bytes: int
    line: int
    text: str


@dataclass(frozen=True)
class GptqLine:
    line: int
    text: str
    seconds: float | None
    source: str  # "train", "self-generated", "random", "val", "unknown"
    after_stop: bool


@dataclass
class Run:
    """One training (and/or evaluation) run inside a log file."""

    index: int
    start_line: int
    end_line: int = 0
    scores: list[Score] = field(default_factory=list)
    step_vals: list[At] = field(default_factory=list)  # (step, loss, bpb)
    models: list[SizeLine] = field(default_factory=list)  # "Serialized model <fmt>: N" and raw
    totals: list[tuple[SizeLine, SizeLine | None]] = field(default_factory=list)  # total, model line before it
    code: dict[str, At] = field(default_factory=dict)  # "plain" | "compressed" | "uncompressed"
    budget: At | None = None
    stop: At | None = None  # value: (ms, step, iters, why)
    last_train: At | None = None  # value: (ms, step, iters, resolution_ms)
    steps_seen: int = 0
    max_wallclock: At | None = None
    reserve: At | None = None  # value: effective ms
    gptq: list[GptqLine] = field(default_factory=list)
    world_size: At | None = None
    gpu_count: At | None = None
    gpus: list[str] = field(default_factory=list)
    gpu_line: int | None = None
    seed: At | None = None
    val_tokens: At | None = None
    train_shards: At | None = None
    tokenizer: At | None = None  # value: path or kind
    vocab: At | None = None
    hparams: dict[str, At] = field(default_factory=dict)
    sidecar: At | None = None
    double_datasets: At | None = None
    val_calibration: At | None = None
    total_eval: At | None = None
    outside_timer: list[At] = field(default_factory=list)  # (what, seconds)
    byte_counts: list[At] = field(default_factory=list)  # explicit (tokens, bytes) of a scoring pass
    truncated_scores: int = 0

    @property
    def has_progress(self) -> bool:
        return bool(self.scores or self.stop or self.totals or self.steps_seen or self.step_vals)

    @property
    def has_evidence(self) -> bool:
        """Something a seed row can be built from: a score, a size or a training time."""
        return bool(self.scores or self.totals or self.stop or self.models or self.last_train)

    # -- derived figures ---------------------------------------------------------------------

    def train_time(self) -> At | None:
        """Training time in seconds: the wallclock stop line, else the last training step."""
        if self.stop is not None:
            ms = self.stop.value[0]
            return At(ms / 1000.0, self.stop.line, self.stop.text)
        if self.last_train is not None:
            ms = self.last_train.value[0]
            return At(ms / 1000.0, self.last_train.line, self.last_train.text)
        return None

    def wallclock_cap_s(self) -> float | None:
        if self.max_wallclock is not None:
            return float(self.max_wallclock.value)
        return None

    def artifact_total(self) -> SizeLine | None:
        """The compressed artifact total: the last total that pairs with a compressed model.

        A total printed right after the raw ``Serialized model: N bytes`` line is the raw
        pre-quantization size (informational); a format-less total after a compressed model line
        is compressed (one non-record log prints it so).
        """
        chosen: SizeLine | None = None
        for total, model in self.totals:
            compressed = total.fmt is not None or (model is not None and model.fmt is not None)
            if compressed and total.bytes < 60_000_000:
                chosen = total
        if chosen is None and self.budget is not None:
            value = self.budget.value[0]
            return SizeLine("budget", value, self.budget.line, self.budget.text)
        return chosen

    def artifact_model(self) -> SizeLine | None:
        """The compressed model bytes that go with the artifact total."""
        total = self.artifact_total()
        if total is not None:
            for t, model in self.totals:
                if t == total and model is not None and model.fmt is not None:
                    return model
        compressed = [m for m in self.models if m.fmt is not None and m.bytes < 60_000_000]
        return compressed[-1] if compressed else None

    def code_logged(self) -> At | None:
        """The code size the script counted: the compressed figure when it printed one."""
        return self.code.get("compressed") or self.code.get("plain") or self.code.get("uncompressed")

    def world(self) -> At | None:
        if self.world_size is not None:
            return self.world_size
        hp = self.hparams.get("world_size")
        if hp is not None and str(hp.value).isdigit():
            return At(int(hp.value), hp.line, hp.text)
        if self.gpu_count is not None:
            return self.gpu_count
        dist = self.hparams.get("distributed")
        if dist is not None and str(dist.value).lower() == "false":
            return At(1, dist.line, dist.text)
        if self.gpus and self.gpu_line is not None:
            return At(len(self.gpus), self.gpu_line, "nvidia-smi lists the GPUs of the machine")
        return None

    def hardware(self) -> str | None:
        """The GPU model nvidia-smi printed (the most common one)."""
        return self.gpu_model()

    def gpu_model(self) -> str | None:
        if not self.gpus:
            return None
        # the most common model; on a tie the first listed (a set's order would change between runs)
        return max(dict.fromkeys(self.gpus), key=self.gpus.count)


@dataclass
class LogParse:
    """Everything read from one log file."""

    rel: str
    runs: list[Run] = field(default_factory=list)
    lines: int = 0
    digest: str = ""
    code_lines_dropped: int = 0
    error: str = ""

    @property
    def evidence_runs(self) -> list[Run]:
        return [r for r in self.runs if r.has_evidence]

    @property
    def main_run(self) -> Run | None:
        """The run a seed's figures come from: the last one with a score, else with evidence."""
        runs = self.evidence_runs
        scored = [r for r in runs if any(s.final for s in r.scores)]
        if scored:
            return scored[-1]
        return runs[-1] if runs else None


# -- the parser ----------------------------------------------------------------------------------

_TRIGGERS = (
    "val_bpb", "bpb", "stopping_early", "Serialized model", "Code size", "Total submission", "budget:",
    "train_time", "max_wallclock", "gptq", "GPTQ", "world_size", "GPU_COUNT", "NPROC", "nproc", "gpus",
    "NVIDIA", "Tesla", "seed", "SEED", "val_tokens", "tokens:", "train_shards", "tokenizer", "eval_time",
    "total_eval_time", "done", "serialize_wallclock", "sidecar", "caseops", "datasets/datasets",
    "INT", "Hyperparameters", "logs/", "Running Python", "vocab", "bytes=", "subset",
)


def _has_trigger(line: str) -> bool:
    for t in _TRIGGERS:
        if t in line:
            return True
    return False


class _Builder:
    """Turns cleaned lines into runs; events of a dumped script are discarded per segment."""

    def __init__(self, rel: str) -> None:
        self.parse = LogParse(rel)
        self.run = Run(0, 1)
        self.in_hparams = False
        # the current segment (since the last separator): its events and Python-ness
        self.pending: list[tuple[int, Any]] = []
        self.python_lines = 0
        self.code_start: int | None = None
        self.first_python: int | None = None
        self.last_python: int | None = None
        # the stream read (see the module docstring): plain/rank-0 lines seen, or the other rank
        self.primary_seen = False
        self.other_rank: int | None = None

    # segments ------------------------------------------------------------------------------

    def end_segment(self, at_line: int) -> None:
        is_code = self.python_lines >= CODE_LINES_MIN
        cut = None
        if is_code:
            cut = self.code_start if self.code_start is not None else self.first_python
        last = self.last_python if self.last_python is not None else 0
        for line_no, event in self.pending:
            # a dumped script spans its first to its last Python line; a log without a separator
            # continues right after it
            if cut is not None and cut <= line_no <= last:
                self.parse.code_lines_dropped += 1
                continue
            event()
        self.pending = []
        if is_code:
            self.maybe_new_run(at_line + 1)  # after a dumped script comes a new run
        self.python_lines = 0
        self.code_start = None
        self.first_python = None
        self.last_python = None

    def maybe_new_run(self, line_no: int) -> None:
        if self.run.has_progress:
            self.run.end_line = line_no - 1
            self.parse.runs.append(self.run)
            self.run = Run(len(self.parse.runs), line_no)
        self.in_hparams = False

    def finish(self, last_line: int) -> LogParse:
        self.end_segment(last_line)
        self.run.end_line = last_line
        self.parse.runs.append(self.run)
        self.parse.runs = [r for r in self.parse.runs if r.has_progress or r.has_evidence or r is self.parse.runs[-1]]
        return self.parse

    # lines ---------------------------------------------------------------------------------

    def feed(self, line_no: int, raw: str) -> None:
        if len(raw) > MAX_LINE:
            return
        rank, line = P.clean_ranked(raw)
        if rank and (self.primary_seen or self.other_rank not in (None, rank)):
            return  # another worker's copy of the stream already read
        if not line:
            self.in_hparams = False if not raw.strip() else self.in_hparams
            return
        first = line[0]
        if first in "=" and P.SEPARATOR.match(line):
            self.end_segment(line_no)
            return
        if first in "ifdc@":
            if P.PYTHON_LINE.match(line):
                self.python_lines += 1
                self.last_python = line_no
                if self.first_python is None:
                    self.first_python = line_no
        if self.code_start is None and first in "\"'rf#i" and CODE_START.match(line):
            self.code_start = line_no
        if first in "[WIET " and P.SKIP.match(line):
            return
        if first != " ":
            self.in_hparams = False
        if 'f"' in line or "f'" in line or "log0(" in line or "log(" in line or "print(" in line:
            return
        if P.RUN_START.match(line):
            self.pending.append((line_no, lambda n=line_no: self.maybe_new_run(n)))
            self.in_hparams = line.startswith("Hyperparameters")
            return
        if self.in_hparams and first == " ":
            m = P.HPARAM.match(line)
            if m and m.group("key") in HPARAM_KEYS:
                key, value = m.group("key"), m.group("value")
                self.pending.append((line_no, lambda k=key, v=value, n=line_no, t=line: self._hparam(k, v, n, t)))
            if m:
                return
        elif first == " " and not line.lstrip().startswith(("|",)):
            # indented lines outside a hyperparameter block: dumps, tables, tracebacks
            if not _has_trigger(line):
                return
        if first in "Rm" and (line.startswith("Running MLX") or line.startswith("mlx_version:")):
            # an Apple-silicon run (MLX): no CUDA device, whatever the log leaves unsaid
            self.pending.append((line_no, lambda n=line_no: None if MLX_DEVICE in self.run.gpus else self._gpu(MLX_DEVICE, n)))
            return
        if first == "|":
            if "NVIDIA" in line or "Tesla" in line or "Quadro" in line:
                m = P.SMI_GPU.match(line)
                if m:
                    name = re.sub(r"\s+", " ", m.group("name")).strip()
                    self.pending.append((line_no, lambda nm=name, n=line_no: self._gpu(nm, n)))
            return
        if not _has_trigger(line):
            return
        if rank:
            self.other_rank = rank
        else:
            self.primary_seen = True
        self.pending.append((line_no, lambda n=line_no, t=line: self._line(n, t)))
        if len(self.pending) > MAX_PENDING and self.python_lines < CODE_LINES_MIN:
            self._flush()  # a long stretch of log lines is no dumped script: apply them now

    def _flush(self) -> None:
        for _, event in self.pending:
            event()
        self.pending = []

    # events (run when the segment is known not to be a dumped script) -----------------------

    def _gpu(self, name: str, line_no: int) -> None:
        if self.run.gpu_line is not None and line_no - self.run.gpu_line > 40:
            self.run.gpus = []  # a second nvidia-smi table replaces the first
        self.run.gpus.append(name)
        self.run.gpu_line = line_no

    def _hparam(self, key: str, value: str, line_no: int, text: str) -> None:
        at = At(value, line_no, text.strip())
        self.run.hparams[key] = at
        if key == "max_wallclock_seconds":
            try:
                self.run.max_wallclock = At(float(value), line_no, text.strip())
            except ValueError:
                pass
        elif key == "seed" and value.isdigit() and self.run.seed is None:
            self.run.seed = At(int(value), line_no, text.strip())
        elif key == "vocab_size" and value.isdigit():
            self.run.vocab = At(int(value), line_no, text.strip())
        elif key == "tokenizer_path":
            self.run.tokenizer = At(value, line_no, text.strip())
        elif key == "caseops_enabled" and value.lower() == "true":
            self.run.sidecar = At(True, line_no, text.strip())
        if key in ("datasets_dir", "data_path", "train_files", "val_files") and P.DOUBLE_DATASETS.search(value):
            self.run.double_datasets = At(value, line_no, text.strip())

    def _line(self, n: int, line: str) -> None:  # one dispatch over line shapes
        run = self.run
        t = line[:300]
        # training progress first: the most frequent lines
        if line.startswith("step:") or line[:1].isdigit():
            m = P.STEP_VAL.match(line) if "val_loss" in line else None
            if m:
                if len(run.step_vals) < MAX_STEP_VALS:
                    run.step_vals.append(At((int(m.group("step")), float(m.group("loss")), float(m.group("bpb"))), n, t))
                else:
                    run.step_vals[-1] = At((int(m.group("step")), float(m.group("loss")), float(m.group("bpb"))), n, t)
                if m.group("ms"):
                    run.last_train = At((float(m.group("ms")), int(m.group("step")), int(m.group("iters")), 1.0), n, t)
                return
            m = P.STEP_TRAIN_MS.match(line) if line[0] == "s" else None
            if m:
                run.steps_seen += 1
                run.last_train = At((float(m.group("ms")), int(m.group("step")), int(m.group("iters")), 1.0), n, t)
                return
            m = P.STEP_TRAIN_MIN.match(line)
            if m:
                run.steps_seen += 1
                run.last_train = At((float(m.group("min")) * 60_000.0, int(m.group("step")), int(m.group("iters")), 6000.0), n, t)
                return
        if line.startswith("stopping_early"):
            m = P.STOP.match(line)
            if m:
                run.stop = At((float(m.group("ms")), int(m.group("step") or 0), int(m.group("iters") or 0), m.group("why")), n, t)
            return
        if line.startswith("Serialized model"):
            m = P.MODEL.match(line)
            if m:
                run.models.append(SizeLine(m.group("fmt").strip(" +") or None, int(m.group("bytes")), n, t))
            return
        if line.startswith("Total submission"):
            m = P.TOTAL.match(line)
            if m:
                model = run.models[-1] if run.models else None
                run.totals.append((SizeLine(m.group("fmt"), int(m.group("bytes")), n, t), model))
            return
        if line.startswith("Code size"):
            m = P.CODE.match(line)
            if m:
                run.code[m.group("kind") or "plain"] = At(int(m.group("bytes")), n, t)
            return
        if line.startswith("budget:"):
            m = P.BUDGET.match(line)
            if m:
                run.budget = At((int(m.group("total")), int(m.group("cap")), m.group("verdict")), n, t)
            return
        if line.startswith("INT") and "Total submission" in line:
            m = P.ALT_TOTAL.match(line)
            if m:
                model = SizeLine("alt", int(m.group("model")), n, t)
                run.models.append(model)
                run.totals.append((SizeLine("alt", int(m.group("total")), n, t), model))
            return
        if line.startswith("train_batch_tokens"):
            m = P.CONFIG.match(line)
            if m:
                run.max_wallclock = At(float(m.group("cap")), n, t)
            return
        if line.startswith(("gptq", "GPTQ")):
            self._gptq(n, line, t)
            return
        if line.startswith("world_size"):
            m = P.WORLD.match(line)
            if m:
                run.world_size = At(int(m.group("ws")), n, t)
            return
        if line.startswith(("val_tokens", "val_loader")):
            m = P.VAL_TOKENS.match(line)
            if m:
                run.val_tokens = At(int(m.group("a") or m.group("b")), n, t)
            return
        if line.startswith(("train_shards", "train_loader")):
            m = P.TRAIN_SHARDS.match(line)
            if m:
                run.train_shards = At(int(m.group("a") or m.group("b")), n, t)
            if P.DOUBLE_DATASETS.search(line):
                run.double_datasets = At(line, n, t)
            return
        if line.startswith("total_eval_time"):
            m = P.TOTAL_EVAL.match(line)
            if m:
                run.total_eval = At(float(m.group("s")), n, t)
            return
        if ("seed" in line or "SEED" in line) and len(line) < 40:
            m = P.SEED.match(line)
            if m:
                run.seed = At(int(m.group("seed") or m.group("seed2")), n, t)
                if "GPU_COUNT" not in line:
                    return
        if "GPU_COUNT" in line or "NPROC" in line or "nproc" in line or "gpus" in line:
            m = P.GPU_COUNT.search(line)
            if m and run.gpu_count is None and "bpb" not in line:
                run.gpu_count = At(int(m.group("n")), n, t)
        if "tokenizer" in line:
            m = P.TOKENIZER.search(line)
            if m:
                if m.group("path"):
                    run.tokenizer = At(m.group("path"), n, t)
                else:
                    run.tokenizer = At(m.group("kind"), n, t)
                    run.vocab = At(int(m.group("vocab")), n, t)
        if "sidecar" in line or "caseops" in line:
            if P.SIDECAR.search(line):
                run.sidecar = At(True, n, t)
        if "done" in line or "wallclock" in line:
            m = P.OUTSIDE_TIMER.match(line)
            if m and "val_bpb" not in line:
                run.outside_timer.append(At((m.group("what").strip(), float(m.group("s"))), n, t))
                return
        if "bpb" in line:
            self._score(n, line, t)
        elif "bytes=" in line or "subset" in line:
            self._counts(n, line, t)

    def _gptq(self, n: int, line: str, t: str) -> None:
        run = self.run
        m = P.RESERVE.match(line)
        if m:
            run.reserve = At(int(m.group("ms")), n, t)
            return
        if P.VAL_CALIBRATION.search(line):
            run.val_calibration = At(True, n, t)
        m = P.GPTQ.match(line)
        if not m:
            return
        lower = line.lower()
        if "autoregressive" in lower or "ar self-gen" in lower or "self-gen" in lower or "generated" in lower:
            source = "self-generated"
        elif "random" in lower:
            source = "random"
        elif P.VAL_CALIBRATION.search(line):
            source = "val"
        elif "train" in lower:
            source = "train"
        else:
            source = "unknown"
        sec = P.GPTQ_SECONDS.search(line)
        run.gptq.append(GptqLine(n, t, float(sec.group("s")) if sec else None, source, run.stop is not None))

    def _score(self, n: int, line: str, t: str) -> None:
        run = self.run
        kind = "stage"
        m = P.DONE.match(line)
        if m:
            kind = "done"
        else:
            m = P.STAGE.match(line)
        if m:
            groups = m.groupdict()
            raw_label = m.group("label").strip()
            loss_text: str | None = groups.get("loss")
            bpb_text = groups["bpb"]
            tail = groups.get("tail") or ""
            key = "val_bpb"
            seconds = float(groups["s"]) if kind == "done" and groups.get("s") else None
        else:
            found = key_values(line)
            if found is None:
                return
            kind = "noloss"
            raw_label, key, bpb_text, loss_text, tail = found
            seconds = None
        label, exact = P.label_base(raw_label)
        if seconds is None:
            em = P.EVAL_MS.search(tail)
            if em:
                seconds = float(em.group("ms")) / 1000.0
            else:
                es = P.EVAL_S.search(tail)
                if es:
                    seconds = float(es.group("s"))
        if key != "val_bpb":
            label = f"{label}:{key}"
        try:
            bpb = float(bpb_text)
            loss = float(loss_text) if loss_text else None
        except ValueError:
            return
        nbytes = P.FIELD_BYTES.search(line)
        ntok = P.FIELD_TOKENS.search(line)
        score = Score(
            label=label,
            raw_label=raw_label if key == "val_bpb" else f"{raw_label} {key}",
            bpb=bpb,
            loss=loss,
            bpb_text=bpb_text,
            loss_text=loss_text,
            eval_s=seconds,
            line=n,
            text=t,
            kind=kind,
            final=P.is_final_label(label) and key == "val_bpb",
            exact=exact,
            scored_bytes=int(nbytes.group("n")) if nbytes else None,
            scored_tokens=int(ntok.group("n")) if ntok else None,
        )
        if len(run.scores) < MAX_SCORES:
            run.scores.append(score)
        else:
            run.truncated_scores += 1

    def _counts(self, n: int, line: str, t: str) -> None:
        """``tokens=N bytes=N`` on a line without a bpb: explicit counts of a scoring pass."""
        nbytes = P.FIELD_BYTES.search(line)
        ntok = P.FIELD_TOKENS.search(line)
        if nbytes is None and ntok is None:
            return
        run = self.run
        if "subset" in line and run.scores and n - run.scores[-1].line <= 2:
            last = run.scores[-1]
            if ntok and last.scored_tokens is None:
                last.scored_tokens = int(ntok.group("n"))
            return
        if nbytes is not None and ntok is not None:
            run.byte_counts.append(At((int(ntok.group("n")), int(nbytes.group("n"))), n, t))


_KV = re.compile(r"([A-Za-z_][\w\-]*)[:=]\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_LABEL_WORD = re.compile(r"^[A-Za-z\[][\w\-.:/\[\]()+]*$")
#: bpb keys that are never a score: running estimates and the components of a mixture.
_NOT_SCORE_KEYS = ("running", "ppm_only", "nn_only", "only_bpb", "delta", "gain", "pre_", "baseline", "best_", "target")


def key_values(line: str) -> tuple[str, str, str, str | None, str] | None:
    """A metric line in ``label key=value …`` form: (label, bpb key, bpb, loss, tail).

    The bpb key is chosen by priority (``val_bpb`` > ``mix_bpb`` > other ``*bpb``), so
    ``final_sliding_window sliding_bpb:1.1478 val_bpb:0.3922`` (PR #972) scores 0.3922.
    """
    words = line.split()
    label_words = []
    for word in words:
        if (kv := _KV.match(word)) and kv.end() == len(word) or "=" in word or not _LABEL_WORD.match(word):
            break
        label_words.append(word)
    if not label_words:
        return None
    pairs = _KV.findall(line)
    keys: dict[str, str] = {}
    for key, value in pairs:
        keys.setdefault(key, value)
    chosen = None
    for key in ("val_bpb", "mix_bpb", "bpb"):
        if key in keys:
            chosen = key
            break
    if chosen is None:
        for key in keys:
            low = key.lower()
            if low.endswith("bpb") and not any(x in low for x in _NOT_SCORE_KEYS) and low != "sliding_bpb":
                chosen = key
                break
    if chosen is None:
        return None
    label = " ".join(label_words).rstrip(":")
    tail = line[line.find(chosen):]
    return label, chosen, keys[chosen], keys.get("val_loss"), tail


def parse_lines(rel: str, lines: Iterable[str]) -> LogParse:
    """Parse a log from its lines (str, with or without line ends)."""
    builder = _Builder(rel)
    digest = hashlib.sha1()
    n = 0
    for n, raw in enumerate(lines, start=1):
        digest.update(raw.encode("utf-8", "replace"))
        builder.feed(n, raw)
    parse = builder.finish(n)
    parse.lines = n
    parse.digest = digest.hexdigest()
    return parse


def parse_text(rel: str, text: str) -> LogParse:
    return parse_lines(rel, text.splitlines(keepends=True))

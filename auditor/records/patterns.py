"""The catalogue of log line patterns the records validator understands.

Each pattern has a name, the regex, and a line it was written from (the shapes were surveyed on
a few hundred real logs of openai/parameter-golf; the examples below are written in those
shapes). Regexes apply to a *cleaned* line: ANSI codes removed, carriage returns resolved, and
the optional prefixes below stripped. They are anchored at the start, so source code dumped
into a log (``log0(f"Total submission size ...")``) does not match; the parser also drops
whole code dumps (see :mod:`auditor.records.logparse`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Prefixes a logger may put before a line: a Unix epoch (``1776142348.135 ``), an ISO time
#: (``2026-04-30T19:33:09+00:00 ``), ``[2026-03-23 04:40:49] INFO: `` and ``# `` (annotated
#: copies of a log).
PREFIX = re.compile(
    r"^(?:\d{9,11}\.\d+\s+"
    r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\s+"
    r"|\[\d{4}-\d\d-\d\d[^\]]*\]\s+(?:INFO:?\s+)?"
    r"|INFO:\s+"
    r"|#\s+)+"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: The prefix torchrun puts before each line of a worker it tees or redirects: the role name and
#: the local rank in brackets, then a colon (``[default0]:``, ``[rank3]:``, ``[trainer1]:``).
RANK_PREFIX = re.compile(r"^\[(?P<name>[A-Za-z_][\w.\-]*?)(?P<rank>\d+)\]:")
#: torchrun's own warnings and dynamo tracebacks: never evidence.
SKIP = re.compile(r"^(?:[WIE]\d{4} \d\d:\d\d:\d\d|\[W\d{4}|Traceback |\s+File \")")
#: The separator a training script prints after dumping its own source into the log.
SEPARATOR = re.compile(r"^={20,}\s*$")
#: Lines that only Python source has at column 0 (used to recognise a dumped script).
PYTHON_LINE = re.compile(r"^(?:import [\w.]+|from [\w.]+ import |def \w+\(|class \w+[(:]|@\w+|if __name__ ==)")
#: Lines that start a new run inside one log file.
RUN_START = re.compile(r"^(?:Hyperparameters:\s*$|logs/[\w.\-]+\.txt\s*$|Running Python \d)")

NUM = r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern[str]
    example: str

    def match(self, line: str) -> re.Match[str] | None:
        return self.regex.match(line)

    def search(self, line: str) -> re.Match[str] | None:
        return self.regex.search(line)


def _p(name: str, regex: str, example: str) -> Pattern:
    return Pattern(name, re.compile(regex), example)


#: A final or stage metric line: ``<label> [stride:N] val_loss:X val_bpb:Y [tail]``.
STAGE = _p(
    "stage",
    r"^(?P<label>[A-Za-z\[][\w\-.:/\[\]+ ]*?)\s+(?:stride:\d+\s+)?(?:sliding\s+)?val_loss[:=]\s*(?P<loss>" + NUM + r")"
    r"\s*,?\s+(?:sliding\s+)?val_bpb[:=]\s*(?P<bpb>" + NUM + r")(?P<tail>.*)$",
    "final_int6_sliding_window val_loss:1.9000 val_bpb:1.1253 stride:64 eval_time:75214ms",
)
#: Lines with a bpb but no loss (PPM / n-gram mixtures, PR #972's ``sliding_bpb:… val_bpb:…``)
#: are read as ``label key=value …`` by :func:`auditor.records.logparse.key_values`, e.g.
#: ``ppm_mix bytes=10982035 mix_bpb=1.000307 ppm_only=2.380212`` (key priority val_bpb >
#: mix_bpb > bpb; running estimates and mixture components are not scores).
#: ``ttt_sliding:done val_loss=… val_bpb=… elapsed=…s`` and ``ttt:done`` / ``ngram:done``.
DONE = _p(
    "done",
    r"^(?P<label>[\w\-]+(?::[\w\-]+)*:done)\s+val_loss=(?P<loss>" + NUM + r")\s+val_bpb=(?P<bpb>" + NUM + r")"
    r"(?:\s+elapsed=(?P<s>" + NUM + r")s)?(?P<tail>.*)$",
    "ttt_sliding:done val_loss=1.928505 val_bpb=0.949127 elapsed=448.2s",
)
#: Periodic validation during training: never the score (pre-EMA, pre-quantization).
STEP_VAL = _p(
    "step_val",
    r"^(?:step:?\s*)?(?P<step>\d+)/(?P<iters>\d+)\s+val_loss:\s*(?P<loss>" + NUM + r")\s+val_bpb:\s*(?P<bpb>" + NUM + r")"
    r"(?:.*?train_time:\s*(?P<ms>\d+)ms)?",
    "step:2000/20000 val_loss:2.2248 val_bpb:1.3177 train_time:86997ms step_avg:43.50ms",
)
#: Training progress (ms form, 2026-03 scripts).
STEP_TRAIN_MS = _p(
    "step_train_ms",
    r"^step:(?P<step>\d+)/(?P<iters>\d+)\b.*?\btrain_time:\s*(?P<ms>\d+)ms",
    "step:200/20000 train_loss:5.4997 train_time:8700ms step_avg:43.50ms",
)
#: Training progress (minutes form, 2026-04 scripts: resolution 6 s).
STEP_TRAIN_MIN = _p(
    "step_train_min",
    r"^(?P<step>\d+)/(?P<iters>\d+)\s+train_loss:\s*" + NUM + r"\s+train_time:\s*(?P<min>" + NUM + r")m\b",
    "500/20000 train_loss: 3.3093 train_time: 0.8m tok/s: 7721491",
)
#: The wallclock stop: the authoritative training time.
STOP = _p(
    "stop",
    r"^stopping_early:\s*(?P<why>[\w\-]+)\s+train_time:\s*(?P<ms>\d+(?:\.\d+)?)ms(?:\s+step:\s*(?P<step>\d+)/(?P<iters>\d+))?",
    "stopping_early: wallclock_cap train_time:600021ms step:13794/20000",
)
CONFIG = _p(
    "config",
    r"^train_batch_tokens:(?P<tok>\d+)\s+train_seq_len:(?P<seq>\d+)\s+iterations:(?P<it>\d+)\s+warmup_steps:(?P<wu>\d+)"
    r"\s+max_wallclock_seconds:(?P<cap>" + NUM + r")",
    "train_batch_tokens:524288 train_seq_len:1024 iterations:20000 warmup_steps:20 max_wallclock_seconds:600.000",
)
#: ``key: value`` lines of a 2026-04 ``Hyperparameters:`` block (two-space indent).
HPARAM = _p("hparam", r"^\s{1,4}(?P<key>[a-z_][a-z0-9_]*):\s+(?P<value>\S.*?)\s*$", "  max_wallclock_seconds: 600.0")
RESERVE = _p(
    "gptq_reserve",
    r"^gptq:reserving (?P<val>" + NUM + r")(?P<unit>ms|s)(?: from training budget)?,\s*effective=(?P<ms>\d+)ms",
    "gptq:reserving 12s, effective=588000ms",
)
WORLD = _p("world", r"^world_size:\s*(?P<ws>\d+)(?:\s+grad_accum_steps:\s*(?P<ga>\d+))?", "world_size:8 grad_accum_steps:1")
GPU_COUNT = _p(
    "gpu_count",
    r"(?:^|\s)(?:GPU_COUNT|NPROC|nproc_per_node|num_gpus|n_gpus|gpus)\s*[=:]\s*(?P<n>\d+)\b",
    "SEED=42 GPU_COUNT=8",
)
#: A GPU row of nvidia-smi output.
SMI_GPU = _p("smi_gpu", r"^\|\s+(?P<idx>\d+)\s+(?P<name>(?:NVIDIA|Tesla|Quadro)\b.*?)\s{2,}(?:On|Off)\s+\|", "|   0  NVIDIA H100 80GB HBM3          On  |")
SEED = _p("seed", r"^(?:seed|SEED)\s*[:=]\s*(?P<seed>\d+)\s*$|^SEED=(?P<seed2>\d+)\b", "seed:42")

#: ``Serialized model <fmt>: N bytes`` (compressed) and ``Serialized model: N bytes`` (raw).
MODEL = _p(
    "model_bytes",
    r"^Serialized model(?P<fmt>[^:]*?):\s*(?P<bytes>\d+) bytes",
    "Serialized model int8+zlib: 15815847 bytes (payload:17178912 raw_torch:17224025 payload_ratio:3.91x)",
)
CODE = _p(
    "code_bytes",
    r"^Code size(?: \((?P<kind>compressed|uncompressed)\))?:\s*(?P<bytes>\d+) bytes",
    "Code size (compressed): 31999 bytes",
)
TOTAL = _p(
    "total_bytes",
    r"^Total submission(?: size)?(?: (?P<fmt>[^:]+?))?:\s*(?P<bytes>\d+) bytes",
    "Total submission size int8+zlib: 15863489 bytes",
)
#: Ternary/binary logs: ``budget:15980000/16000000 (15.98/16.00MB) FITS``.
BUDGET = _p(
    "budget",
    r"^budget:(?P<total>\d+)/(?P<cap>\d+) \(" + NUM + "/" + NUM + r"MB\) (?P<verdict>\w+)",
    "budget:15980000/16000000 (15.98/16.00MB) FITS",
)
#: ``INT8+zlib model: N bytes | Total submission: N bytes`` (one non-record family).
ALT_TOTAL = _p(
    "alt_total",
    r"^INT\d+\+\w+ model: (?P<model>\d+) bytes \| Total submission: (?P<total>\d+) bytes",
    "INT8+zlib model: 15000000 bytes | Total submission: 15050000 bytes",
)
VAL_TOKENS = _p(
    "val_tokens",
    r"^(?:val_tokens:\s*(?P<a>\d+)|val_loader:.*?\btokens:(?P<b>\d+))",
    "val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:62021632",
)
TRAIN_SHARDS = _p(
    "train_shards",
    r"^(?:train_shards:\s*(?P<a>\d+)|train_loader:dataset:(?P<ds>\S+)\s+train_shards:(?P<b>\d+))",
    "train_loader:dataset:fineweb10B_sp1024 train_shards:80",
)
TOKENIZER = _p(
    "tokenizer",
    r"(?:tokenizer_path[=:]\s*(?P<path>\S+)|tokenizer:\s*kind=(?P<kind>\w+)\s+vocab=(?P<vocab>\d+))",
    "val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path=./data/tokenizers/fineweb_1024_bpe.model",
)
#: ``eval_time:1234ms`` / ``time:1234ms`` inside a stage line's tail.
EVAL_MS = re.compile(r"(?:eval_time|time)[:=]\s*(?P<ms>\d+(?:\.\d+)?)ms")
EVAL_S = re.compile(r"(?:eval_time|time|elapsed)[:=]\s*(?P<s>\d+(?:\.\d+)?)s\b")
TOTAL_EVAL = _p("total_eval", r"^total_eval_time(?:_with_compile)?:\s*(?P<s>" + NUM + r")s", "total_eval_time:508.8s")
#: Work around the scored pass that its own timer leaves out.
OUTSIDE_TIMER = _p(
    "outside_timer",
    r"^(?P<what>.*?(?:compile warmup done|warmup done|decompression done in|compression done in|serialize_wallclock:))"
    r"\s*\(?(?P<s>" + NUM + r")s\)?",
    "ttt_lora:compile warmup done (137.6s)",
)
#: GPTQ calibration: where the data comes from, and how long the Hessians took.
GPTQ = _p(
    "gptq",
    r"^(?:gptq|GPTQ)[\w\-]*:?\s*(?P<rest>.*(?:calibrat|[Hh]essian|collect).*)$",
    "GPTQ:collected 67 Hessians in 4.7s",
)
GPTQ_SECONDS = re.compile(r"(?:\bin\s+|time=)(?P<s>" + NUM + r")s\b")
#: Explicit counts on a score line: ``bytes=152574319``, ``tokens=40540160``, ``subset=3000000``.
FIELD_BYTES = re.compile(r"\bbytes[=:]\s*(?P<n>\d{4,})\b")
FIELD_TOKENS = re.compile(r"\b(?:tokens|subset|tokens_scored)[=:]\s*(?P<n>\d{4,})\b")
#: A byte sidecar (CaseOps): bytes come from the original text, not the tokenizer.
SIDECAR = re.compile(r"byte_sidecar:enabled|caseops_enabled:\s*True", re.I)
#: Doubled ``datasets/datasets`` path: the fingerprint of a local CaseOps preparation.
DOUBLE_DATASETS = re.compile(r"datasets/datasets/\S*caseops|caseops\S*/datasets/datasets/", re.I)
#: GPTQ calibrated on validation data (disputed: R-GPTQ val calibration).
VAL_CALIBRATION = re.compile(r"(?i)gptq.*(?:source=val\b|validation data for calibration|calibrat\w* (?:on|with) val)")

ALL = (STAGE, DONE, STEP_VAL, STEP_TRAIN_MS, STEP_TRAIN_MIN, STOP, CONFIG, HPARAM, RESERVE, WORLD,
       GPU_COUNT, SMI_GPU, SEED, MODEL, CODE, TOTAL, BUDGET, ALT_TOTAL, VAL_TOKENS, TRAIN_SHARDS, TOKENIZER,
       TOTAL_EVAL, OUTSIDE_TIMER, GPTQ)

#: Stage labels that are never the score: diagnostics, pre-quantization passes, sweeps, and
#: per-rank or running figures.
NON_FINAL = re.compile(
    r"(?i)^(?:diagnostic|pre[-_ ]?quant|post[-_]prequant|post-ttt pre-quant|pre[-_]ttt|candidate_eval|k_eval|rank_sweep"
    r"|evs:rank|swa_eval|neural_only|\[val\]|step\b|ttt_chunk|running|progress|warmup|epoch|prequant_ttt|ttt_epoch"
    r"|sliding_progress|val\b|eval\b|train\b)"
)


#: Progress lines of a pass that is still running ("ttt_chunk [11/1893] bpb=… time=21.4s"): their
#: times are cumulative, so they are not stages of their own.
PROGRESS_LABEL = re.compile(r"\[\s*\d+\s*/\s*\d+\s*\]|(?i:^(?:ttt_chunk|sliding_progress|progress|running)\b)")

def clean(line: str) -> str:
    """A raw log line without line end, ANSI codes, carriage-return overwrites or prefixes."""
    return clean_ranked(line)[1]


def clean_ranked(line: str) -> tuple[int | None, str]:
    """The worker rank of a torchrun-prefixed line (None for a plain line) and the cleaned line.

    The torchrun prefix may come before or after a time prefix; both are removed, so
    ``[default0]:stopping_early: …`` reads like ``stopping_early: …``.
    """
    line = line.rstrip("\n").rstrip("\r")
    if "\r" in line:
        pieces = [p for p in line.split("\r") if p.strip()]
        line = pieces[-1] if pieces else ""
    if "\x1b" in line:
        line = ANSI.sub("", line)
    rank: int | None = None
    for _ in range(2):  # "[default0]:[2026-…] INFO: …" and "1776142348.135 [rank0]:…"
        if line[:1] == "[":
            m = RANK_PREFIX.match(line)
            if m is not None and rank is None:
                rank = int(m.group("rank"))
                line = line[m.end():]
        if line[:1].isdigit() or line[:1] in "[#I":
            stripped = PREFIX.sub("", line, count=1)
            if stripped == line:
                break
            line = stripped
    return rank, line


def label_base(label: str) -> tuple[str, bool]:
    """A stage label without its ``_exact`` suffix, and whether it had one."""
    label = label.strip()
    if label.endswith("_exact"):
        return label[: -len("_exact")], True
    return label, False


def is_final_label(label: str) -> bool:
    return not NON_FINAL.match(label.strip())

"""The scale of the sandboxed run: the harness's settings and the values of the script's own
environment knobs that shrink it (sandbox side; no torch)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from auditor.runtime import loader, protocol


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
    max_budget_s: float = 0.0  # what budget_s may grow to when the probes' measured cost needs it
    model_dim: int = 32
    substitution_positions: int = 2
    replay_limit_s: float = 20.0  # a replay slower than this is not used for the probes
    fp32: bool = True  # run models in float32 on the CPU (see stubs.install)
    late_substitution: bool = False  # substitute at the end of the stream (a grown rerun: harness._run)

    @classmethod
    def from_job(cls, job: protocol.Job) -> Settings:
        known = {k: v for k, v in job.settings.items() if k in cls.__dataclass_fields__}
        return cls(**known)



#: A literal the script compares a sequence length with (``64 < sw_seq_len``,
#: ``eval_seq_len >= 128``): a pass guarded so never runs at a shorter length.
_SEQ_BOUND = re.compile(
    r"\b(\d+)\s*(<=?)\s*[\w.]*seq_len\w*\b|\b[\w.]*seq_len\w*\s*(>=?)\s*(\d+)\b", re.I)
#: The longest sequence the harness grows to for such a guard.
MAX_SEQ_LEN = 256


def required_seq_len(texts: list[str], seq_len: int) -> int:
    """The shrunk sequence length, grown to the smallest power of two that passes the
    script's own literal bounds on it (a second sliding pass ``if 64 < sw_seq_len`` would never
    run at 64, and it may be the scored one), at most :data:`MAX_SEQ_LEN`."""
    need = seq_len
    for text in texts:
        for m in _SEQ_BOUND.finditer(text):
            bound, strict = (int(m.group(1)), m.group(2) == "<") if m.group(1) else (int(m.group(4)), m.group(3) == ">")
            least = bound + 1 if strict else bound
            if need < least <= MAX_SEQ_LEN:
                need = least
    grown = seq_len
    while grown < need:
        grown *= 2
    return min(grown, MAX_SEQ_LEN)


def _exact(s: Settings, paths: dict[str, str]) -> dict[str, Any]:
    """The harness's value for each setting it sets outright, by the setting's usual name."""
    return {
        "VOCAB_SIZE": s.vocab, "MODEL_DIM": s.model_dim, "NUM_HEADS": 2, "NUM_KV_HEADS": 1, "EMBED_DIM": s.model_dim,
        "TRAIN_SEQ_LEN": s.seq_len, "EVAL_SEQ_LEN": s.seq_len, "TTT_EVAL_SEQ_LEN": s.seq_len, "SEQ_LEN": s.seq_len,
        "EVAL_STRIDE": s.stride, "STRIDE": s.stride, "SLIDING_STRIDE": s.stride, "TTT_STRIDE": s.stride,
        "TRAIN_BATCH_TOKENS": 8 * s.seq_len * 2, "VAL_BATCH_SIZE": 8 * s.val_tokens, "VAL_BATCH_TOKENS": 8 * s.val_tokens,
        "ITERATIONS": 2, "WARMUP_STEPS": 0, "WARMDOWN_ITERS": 0, "VAL_LOSS_EVERY": 0, "TRAIN_LOG_EVERY": 1,
        "MAX_WALLCLOCK_SECONDS": 100_000_000, "GPTQ_RESERVE_SECONDS": 0, "GPTQ_RESERVE_MS": 0,
        "TTT_CHUNK_TOKENS": s.chunk, "TTT_BATCH_SEQS": 4, "TTT_CHUNK_SIZE": 32,
        "TTT_BATCH_SIZE": 4, "TTT_LORA_RANK": 4, "PHASED_TTT_PREFIX_DOCS": 3, "GLOBAL_TTT_CHUNK_TOKENS": 512,
        "GLOBAL_TTT_BATCH_SEQS": 2, "SLOT_BATCH_SEQS": 8,
        "SEED": s.seed, "RUN_ID": "pgolf_audit", "FUSED_CE_ENABLED": 0, "LOGIT_CHUNK": 0,
        "DATA_PATH": paths["data_path"], "TOKENIZER_PATH": paths["tokenizer"], "DATA_DIR": paths["data_dir"],
        "DATASETS_DIR": paths["data_path"], "NGRAM_EVAL_MAX_SECONDS": 0, "TRAIN_SEQ_SCHEDULE": "",
    }


#: Settings the harness sets outright, by their usual names.
EXACT_ROLES = frozenset(_exact(Settings(), {"data_path": "", "tokenizer": "", "data_dir": ""}))
#: Families of settings the harness shrinks, by how their usual names end.
_SHRUNK_FAMILY = re.compile(r"MIN_TOKENS$|SEQ_LEN$|STRIDE$|CHUNK_TOKENS$|BATCH_SEQS$|CALIB\w*(BATCHES|SAMPLES|SEQS|TOKENS|NUM)$"
                            r"|(AR|GEN)\w*(SEQS|SAMPLES)$|_DIM$")
#: Settings the harness treats apart (see :func:`knob_values`).
_SPECIAL = ("CASEOPS_ENABLED", "COMPRESSOR")


def _known(name: str) -> bool:
    return name in EXACT_ROLES or name in _SPECIAL or is_table_size(name) or bool(_SHRUNK_FAMILY.search(name))


def role_of(name: str, knob: loader.Knob | None) -> str:
    """The setting an environment variable is, by the usual name the harness shrinks it by: its
    own name when that is a setting the harness knows (``VOCAB_SIZE``), else the name the script
    binds its value to (``vocab_size = int(os.environ.get("V0", "1024"))`` is the vocabulary
    whatever the variable is called), else its own name (a knob of unknown role is left alone)."""
    if _known(name) or knob is None or not knob.bound:
        return name
    bound = knob.bound.upper()
    if _known(bound):
        return bound
    if bound.endswith("CHUNK"):  # ``ttt_chunk = int(os.environ.get(..., "32768"))``: tokens per chunk
        return "CHUNK_TOKENS"
    return name


def knob_values(knobs: dict[str, loader.Knob], s: Settings, paths: dict[str, str],
                run_env: dict[str, str] | None = None, source_text: str = "",
                scored: dict[str, str] | None = None, world_size: int | None = None) -> dict[str, str]:
    """Values for the script's own environment knobs: the scored run's configuration, shrunk in
    data and sizes (tokens, sequence length, model width, training steps), never in structure.

    ``scored`` holds the settings of the run that produced the claimed score (its logs, its run
    command, then the defaults: :mod:`auditor.runtime.stage`). A knob it gives a value to keeps
    that value unless it is one of the sizes below: epochs, n-gram orders, enable flags and the
    number of adaptation steps stay what the scored run used, whatever they are called. A knob of
    unknown role is left alone rather than shrunk. ``world_size`` is the scored run's, when its
    logs say it (a default computed from the world size then follows the run that was made).
    """
    scale = s.val_tokens / s.real_val_tokens
    exact = _exact(s, paths)
    scored_env = dict(scored or {})
    ties = tied_widths(knobs, {w: str(exact[w]) for w in WIDTHS}, scored_env)
    out: dict[str, str] = {}
    for name, knob in knobs.items():
        value: Any = None
        default = knob.default
        number = _number(default)
        role = role_of(name, knob)
        if role in exact:
            value = exact[role]
        elif is_table_size(role):
            if number and number >= 4096 and "ART" not in role.upper():
                value = loader.scaled_buckets(int(number), scale)
        elif re.search(r"MIN_TOKENS$", role) and number and number > 64:
            # a cache or mixer that waits for N tokens before it mixes would never switch on in a
            # stream of a few thousand; the threshold shrinks with the stream
            value = max(16, int(number * scale))
        elif re.search(r"SEQ_LEN$", role):
            value = s.seq_len
        elif re.search(r"STRIDE$", role):
            value = s.stride
        elif re.search(r"CHUNK_TOKENS$", role):
            value = s.chunk
        elif re.search(r"BATCH_SEQS$", role):
            value = 4
        elif re.search(r"CALIB\w*(BATCHES|SAMPLES|SEQS|TOKENS|NUM)$", role) and number and number > 2:
            value = 2
        elif re.search(r"(AR|GEN)\w*(SEQS|SAMPLES)$", role) and number and number > 2:
            value = 2
        if role == "CASEOPS_ENABLED" and value is None and "val_bytes" in source_text:
            value = (run_env or {}).get(name, "1")  # the byte sidecar is written; CaseOps scripts expect it
        if role == "COMPRESSOR" and value is None:
            # lrzip is a program (refused in the sandbox); the round trip is lossless either way
            chosen = (run_env or {}).get(name, default or "")
            if re.search(r"lrzip|pergroup|zpaq|xz_cli", chosen, re.I):
                value = default if default and not re.search(r"lrzip|pergroup", default, re.I) else "lzma"
        if value is None and name in ties:
            value = ties[name]  # tied to a shrunk width in the scored run
        if value is None and name in scored_env and _same_kind(default, scored_env[name]):
            value = scored_env[name]  # structure (or a role unknown here): as the scored run had it
        if value is None and knob.multi_gpu_default is not None and name not in (run_env or {}) \
                and (world_size is None or world_size > 1):
            value = knob.multi_gpu_default  # the default the 8-GPU run had ("1" if world_size > 1)
        if value is not None:
            out[name] = str(value)
    for name in ("DATA_PATH", "TOKENIZER_PATH", "DATA_DIR"):
        out.setdefault(name, str(exact[name]))
    return out


#: Widths the harness shrinks, and the knobs that may be tied to them (their names end so).
WIDTHS = ("MODEL_DIM",)
TIED = re.compile(r"_DIM$")


def tied_widths(knobs: dict[str, loader.Knob], shrunk: dict[str, str],
                scored: dict[str, str]) -> dict[str, str]:
    """Width knobs the scored run ties to a shrunk width: a ``*_DIM`` knob left at its value
    whose value in the scored run (its logs, else the script's default) equals the model
    width's there (``EMBEDDING_DIM`` 512 with ``MODEL_DIM`` 512) takes the shrunk width too.
    Code may rely on the equality the run had (an embedding added to the residual stream before
    the projection that a differing width would add), so shrinking one and not the other
    breaks shapes the real run never had; widths that differed keep their value."""
    out: dict[str, str] = {}
    roles = {name: role_of(name, knob) for name, knob in knobs.items()}
    for width in WIDTHS:
        found = next((name for name, role in roles.items() if role == width), None)
        if found is None or width not in shrunk:
            continue
        real = _number(scored.get(found, knobs[found].default))
        if real is None:
            continue
        for name, other in knobs.items():
            if name == found or roles[name] in shrunk or not TIED.search(roles[name]):
                continue
            if _number(scored.get(name, other.default)) == real:
                out[name] = shrunk[width]
    return out


def _same_kind(default: str | None, value: str) -> bool:
    """A scored value the script can parse as it parses its default (a number for a number)."""
    return _number(default) is None or _number(value) is not None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


#: Sizes of the model the harness shrinks that a script may not accept shrunk; restored when it
#: does not (never the vocabulary, which must match the harness's tokenizer and data).
MODEL_WIDTHS = ("MODEL_DIM", "NUM_HEADS", "NUM_KV_HEADS", "EMBED_DIM")
#: Messages that say the shapes did not fit together.
SHAPE_ERROR = re.compile(r"size of tensor a|shapes? .*(cannot be multiplied|mismatch|must match|invalid)|"
                         r"invalid for input of size|must match the size|not divisible|divisible by", re.I)


def is_table_size(name: str) -> bool:
    """A knob that sizes a hashed count table (scaled with the stream, never restored whole)."""
    return "BUCKET" in name.upper() or "TABLE_SIZE" in name.upper()


def least_accepted(message: str, value: str) -> str | None:
    """The smallest size above ``value`` that a script's refusal asks for (``must be a power of
    two >=1024, got 64`` -> 1024): the numbers the message names that exceed the refused value,
    the least of them, rounded up to a power of two when the message asks for one."""
    try:
        refused = int(value)
    except ValueError:
        return None
    larger = [int(n) for n in re.findall(r"(?<![\w.])\d{1,10}(?![\w.])", message) if int(n) > refused]
    if not larger:
        return None
    least = min(larger)
    if re.search(r"power of (?:two|2)", message, re.I):
        least = 1 << (least - 1).bit_length()
    return str(least)


def restored_sizes(error_type: str, message: str, applied: dict[str, str], knobs: dict[str, loader.Knob],
                   scored: dict[str, str] | None = None) -> dict[str, str | None]:
    """Knobs to set otherwise after the run stopped on them (value None: unset, the script's
    default), or nothing when no second run is worth it:

    - the knob the error message names (the script checks it: ``NGRAM_EVAL_ORDER must be ...``,
      ``requires WORLD_SIZE=8``) gets the scored run's value back;
    - a value the message quotes (``invalid literal for int(): '1776142360.542'``) is one the
      script cannot parse, so the scored run cannot have had it (it was misread from a log):
      the knob is unset;
    - when shapes did not fit, or an assertion failed, the model's widths get their real values.

    When in doubt the data stays small and the model does not: a larger model only makes the
    run slower. Hashed-table sizes are never restored (a table as large as the real one on a
    short stream hides the collisions the substitution probe needs), nor the vocabulary or paths;
    a table size the script refuses gets the least size its message accepts
    (:func:`least_accepted`), and the run then says its tables are above scale."""
    scored = scored or {}
    keep = ("VOCAB_SIZE", "DATA_PATH", "TOKENIZER_PATH", "DATA_DIR", "DATASETS_DIR")
    roles = {name: role_of(name, knob) for name, knob in knobs.items()}

    def real(name: str) -> str | None:
        return scored.get(name)  # else unset: the script's default

    def allowed(name: str) -> bool:
        return name in knobs and roles[name] not in keep and not is_table_size(roles[name])

    def mentioned(name: str) -> bool:
        return len(name) > 3 and re.search(rf"\b{re.escape(name)}\b", message) is not None

    named = [k for k in applied if mentioned(k)]
    # a setting the harness left at its default that the script refuses (``requires
    # WORLD_SIZE=8``): the scored run's value, when it is known
    named += [k for k in knobs if k not in applied and k in scored and mentioned(k)]
    if {roles.get(k, k) for k in named} & set(MODEL_WIDTHS):  # widths tied to the model's go back with it
        named += [k for k in applied if TIED.search(roles.get(k, k)) and k not in named]
    if named:
        out = {k: real(k) for k in named if allowed(k) and applied.get(k, knobs[k].default) != real(k)}
        for k in named:  # a table size the script refused: the least it accepts, not the real one
            least = least_accepted(message, applied[k]) if k in applied and k in knobs and is_table_size(roles[k]) else None
            if least is not None:
                out[k] = least
        return out
    quoted = [k for k, v in applied.items() if len(v) >= 3 and (f"'{v}'" in message or f'"{v}"' in message)]
    if quoted:
        return {k: None for k in quoted if allowed(k)}
    if SHAPE_ERROR.search(message) or error_type == "AssertionError":
        widths = [k for k in applied if roles.get(k, k) in MODEL_WIDTHS or TIED.search(roles.get(k, k))]
        return {k: real(k) for k in widths if allowed(k) and applied[k] != real(k)}
    return {}

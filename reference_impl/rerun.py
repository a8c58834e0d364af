"""Rerun the reference pipeline end to end and write a records-style folder.

    python -m reference_impl.rerun --smoke --out runs/smoke          # CPU, a few minutes at most
    python -m reference_impl.rerun --data DIR --tokenizer FILE       # the Naive Baseline on real data
    python -m reference_impl.rerun ... --compare records/.../train.log

--smoke builds everything from text the project ships (fixtures/text): a SentencePiece tokenizer,
train/val shards, a small model trained for a few hundred steps, the int8+zlib artifact, and every
evaluator. The full run executes `reference_impl.train` with the baseline's defaults (under torchrun
when several GPUs are visible). Either way the records-style folder holds train.log, submission.json,
README.md and the code that was counted in the artifact bytes, and every number in submission.json
is read back from train.log, so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .hparams import Hyperparameters

CORPUS_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "text"
SMOKE_VOCAB_SIZE = Hyperparameters.smoke().vocab_size
SMOKE_VAL_FRACTION = 0.12

# -----------------------------------------------------------------------------
# Reading a training log (the challenge's line formats)

_STAGE = re.compile(r"^(?P<label>[A-Za-z][\w\-.]*?)(?P<exact>_exact)? val_loss:(?P<loss>[\d.]+) "
                    r"val_bpb:(?P<bpb>[\d.]+)(?P<tail>.*)$")
_STEP = re.compile(r"^step:(?P<step>\d+)/(?P<iters>\d+) (?P<kind>train_loss|val_loss):(?P<loss>[\d.]+)"
                   r".*? train_time:(?P<ms>\d+)ms step_avg:(?P<avg>[\d.]+)ms")
_STOP = re.compile(r"^stopping_early: wallclock_cap train_time:(?P<ms>\d+)ms step:(?P<step>\d+)/(?P<iters>\d+)")
_MODEL = re.compile(r"^Serialized model (?P<fmt>\S+): (?P<bytes>\d+) bytes")
_CODE = re.compile(r"^Code size: (?P<bytes>\d+) bytes")
_TOTAL = re.compile(r"^Total submission size (?P<fmt>\S+): (?P<bytes>\d+) bytes")
_EVAL_MS = re.compile(r"eval_time:(?P<ms>\d+)ms")


@dataclass
class LogFacts:
    """The numbers of one run, read from its rank-0 log."""

    stages: list[dict] = field(default_factory=list)  # {label, val_loss, val_bpb, eval_ms} in log order
    steps: int | None = None
    iterations: int | None = None
    train_time_ms: int | None = None
    step_avg_ms: float | None = None
    stopped_early: bool = False
    model_bytes: int | None = None
    code_bytes: int | None = None
    total_bytes: int | None = None
    fmt: str | None = None

    @property
    def final(self) -> dict:
        """The claimed score: the last stage line (its `_exact` twin's 8 decimals when present)."""
        if not self.stages:
            raise ValueError("the log has no final val_loss/val_bpb stage line")
        return self.stages[-1]


def parse_log(path: str | Path) -> LogFacts:
    """Read the facts of a challenge-format log (the code dump and other ranks' lines are skipped)."""
    facts = LogFacts()
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if m := _STEP.match(line):
            facts.steps, facts.iterations = int(m["step"]), int(m["iters"])
            facts.train_time_ms, facts.step_avg_ms = int(m["ms"]), float(m["avg"])
        elif m := _STOP.match(line):
            facts.stopped_early, facts.train_time_ms = True, int(m["ms"])
            facts.steps, facts.iterations = int(m["step"]), int(m["iters"])
        elif m := _MODEL.match(line):
            facts.fmt, facts.model_bytes = m["fmt"], int(m["bytes"])
        elif m := _CODE.match(line):
            facts.code_bytes = int(m["bytes"])
        elif m := _TOTAL.match(line):
            facts.total_bytes = int(m["bytes"])
        elif m := _STAGE.match(line):
            values = {"val_loss": float(m["loss"]), "val_bpb": float(m["bpb"])}
            if m["exact"] and facts.stages and facts.stages[-1]["label"] == m["label"]:
                facts.stages[-1].update(values)  # same stage, 8 decimals
            elif not m["exact"]:
                eval_ms = _EVAL_MS.search(m["tail"])
                facts.stages.append({"label": m["label"], **values, "eval_ms": int(eval_ms["ms"]) if eval_ms else None})
    return facts


def compare(rerun_log: Path, record_log: Path) -> str:
    """A side-by-side table of a rerun and a record: val_bpb, bytes, step time, train time."""
    ours, theirs = parse_log(rerun_log), parse_log(record_log)
    rows = [  # (name, rerun, record, format of a value, format of the difference)
        ("final stage", ours.final["label"], theirs.final["label"], "{}", None),
        ("val_bpb", ours.final["val_bpb"], theirs.final["val_bpb"], "{:.8f}", "{:+.8f}"),
        ("val_loss", ours.final["val_loss"], theirs.final["val_loss"], "{:.8f}", "{:+.8f}"),
        ("bytes_total", ours.total_bytes, theirs.total_bytes, "{:,d}", "{:+,d}"),
        ("bytes_model", ours.model_bytes, theirs.model_bytes, "{:,d}", "{:+,d}"),
        ("bytes_code", ours.code_bytes, theirs.code_bytes, "{:,d}", "{:+,d}"),
        ("steps", ours.steps, theirs.steps, "{:,d}", "{:+,d}"),
        ("step_avg_ms", ours.step_avg_ms, theirs.step_avg_ms, "{:.2f}", "{:+.2f}"),
        ("train_time_ms", ours.train_time_ms, theirs.train_time_ms, "{:,d}", "{:+,d}"),
        ("eval_time_ms", ours.final["eval_ms"], theirs.final["eval_ms"], "{:,d}", "{:+,d}"),
    ]
    lines = [f"{'':<14}{'rerun':>28}{'record':>28}{'delta':>16}"]
    for name, a, b, shown, delta in rows:
        cells = ["-" if v is None else shown.format(v) for v in (a, b)]
        diff = delta.format(a - b) if delta and a is not None and b is not None else ""
        lines.append(f"{name:<14}{cells[0]:>28}{cells[1]:>28}{diff:>16}")
    return "\n".join(lines)


# -----------------------------------------------------------------------------
# The records-style folder


def write_record(record_dir: Path, log_path: Path, hp: Hyperparameters, *, name: str, track: str, blurb: str,
                 commands: list[str]) -> Path:
    """train.log, submission.json, README.md and the counted code, all from the log of one run."""
    from .quantize import ENTRY_SCRIPT, submission_code_files

    facts = parse_log(log_path)
    final = facts.final
    if facts.total_bytes is None or facts.code_bytes is None:
        raise ValueError(f"{log_path}: no artifact size lines; did the run finish?")
    record_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log_path, record_dir / "train.log")
    code_dir = record_dir / "reference_impl"
    code_dir.mkdir(exist_ok=True)
    for source in submission_code_files():
        shutil.copyfile(source, code_dir / source.name)  # byte for byte: these are the counted code bytes
    (record_dir / "train_gpt.py").write_text(ENTRY_SCRIPT, encoding="utf-8")
    submission = {
        "author": "pgolf-audit reference implementation",
        "github_id": "pgolf-audit",
        "name": name,
        "blurb": blurb,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "track": track,
        "val_loss": final["val_loss"],
        "val_bpb": final["val_bpb"],
        "bytes_total": facts.total_bytes,
        "bytes_code": facts.code_bytes,
        f"bytes_model_{facts.fmt.replace('+', '_')}": facts.model_bytes,
        "seeds": [hp.seed],
    }
    (record_dir / "submission.json").write_text(json.dumps(submission, indent=2) + "\n", encoding="utf-8")
    stage_rows = "\n".join(f"| `{s['label']}` | {s['val_loss']:.8f} | {s['val_bpb']:.8f} | {s['eval_ms']} |"
                           for s in facts.stages)
    code_list = ", ".join(f"`reference_impl/{p.name}`" for p in submission_code_files())
    readme = f"""# {name}

{blurb}

Produced by the pgolf-audit reference implementation (`reference_impl/`). The claimed score is the
last evaluation stage in `train.log`; every number below and in `submission.json` is read from it.

## Results

| stage | val_loss | val_bpb | eval_time (ms) |
|---|---|---|---|
{stage_rows}

- Training: {facts.steps}/{facts.iterations} steps, train_time {facts.train_time_ms} ms
  (step_avg {facts.step_avg_ms} ms){', stopped by the wallclock cap' if facts.stopped_early else ''}.
- Artifact ({facts.fmt}): model {facts.model_bytes:,} bytes + code {facts.code_bytes:,} bytes
  = **{facts.total_bytes:,} bytes** (cap 16,000,000).
- Code bytes are `train_gpt.py` (which runs the package) and the files in `reference_impl/` here
  ({code_list}), copied byte for byte.

## Configuration

Model {hp.num_layers}x{hp.model_dim}, vocab {hp.vocab_size}, heads {hp.num_heads}/{hp.num_kv_heads},
seq_len {hp.train_seq_len}; {hp.train_batch_tokens} tokens/step; seed {hp.seed}; quantization {hp.quant_format};
extra evaluators: {hp.final_evals or 'none'} (stride {hp.eval_stride}, chunk {hp.ttt_chunk_tokens} tokens,
TTT epochs {hp.ttt_epochs} at lr {hp.ttt_lr}, n-gram order {hp.ngram_order} alpha {hp.ngram_alpha}).

## Command

```bash
{chr(10).join(commands)}
```
"""
    (record_dir / "README.md").write_text(readme, encoding="utf-8")
    return record_dir


# -----------------------------------------------------------------------------
# Smoke: everything from the shipped corpus, on CPU


def read_corpus(corpus_dir: Path = CORPUS_DIR) -> list[str]:
    """Documents of the corpus: every paragraph (blank-line separated) of every *.txt file."""
    files = sorted(Path(corpus_dir).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no *.txt corpus files in {corpus_dir}")
    docs = []
    for path in files:
        docs += [p.strip() for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if p.strip()]
    return docs


def build_smoke_data(out_dir: Path, corpus_dir: Path = CORPUS_DIR, vocab_size: int = SMOKE_VOCAB_SIZE,
                     seed: int = 1337) -> tuple[Path, Path]:
    """Tokenizer and shards of the shipped corpus, laid out like the challenge's data folder.
    Returns (dataset dir, tokenizer .model path)."""
    from .data import export_shards
    from .tokenizer import BOS_ID, load_sentencepiece, train_sentencepiece

    docs = read_corpus(corpus_dir)
    random.Random(seed).shuffle(docs)  # a fixed shuffle, like the challenge's frozen document list
    num_val = max(1, round(SMOKE_VAL_FRACTION * len(docs)))
    tokenizer = out_dir / "tokenizers" / f"fineweb_{vocab_size}_bpe.model"
    train_sentencepiece(docs[num_val:], tokenizer, vocab_size)  # the tokenizer never sees validation text
    sp = load_sentencepiece(tokenizer)
    if sp.vocab_size() != vocab_size:
        raise ValueError(f"the corpus supports only {sp.vocab_size()} tokenizer pieces, not {vocab_size}")
    dataset = out_dir / "datasets" / f"fineweb10B_sp{vocab_size}"
    if dataset.exists():
        shutil.rmtree(dataset)
    export_shards((sp.encode(doc) for doc in docs), dataset, num_val_docs=num_val, bos_id=BOS_ID,
                  shard_size=16_384)
    return dataset, tokenizer


def run_smoke(out_dir: Path, *, corpus_dir: Path = CORPUS_DIR, console: bool = True, **overrides) -> Path:
    """The smoke rerun on CPU; keyword overrides change Hyperparameters.smoke() fields.
    Returns the records-style folder."""
    import torch

    from .train import run

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    dataset, tokenizer = build_smoke_data(out_dir / "data", corpus_dir)
    hp = Hyperparameters.smoke(data_path=str(dataset), tokenizer_path=str(tokenizer), out_dir=str(out_dir / "run"),
                               **overrides)
    log_path = Path(hp.out_dir) / "logs" / f"{hp.run_id}.txt"
    log_path.unlink(missing_ok=True)  # the log is appended to: start from an empty one
    threads = torch.get_num_threads()
    # One thread: as fast as several for this small model, and immune to the 10-100x slowdown of OpenMP
    # threads spin-waiting for each other when other processes share the cores.
    torch.set_num_threads(1)
    try:
        run(hp, console=console)
    finally:
        torch.set_num_threads(threads)
    record = write_record(
        out_dir / "record", log_path, hp, name="Reference smoke rerun", track="non_record_16mb",
        blurb=(f"CPU smoke run of the reference pipeline on the project's own small corpus "
               f"({hp.num_layers}x{hp.model_dim}, vocab {hp.vocab_size}); not comparable to FineWeb scores."),
        commands=["python -m reference_impl.rerun --smoke --out runs/smoke"],
    )
    if console:
        print(f"smoke rerun: {time.perf_counter() - t0:.1f}s, record folder {record}")
    return record


# -----------------------------------------------------------------------------
# Full: the Naive Baseline on real data


def run_full(data_dir: Path, tokenizer: Path, out_dir: Path, *, nproc: int | None = None,
             env: dict[str, str] | None = None) -> Path:
    """Run reference_impl.train with the baseline's defaults on the challenge's data (torchrun over
    `nproc` processes, default: every visible GPU) and write the records-style folder."""
    import torch

    data_dir, tokenizer, out_dir = Path(data_dir), Path(tokenizer), Path(out_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data directory not found: {data_dir}")
    nproc = nproc or max(torch.cuda.device_count(), 1)
    run_id = (env or {}).get("RUN_ID") or f"reference_rerun_{datetime.now(UTC):%Y%m%d_%H%M%S}"
    run_dir = out_dir / "run"
    variables = {"DATA_PATH": str(data_dir), "TOKENIZER_PATH": str(tokenizer), "OUT_DIR": str(run_dir),
                 "RUN_ID": run_id, **(env or {})}
    command = [sys.executable, "-m", "reference_impl.train"]
    if nproc > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "reference_impl.train"]
    subprocess.run(command, env={**os.environ, **variables}, check=True)
    hp = Hyperparameters.from_env({**os.environ, **variables})  # what the training processes saw
    shown = " ".join(f"{k}={v}" for k, v in variables.items() if k not in ("OUT_DIR",))
    launcher = (f"torchrun --standalone --nproc_per_node={nproc} -m reference_impl.train" if nproc > 1
                else "python -m reference_impl.train")
    return write_record(
        out_dir / "record", run_dir / "logs" / f"{run_id}.txt", hp, name="Reference rerun of the Naive Baseline",
        track="10min_16mb",
        blurb="The pgolf-audit reference implementation run with the Naive Baseline's configuration "
              "(9x512, vocab 1024, int8+zlib).",
        commands=[f"{shown} \\", f"  {launcher}"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_impl.rerun", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU smoke run on the shipped corpus")
    parser.add_argument("--data", type=Path, help="dataset folder with fineweb_{train,val}_*.bin")
    parser.add_argument("--tokenizer", type=Path, help="SentencePiece .model of the dataset")
    parser.add_argument("--out", type=Path, help="output folder (default runs/smoke or runs/full)")
    parser.add_argument("--nproc", type=int, help="processes for torchrun (default: visible GPUs)")
    parser.add_argument("--compare", type=Path, metavar="RECORD_LOG", help="print the rerun beside this record log")
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR,
                        help="folder of *.txt documents for --smoke (default: the clone's fixtures/text)")
    args = parser.parse_args(argv)
    if args.smoke == bool(args.data):
        parser.error("give either --smoke or --data (with --tokenizer)")
    if args.data and not args.tokenizer:
        parser.error("--data needs --tokenizer")
    if args.smoke:
        record = run_smoke(args.out or Path("runs/smoke"), corpus_dir=args.corpus)
    else:
        record = run_full(args.data, args.tokenizer, args.out or Path("runs/full"), nproc=args.nproc)
    print(f"records folder: {record}")
    if args.compare:
        print(compare(record / "train.log", args.compare))
    return 0


if __name__ == "__main__":
    sys.exit(main())

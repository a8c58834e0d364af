"""``pgolf-audit rerun``: run the reference implementation and audit what it produced.

    pgolf-audit rerun --smoke [--out DIR]                       # CPU, the project's own corpus
    pgolf-audit rerun --data DIR --tokenizer FILE [--nproc 8] [--compare records/.../train.log]

The run writes a records-style folder (train_gpt.py, the reference package, train.log,
submission.json, README.md), which is then audited like any submission; the exit code is
0 when that audit is clean.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auditor.engine import AuditOptions, audit
from auditor.errors import UsageError
from auditor.findings import Verdict
from auditor.report.console import ConsoleReporter

NAME = "rerun"
HELP = "rerun the reference record (train → quantize → evaluate) and audit the result"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_true", help="a small CPU run on the corpus the project ships (30-40 s of CPU time)")
    mode.add_argument("--data", type=Path, help="dataset folder with fineweb_train_*.bin and fineweb_val_*.bin")
    parser.add_argument("--tokenizer", type=Path, help="SentencePiece .model of the dataset (with --data)")
    parser.add_argument("--nproc", type=int, help="processes for torchrun (default: the visible GPUs)")
    parser.add_argument("--out", type=Path, help="output folder (default runs/smoke or runs/full)")
    parser.add_argument("--compare", type=Path, metavar="RECORD_LOG", help="print the rerun beside this record's log")


def run(args: argparse.Namespace) -> int:
    try:
        from reference_impl import rerun as reference
    except ImportError as exc:  # torch, numpy or sentencepiece missing
        raise UsageError(f"rerun needs the runtime extra (pip install 'parameter-golf-auditor[runtime]'): {exc}") from exc
    if args.data and not args.tokenizer:
        raise UsageError("--data needs --tokenizer")
    if args.smoke:
        record = reference.run_smoke(args.out or Path("runs/smoke"))
    else:
        record = reference.run_full(args.data, args.tokenizer, args.out or Path("runs/full"), nproc=args.nproc)
    print(f"records folder: {record}")
    if args.compare:
        print(reference.compare(record / "train.log", args.compare))
    report = audit([record], AuditOptions())
    ConsoleReporter().write(report, sys.stdout, color=None)
    return 0 if all(s.verdict is Verdict.CLEAN for s in report.submissions) else 1

"""Command-line options of the records checks (significance), shared by every audit command."""

from __future__ import annotations

import argparse
from typing import Any

from auditor.errors import UsageError
from auditor.records.stats import RULES


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.replace(";", ",").split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("significance (PG309)")
    group.add_argument(
        "--significance", choices=RULES, default="readme",
        help="readme: beat the baseline by >= 0.005 nats at p < 0.01 (README); "
        "welch: one-sided Welch t-test at p < 0.25 against the previous record (maintainers, #1902)",
    )
    group.add_argument("--baseline-bpb", type=float, metavar="BPB", help="the state-of-the-art val_bpb to beat")
    group.add_argument("--baseline-seeds", type=_floats, metavar="BPB,BPB,…", help="the previous record's per-seed val_bpb")
    group.add_argument("--baseline", metavar="FOLDER", help="the previous record's folder: its logs give the per-seed scores")


def significance_from(args: argparse.Namespace) -> dict[str, Any]:
    """The significance test the records checks run, from the command line (``AuditOptions.significance``)."""
    rule = getattr(args, "significance", "readme")
    seeds = getattr(args, "baseline_seeds", None)
    value = getattr(args, "baseline_bpb", None)
    folder = getattr(args, "baseline", None)
    source = ""
    if folder:
        seeds, source = baseline_from_folder(folder)
    elif seeds:
        source = "--baseline-seeds"
    elif value is not None:
        source = "--baseline-bpb"
    if not seeds and value is None:
        return {"rule": rule}
    return {"rule": rule, "baseline": seeds or [], "baseline_value": value, "source": source}


def baseline_from_folder(folder: str) -> tuple[list[float], str]:
    """Per-seed scores of a records folder, read from its logs as the auditor reads any."""
    from auditor.discover import discover  # avoid an import cycle at start-up
    from auditor.records.analysis import analyse

    bundles = discover([folder])
    if len(bundles) != 1:
        raise UsageError(f"--baseline must be one records folder; {folder} holds {len(bundles)}")
    rows = analyse(bundles[0]).rows
    scores = [r.score.bpb for r in rows if r.score is not None]
    if not scores:
        raise UsageError(f"--baseline {folder}: no per-seed score found in its logs")
    return scores, f"the logs of {bundles[0].path}"

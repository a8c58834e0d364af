"""``pgolf-audit review PATH...``: the review comment for a submission, in Markdown."""

from __future__ import annotations

import argparse
import sys

from auditor.commands.check import add_audit_arguments, options_from
from auditor.engine import audit
from auditor.report.review import ReviewContext, ReviewReporter

NAME = "review"
HELP = "write the review comment (Markdown) for records folders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="records folder(s) to review")
    add_audit_arguments(parser)
    parser.add_argument("-o", "--output", help="write the comment to this file instead of stdout")


def run(args: argparse.Namespace) -> int:
    report = audit(args.paths, options_from(args))
    reproduce = "pgolf-audit review " + " ".join(args.paths) + (" --runtime" if args.runtime else "")
    text = ReviewReporter(ReviewContext(reproduce=reproduce)).render(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0

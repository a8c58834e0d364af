"""``pgolf-audit review``: the review comment for a submission, in Markdown.

Either records folders on disk (``review PATH...``) or the folders a pull request adds, read
from a clone at the PR's head commit (``review --pr N --repo DIR``); the second gives the
comment permalinks at that commit.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from auditor.commands.check import add_audit_arguments, audit_paths, options_from
from auditor.commands.pr import add_repo_arguments, audit_pulls
from auditor.exitcodes import INCOMPLETE, OK
from auditor.errors import UsageError
from auditor.report.review import ReviewContext, ReviewReporter

NAME = "review"
HELP = "write the review comment (Markdown) for records folders or a pull request"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH", help="records folder(s) to review")
    parser.add_argument(
        "--pr", dest="numbers", type=int, action="append", metavar="N",
        help="review what pull request N adds, read from the clone given by --repo (repeatable)",
    )
    add_repo_arguments(parser)
    add_audit_arguments(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write the comment to this file instead of stdout")


def reproduce_line(args: argparse.Namespace) -> str:
    """The command a reader runs to get the same findings."""
    if args.numbers:
        words = ["pgolf-audit", "pr", *map(str, args.numbers), "--repo", "<clone of openai/parameter-golf>"]
        if args.baseline_pr is not None:
            words += ["--baseline-pr", str(args.baseline_pr)]
    else:
        words = ["pgolf-audit", "check", *args.paths]
    if args.runtime:
        words.append("--runtime")
    return " ".join(w if w.startswith("<") else shlex.quote(w) for w in words)


def run(args: argparse.Namespace) -> int:
    if bool(args.paths) == bool(args.numbers):
        raise UsageError("review takes records folder paths or --pr N --repo DIR, not both and not neither")
    options = options_from(args)
    report = audit_pulls(args, options) if args.numbers else audit_paths(args.paths, options)
    text = ReviewReporter(ReviewContext(reproduce=reproduce_line(args))).render(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    for problem in report.not_audited:
        print(f"pgolf-audit: error: not audited: {problem}", file=sys.stderr)
    # the comment is written either way; a missing input is still an error a script must see
    return INCOMPLETE if report.not_audited else OK

"""``pgolf-audit ci``: the gate a pull request's CI (or a pre-commit hook) runs.

    pgolf-audit ci --base BASE_SHA --head HEAD_SHA --out-dir OUT    # in a pull request
    pgolf-audit ci records/track_10min_16mb/2026-05-01_X/train_gpt.py  # pre-commit: staged files

It audits the records folders the change adds (or that hold the given files), once, and
writes workflow annotations to stdout (GitHub Actions) or the console report elsewhere,
appends the review comment to ``$GITHUB_STEP_SUMMARY`` when set, and writes report.json,
report.sarif, report.md and pr.json to ``--out-dir``. The exit code follows ``--fail-level``.
With ``--base``, ``--waivers FILE`` is read as the base commit has it (the pull request cannot
waive its own findings); waivers that match no finding are listed as notes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from auditor.ci import added_folders, folders_of, run_gate, waivers_at
from auditor.commands.check import add_audit_arguments, add_gate_arguments, options_from, summary_line
from auditor.findings import Severity
from auditor.report.console import ConsoleReporter
from auditor.report.review import ReviewContext

NAME = "ci"
HELP = "gate a change: audit the records folders it adds and write every CI output"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE", help="changed files (pre-commit); their records folders are audited")
    parser.add_argument("--repo", type=Path, default=Path("."), help="repository root")
    parser.add_argument("--base", help="base commit of the change (with --head: audit the folders it adds)")
    parser.add_argument("--head", default="HEAD", help="head commit of the change")
    parser.add_argument("--pr", type=int, help="pull request number, for links in the comment")
    parser.add_argument("--out-dir", type=Path, help="write report.json, report.sarif, report.md and pr.json here")
    parser.add_argument(
        "--fail-level", choices=[s.value for s in Severity], default=Severity.ERROR.value,
        help="exit with 1 when an active finding is at or above this severity",
    )
    add_gate_arguments(parser)
    parser.add_argument("--annotations", type=int, default=10, help="annotations per level (GitHub shows ten)")
    parser.add_argument(
        "--format", choices=["auto", "github", "console"], default="auto",
        help="stdout format: GitHub annotations inside GitHub Actions, the console report elsewhere",
    )
    parser.add_argument("--fail-on-unused-waivers", action="store_true",
                        help="exit with 1 when a waiver matches no finding (they are listed as notes either way)")
    add_audit_arguments(parser)


def run(args: argparse.Namespace) -> int:
    root = args.repo.resolve()
    waivers_file, args.waivers = args.waivers, None
    options = options_from(args)
    if waivers_file is not None:
        if args.base:  # a trusted ref: the file as the base commit has it, not as the change edits it
            waivers = waivers_at(root, args.base, _relative(waivers_file, root))
        else:
            from auditor.suppress import load_waivers

            waivers = load_waivers(waivers_file)
        options = dataclasses.replace(options, waivers=tuple(waivers))
    if args.base:
        folders = added_folders(root, args.base, args.head)
        head_sha = _rev(root, args.head)
    else:
        folders = folders_of(_relative(Path(f), root) for f in args.files)
        head_sha = None
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    reproduce = f"pgolf-audit pr {args.pr} --repo <clone of openai/parameter-golf>" if args.pr else ""
    result, annotations = run_gate(
        folders,
        root=root,
        options=options,
        fail_level=args.fail_level,
        allow_tool_errors=args.allow_tool_errors,
        out_dir=args.out_dir,
        annotation_cap=args.annotations,
        context=ReviewContext(reproduce=reproduce),
        summary_file=Path(summary) if summary else None,
        pr=args.pr,
        head_sha=head_sha,
        fail_on_unused_waivers=args.fail_on_unused_waivers,
    )
    in_actions = os.environ.get("GITHUB_ACTIONS") == "true"
    if args.format == "github" or (args.format == "auto" and in_actions):
        print(annotations)
    else:
        ConsoleReporter().write(result.report, sys.stdout, color=None)
    folders_text = ", ".join(result.folders) or "no records folder added"
    print(f"{summary_line(result.report)} [{folders_text}]", file=sys.stderr)
    for waiver in result.unused_waivers:
        print(f"note: unused waiver {waiver.code} {waiver.fingerprint}: it matched no finding", file=sys.stderr)
    return result.exit_code


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _rev(root: Path, rev: str) -> str | None:
    import subprocess

    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", rev], capture_output=True, text=True)
    return done.stdout.strip() or None

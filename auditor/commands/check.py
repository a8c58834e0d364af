"""``pgolf-audit check PATH...``: audit records folders or scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auditor.engine import AuditOptions, audit, count_at_or_above
from auditor.findings import Severity
from auditor.records import options as records_options
from auditor.report import Format
from auditor.results import Report
from auditor.suppress import load_waivers

NAME = "check"
HELP = "audit records folders or train_gpt.py scripts"


def _codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that writes a report."""
    parser.add_argument(
        "-f", "--format", type=Format, choices=list(Format), default=Format.CONSOLE,
        help="output format",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the report to this file instead of stdout")
    parser.add_argument(
        "--fail-level", choices=[s.value for s in Severity], default=Severity.ERROR.value,
        help="exit with 1 when an active finding is at or above this severity",
    )
    parser.add_argument("--exit-zero", action="store_true", help="always exit 0 when the audit ran (advisory runs)")
    parser.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto", help="colour in console output"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose what is checked."""
    parser.add_argument("--select", type=_codes, help="only these codes or code prefixes, comma-separated (e.g. PG1,PG301)")
    parser.add_argument("--ignore", type=_codes, help="skip these codes or code prefixes, comma-separated")
    parser.add_argument(
        "--runtime", action="store_true",
        help="also run the runtime causality harness (executes the submission's code in a sandbox)",
    )
    parser.add_argument("--waivers", type=Path, help="TOML file of waived finding fingerprints, each with a reason")
    parser.add_argument(
        "--no-inline-suppressions", action="store_true",
        help="ignore '# pgolf-audit: ignore[...]' comments in the audited code (for maintainers' gates)",
    )
    parser.add_argument("--debug", action="store_true", help="let internal errors raise with a traceback")
    records_options.add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="records folder(s), track folder(s) or script(s)")
    add_audit_arguments(parser)
    add_output_arguments(parser)


def options_from(args: argparse.Namespace) -> AuditOptions:
    """Audit options from parsed arguments (reads the waivers file)."""
    waivers = load_waivers(args.waivers) if args.waivers else ()
    return AuditOptions(
        select=args.select,
        ignore=args.ignore,
        runtime=args.runtime,
        debug=args.debug,
        waivers=waivers,
        inline_suppressions=not args.no_inline_suppressions,
        significance=records_options.significance_from(args),
    )


def summary_line(report: Report) -> str:
    """``pgolf-audit: 2 submissions: 1 violation, 1 clean (3 errors, 1 warning)``."""
    verdicts: dict[str, int] = {}
    for sub in report.submissions:
        verdicts[sub.verdict.value] = verdicts.get(sub.verdict.value, 0) + 1
    active = [f for f in report.findings if f.counts]
    parts = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "nothing audited"
    errors = sum(f.severity is Severity.ERROR for f in active)
    warnings = sum(f.severity is Severity.WARNING for f in active)
    noun = "submission" if len(report.submissions) == 1 else "submissions"
    return f"pgolf-audit: {len(report.submissions)} {noun}: {parts} ({errors} errors, {warnings} warnings)"


def emit(report: Report, args: argparse.Namespace) -> int:
    """Write the report where asked and return the exit code."""
    reporter = args.format.reporter()
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("w", encoding="utf-8") as handle:
            reporter.write(report, handle, color=False)
    else:
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        reporter.write(report, sys.stdout, color=color)
    if not args.quiet and (args.output or args.format is not Format.CONSOLE):
        print(summary_line(report), file=sys.stderr)
    if args.exit_zero:
        return 0
    return 1 if count_at_or_above(report, args.fail_level) else 0


def run(args: argparse.Namespace) -> int:
    report = audit(args.paths, options_from(args))
    return emit(report, args)

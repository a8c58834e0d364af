"""``pgolf-audit check PATH...``: audit records folders or scripts."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from auditor import registry
from auditor.discover import discover
from auditor.engine import AuditOptions
from auditor.errors import UsageError
from auditor.exitcodes import exit_code
from auditor.findings import Severity
from auditor.records import options as records_options
from auditor.report import Format
from auditor.results import Report
from auditor.suppress import load_waivers

NAME = "check"
HELP = "audit records folders or train_gpt.py scripts"


#: What the runtime harness imports in this interpreter (the ``runtime`` extra).
RUNTIME_MODULES = ("torch", "numpy")
RUNTIME_INSTALL = "python -m pip install 'parameter-golf-auditor[runtime]'"


def code_ranges() -> str:
    """The catalogue's codes as ranges: ``PG101-PG112, PG201-PG206, …``."""
    families: dict[str, list[str]] = {}
    for code in sorted(registry.all_rules()):
        families.setdefault(code[:3], []).append(code)
    return ", ".join(f"{c[0]}-{c[-1]}" if len(c) > 1 else c[0] for c in families.values())


def check_codes(codes: list[str], option: str) -> list[str]:
    """Codes or prefixes as given, upper-cased; a UsageError for one that matches no rule."""
    known = registry.all_rules()
    unknown = [c for c in codes if not any(k.startswith(c) for k in known)]
    if unknown:
        raise UsageError(
            f"{option}: unknown code or prefix {', '.join(unknown)}; the codes are {code_ranges()}, "
            "and any prefix of them selects a family (PG1 static, PG2 runtime, PG3 records, PG9 tool results)"
        )
    return codes


def _codes(text: str) -> list[str]:
    return [c.strip().upper() for c in text.split(",") if c.strip()]


def missing_runtime_modules() -> list[str]:
    """Modules of the runtime extra this interpreter lacks (none when another interpreter runs it)."""
    if os.environ.get("PGOLF_AUDIT_RUNTIME_PYTHON"):
        return []  # the harness runs under that interpreter, which brings its own torch
    missing = []
    for name in RUNTIME_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # ValueError: a module entry without a spec
            found = False
        if not found:
            missing.append(name)
    return missing


def require_runtime_extra(what: str) -> None:
    """A UsageError naming the install command when the runtime harness cannot run here."""
    missing = missing_runtime_modules()
    if missing:
        raise UsageError(
            f"{what} needs the runtime extra ({', '.join(missing)} not installed): {RUNTIME_INSTALL}"
        )


def add_gate_arguments(parser: argparse.ArgumentParser) -> None:
    """``--allow-tool-errors``: for gates that accept a partial audit."""
    parser.add_argument(
        "--allow-tool-errors", action="store_true",
        help="exit 0 even when an active PG9xx finding says part of a submission was not audited "
        "(by default such a finding exits with 2)",
    )


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that writes a report."""
    parser.add_argument(
        "-f", "--format", type=Format, choices=list(Format), default=Format.CONSOLE,
        help="output format",
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to this file instead of stdout")
    parser.add_argument(
        "--fail-level", choices=[s.value for s in Severity], default=Severity.ERROR.value,
        help="exit with 1 when an active finding is at or above this severity",
    )
    parser.add_argument("--exit-zero", action="store_true", help="always exit 0 when the audit ran (advisory runs)")
    add_gate_arguments(parser)
    parser.add_argument(
        "--color", choices=["auto", "always", "never"], default="auto", help="colour in console output"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    """Options that choose what is checked."""
    parser.add_argument("--select", type=_codes, metavar="CODES", help="only these codes or code prefixes, comma-separated (e.g. PG1,PG301)")
    parser.add_argument("--ignore", type=_codes, metavar="CODES", help="skip these codes or code prefixes, comma-separated")
    parser.add_argument(
        "--runtime", action="store_true",
        help="also run the runtime causality harness (executes the submission's code in a sandbox)",
    )
    parser.add_argument("--waivers", type=Path, metavar="FILE", help="TOML file of waived finding fingerprints, each with a reason")
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
    if args.runtime:
        require_runtime_extra("--runtime")
    return AuditOptions(
        select=check_codes(args.select, "--select") if args.select else None,
        ignore=check_codes(args.ignore, "--ignore") if args.ignore else None,
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
        reporter.write(report, sys.stdout, color={"always": True, "never": False}.get(args.color))
    if not args.quiet and (args.output or args.format is not Format.CONSOLE):
        print(summary_line(report), file=sys.stderr)
    for problem in report.not_audited:
        print(f"pgolf-audit: error: not audited: {problem}", file=sys.stderr)
    return exit_code(
        report,
        fail_level=args.fail_level,
        allow_tool_errors=args.allow_tool_errors,
        not_audited=report.not_audited,
        exit_zero=args.exit_zero,
    )


def split_present(paths: list[str]) -> tuple[list[str], list[str]]:
    """The paths that exist, and a message for each one that does not (all missing: a UsageError)."""
    present = [p for p in paths if os.path.lexists(p)]
    missing = [f"no such file or directory: {p}" for p in paths if p not in present]
    if not present:
        raise UsageError("; ".join(missing))
    return present, missing


def audit_paths(paths: list[str], options: AuditOptions, *, quiet: bool = False) -> Report:
    """Audit the paths that exist; the others are listed in the report's ``not_audited``.

    Runtime audits show their progress on stderr when it is a terminal (not with ``quiet``).
    """
    from auditor.commands.progress import audit_with_progress  # imports the runtime harness

    present, missing = split_present(paths)
    report = audit_with_progress(discover(present), options, quiet=quiet)
    report.not_audited = missing
    return report


def run(args: argparse.Namespace) -> int:
    return emit(audit_paths(args.paths, options_from(args), quiet=args.quiet), args)

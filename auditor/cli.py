"""The ``pgolf-audit`` command line (also ``python -m auditor``).

Exit codes (:mod:`auditor.exitcodes`): 0 when everything asked for was audited and nothing
that counts is at or above ``--fail-level``, 1 when something is (a violation, or whatever the
level says), 2 for a usage or tool error: a missing input, or a PG9xx finding saying part of a
submission was not audited (unless ``--allow-tool-errors``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from auditor import __version__
from auditor.errors import UsageError

#: Subcommand modules under auditor.commands, in the order ``--help`` lists them.
COMMANDS = ("check", "causality", "review", "ci", "pr", "triage", "rerun", "rules", "explain")


class HelpFormatter(argparse.HelpFormatter):
    """Shows an option's default once: where the help text does not already say it, and only
    when there is one (no "(default: None)" or "(default: False)")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, argparse.SUPPRESS) or default == []:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgolf-audit",
        description="Decide whether a Parameter Golf submission plays by the rules, by evidence.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgolf-audit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"auditor.commands.{name}")
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit with 2 here
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"pgolf-audit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgolf-audit: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the auditor's own failure: one line, not a traceback
        if getattr(args, "debug", False):
            raise
        print(f"pgolf-audit: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

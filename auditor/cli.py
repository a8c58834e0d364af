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
from pathlib import Path

from auditor import __version__
from auditor.config import Config
from auditor.config import at_commit as config_at_commit
from auditor.config import discover as discover_config
from auditor.errors import UsageError

#: Subcommand modules under auditor.commands, in the order ``--help`` lists them.
COMMANDS = ("check", "causality", "review", "ci", "pr", "triage", "rerun", "rules", "explain")
#: Commands that read ``[tool.pgolf-audit]`` from pyproject.toml (auditor.config).
CONFIGURED = ("check", "causality", "review", "ci", "pr", "triage")


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


def build_parser(config: Config | None = None, commands: tuple[str, ...] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of ``commands`` (all by default); ``config`` supplies defaults that the
    command line overrides."""
    parser = argparse.ArgumentParser(
        prog="pgolf-audit",
        description="Decide whether a Parameter Golf submission plays by the rules, by evidence.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pgolf-audit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in commands:
        module = importlib.import_module(f"auditor.commands.{name}")
        command = sub.add_parser(
            module.NAME, help=module.HELP, description=module.HELP,
            formatter_class=HelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
        if name in CONFIGURED:
            command.add_argument(
                "--isolated", action="store_true", help="ignore [tool.pgolf-audit] in pyproject.toml files"
            )
            if config is not None:
                dests = {action.dest for action in command._actions}
                command.set_defaults(**{k: v for k, v in config.defaults.items() if k in dests})
    return parser


def configuration(args: argparse.Namespace) -> Config:
    """The ``[tool.pgolf-audit]`` table that applies to this command line (see auditor.config)."""
    if args.command not in CONFIGURED or args.isolated:
        return Config()
    if args.command == "ci" and args.base:
        return config_at_commit(Path(args.repo), args.base)
    starts = [*(getattr(args, "paths", None) or ()), *(getattr(args, "files", None) or ())]
    existing = [Path(p) for p in starts if Path(p).exists()]
    start = existing[0] if existing else Path(getattr(args, "repo", None) or ".")
    return discover_config(start)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line, with the defaults of the pyproject.toml that applies to it."""
    argv = sys.argv[1:] if argv is None else argv
    # a command line that starts with a command needs that command's module only (each
    # imports what it runs: the runtime harness, the git plumbing, ...); anything else, such
    # as --help or a mistyped command, gets the parser of every command
    commands = (argv[0],) if argv and argv[0] in COMMANDS else COMMANDS
    args = build_parser(commands=commands).parse_args(argv)  # usage errors exit with 2 here
    config = configuration(args)
    if config.defaults:
        args = build_parser(config, commands).parse_args(argv)
    args.config = config.path
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = parse_args(argv)
    except UsageError as exc:  # a malformed [tool.pgolf-audit]
        print(f"pgolf-audit: error: {exc}", file=sys.stderr)
        return 2
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

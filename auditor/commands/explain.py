"""``pgolf-audit explain CODE``: print one rule's documentation."""

from __future__ import annotations

import argparse

from rich.console import Console

from auditor import registry
from auditor.catalogue_doc import rule_markdown
from auditor.errors import UsageError

NAME = "explain"
HELP = "print the documentation of one rule (e.g. PG901)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("code", help="rule code, e.g. PG901, or its name")
    parser.add_argument("--raw", action="store_true", help="print the Markdown source instead of rendering it")


def find_rule(key: str):
    """A rule by code (case-insensitive) or by name."""
    rules = registry.all_rules()
    if key.upper() in rules:
        return rules[key.upper()]
    for rule in rules.values():
        if rule.NAME == key.lower():
            return rule
    raise UsageError(f"no rule named {key!r}; see 'pgolf-audit rules'")


def run(args: argparse.Namespace) -> int:
    text = rule_markdown(find_rule(args.code))
    if args.raw:
        print(text)
    else:
        # Imported here: rich.markdown pulls in markdown-it (about 75 ms), which every other
        # command, each of which builds this parser, would pay for at start-up.
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    return 0

"""``pgolf-audit rules``: list the rule catalogue."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

from auditor import registry
from auditor.catalogue_doc import catalogue_markdown

NAME = "rules"
HELP = "list the rules of the catalogue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["table", "json", "markdown"], default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    rules = registry.all_rules().values()
    if args.format == "json":
        data = [
            {
                "code": r.CODE, "name": r.NAME, "kind": r.KIND, "severity": r.SEVERITY.value,
                "confidence": r.CONFIDENCE.value, "tags": list(r.TAGS), "sources": list(r.SOURCES),
                "summary": r.summary(),
            }
            for r in rules
        ]
        print(json.dumps(data, indent=2))
        return 0
    if args.format == "markdown":
        sys.stdout.write(catalogue_markdown())
        return 0
    table = Table(title="pgolf-audit rules")
    for column in ("code", "name", "kind", "severity", "confidence", "tags", "what it does"):
        table.add_column(column, overflow="fold")
    for r in rules:
        table.add_row(r.CODE, r.NAME, r.KIND, r.SEVERITY.value, r.CONFIDENCE.value, ", ".join(r.TAGS), r.summary())
    Console(width=max(120, Console().width)).print(table)
    return 0

"""``pgolf-audit rules``: list the rule catalogue."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from auditor import registry
from auditor.catalogue_doc import catalogue_markdown
from auditor.report.console import write_trimmed

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
    # one block per rule, its summary indented below: readable at any terminal width (a table
    # of seven columns is not, at 80), the tags are in the JSON
    def draw(console: Console) -> None:
        for r in rules:
            head = Text(f"{r.CODE} ", style="bold")
            head.append(r.NAME, style="bold")
            head.append(f"  {r.KIND}, {r.SEVERITY.value}, {r.CONFIDENCE.value} confidence", style="dim")
            console.print(head)
            console.print(Padding(Text(r.summary()), (0, 0, 0, 4)))

    write_trimmed(sys.stdout, draw)
    return 0

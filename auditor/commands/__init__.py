"""Subcommands of ``pgolf-audit``: one module each, with ``add_parser`` and ``run``.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``
(the exit code). :mod:`auditor.cli` lists them in :data:`COMMANDS`.
"""

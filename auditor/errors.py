"""Errors the command line reports in one line with exit code 2."""


class UsageError(Exception):
    """The command cannot run as asked: a missing path, a malformed waivers file, an unknown rule."""

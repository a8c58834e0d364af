"""PG902 undecodable-file."""

from auditor.findings import Confidence, Severity
from auditor.rule import Invalid, ToolRule, Valid


class UndecodableFile(ToolRule):
    """
    ## What it does
    Reports a file that should be text but is not: binary bytes (NUL) in a script, a log or
    submission.json, or a script that is not valid UTF-8 and declares no other encoding.

    ## Why is this bad?
    The auditor cannot read what it cannot decode. A script it cannot read is not analysed
    at all; a log with binary bytes is read with those bytes replaced, which may hide lines.

    ## Example
    A `train_gpt.py` saved in Latin-1 without a `# coding: latin-1` line, or a log file
    that is really a compressed archive.

    ## Use instead
    Save sources as UTF-8 (or declare the encoding in the first two lines, PEP 263) and
    commit logs as plain text.

    ## References
    - PEP 263, "Defining Python Source Code Encodings".
    """

    CODE = "PG902"
    NAME = "undecodable-file"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ()
    TAGS = ("tool",)
    VALID = (Valid(files={"train_gpt.py": "# coding: latin-1\nname = 'caf\xe9'\n".encode("latin-1")}),)
    INVALID = (
        Invalid(files={"train_gpt.py": b"x = '\xff\xfe'\n"}, note="not UTF-8"),
        Invalid(files={"train_gpt.py": b"import os\x00\x00\x01"}, note="binary"),
    )

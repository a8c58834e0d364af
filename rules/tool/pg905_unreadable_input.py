"""PG905 unreadable-input."""

from auditor.findings import Confidence, Severity
from auditor.rule import Invalid, ToolRule, Valid


class UnreadableInput(ToolRule):
    """
    ## What it does
    Reports input that could not be read at all: a file that disappears or cannot be opened
    (permissions, not a regular file), a folder that cannot be listed, or a folder with
    nothing to audit in it.

    ## Why is this bad?
    What cannot be read cannot be checked; the audit of the rest goes on, and this finding
    says what was left out.

    ## Example
    `pgolf-audit check records/empty_folder/`

    ## Use instead
    Point the auditor at a records folder (with `train_gpt.py`, `submission.json` and logs)
    or at a script it can read.

    ## References
    - README, "Submission Process".
    """

    CODE = "PG905"
    NAME = "unreadable-input"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README",)
    TAGS = ("tool",)
    VALID = (Valid(code="x = 1\n"),)
    INVALID = (Invalid(files={"notes.bin": b"\x00"}, note="a folder with nothing to audit"),)
    # Unreadable files and folders depend on the file system: tests/test_bad_input.py.
    TESTED_IN = ("tests/test_bad_input.py",)

"""PG903 file-not-analysed."""

from auditor.findings import Confidence, Severity
from auditor.rule import Invalid, ToolRule, Valid


class FileNotAnalysed(ToolRule):
    """
    ## What it does
    Reports a script the auditor did not analyse because of its size: an empty main script,
    or a Python file larger than the parse limit (4,000,000 bytes).

    ## Why is this bad?
    An empty script cannot have produced the logs it ships with; a script beyond the limit
    is far larger than any real submission (the largest seen is about 160 KB) and is not
    parsed, so none of its code was checked.

    ## Example
    A records folder whose `train_gpt.py` is 0 bytes, or a 20 MB generated script.

    ## Use instead
    Ship the script that produced the logs.

    ## References
    - README, "Submission Process": the folder holds the `train_gpt.py` that was run.
    """

    CODE = "PG903"
    NAME = "file-not-analysed"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README",)
    TAGS = ("tool",)
    VALID = (Valid(code="x = 1\n"),)
    INVALID = (Invalid(files={"train_gpt.py": b""}, note="empty"),)

"""PG906 invalid-json."""

from auditor.findings import Confidence, Severity
from auditor.rule import Invalid, ToolRule, Valid


class InvalidJson(ToolRule):
    """
    ## What it does
    Reports a `submission.json` that is not valid JSON (or not a JSON object), with the line
    and column where parsing failed.

    ## Why is this bad?
    submission.json carries the claim — `val_bpb`, `bytes_total`, seeds — that the records
    validator checks against the logs. An unreadable claim cannot be checked.

    ## Example
    ```json
    {"val_bpb": 1.2244, "bytes_total": 15863489,}
    ```

    ## Use instead
    ```json
    {"val_bpb": 1.2244, "bytes_total": 15863489}
    ```

    ## References
    - README, "Submission Process": submission.json with name, GitHub ID, `val_bpb` and
      related metadata.
    """

    CODE = "PG906"
    NAME = "invalid-json"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README",)
    TAGS = ("tool", "format")
    VALID = (Valid(files={"submission.json": '{"val_bpb": 1.2244, "bytes_total": 15863489}'}),)
    INVALID = (
        Invalid(files={"submission.json": '{"val_bpb": 1.2244, "bytes_total": 15863489,}'}, note="trailing comma"),
        Invalid(files={"submission.json": "[1.2244]"}, note="not an object"),
        Invalid(files={"submission.json": b"\xff\xfe{}"}, note="not UTF-8"),
    )

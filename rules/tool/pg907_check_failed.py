"""PG907 check-failed."""

from auditor.findings import Confidence, Severity
from auditor.rule import ToolRule


class CheckFailed(ToolRule):
    """
    ## What it does
    Reports a check of the auditor that stopped with an internal error on this submission.
    The error is caught, the other checks run, and this finding names the check that did not.

    ## Why is this bad?
    Whatever that check would have found is unknown, so the submission cannot be called
    clean. It is a bug in the auditor: please report it with the finding's evidence.

    ## Example
    A log-parsing check meeting a line shape it did not expect.

    ## Use instead
    Nothing to change in the submission; rerun with `--debug` for the traceback.

    ## References
    - The auditor's rule: nothing is dropped silently; a check that could not run says so.
    """

    CODE = "PG907"
    NAME = "check-failed"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ()
    TAGS = ("tool",)
    # Needs a check that crashes: tests/test_engine.py registers one.
    TESTED_IN = ("tests/test_engine.py",)

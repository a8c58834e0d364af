"""PG901 python-does-not-parse."""

from auditor.findings import Confidence, Severity
from auditor.rule import Invalid, ToolRule, Valid


class PythonDoesNotParse(ToolRule):
    """
    ## What it does
    Reports a Python source of the submission that Python 3 cannot parse: a syntax error,
    Python 2 code, or a decoded wrapper payload that is not valid Python.

    ## Why is this bad?
    A file that does not parse cannot be analysed, so nothing the static checks would have
    found in it is known; and the README requires that `train_gpt.py` "must successfully
    compile and run within the records folder".

    ## Example
    ```python
    print "final val_bpb", bpb   # Python 2
    ```

    ## Use instead
    ```python
    print("final val_bpb", bpb)
    ```

    ## References
    - README, "Submission Process": the script must compile and run in the records folder.
    """

    CODE = "PG901"
    NAME = "python-does-not-parse"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README",)
    TAGS = ("tool", "format")
    VALID = (Valid(code="print('final val_bpb', 1.2)\n"),)
    INVALID = (
        Invalid(code="print 'final val_bpb', 1.2\n", note="Python 2"),
        Invalid(code="def f(:\n    pass\n", note="syntax error"),
    )

"""PG908 runtime-inconclusive."""

from auditor.findings import Confidence, Severity
from auditor.rule import ToolRule


class RuntimeInconclusive(ToolRule):
    """
    ## What it does
    Reports that the runtime causality harness (`--runtime`, `pgolf-audit causality`) could
    not reach a conclusion on this submission, and why: the script did not import or stopped
    at a line (a missing package, a GPU-only kernel on the evaluation path), no evaluation
    function was found, the captured per-token losses did not add up to the loss the
    evaluation returned, a probe could not run within the time budget, the sandbox refused
    something the run needed, the run's result channel carried something unexpected, or no
    sandbox is available ("no sandbox available (install bubblewrap)": then the submission's
    code is not run at all).

    ## Why is this bad?
    Nothing is wrong with the submission because of it: the conditions C1-C4 of issue #1017
    were neither proved nor refuted at runtime. The static and records checks still apply; a
    reviewer has to judge the evaluation path.

    ## Example
    A script whose evaluation calls a Triton kernel that has no CPU path.

    ## Use instead
    Nothing to change in the submission. An eager (non-Triton) path for the evaluation lets
    the harness run it. Where the sandbox is missing, install bubblewrap (README, "The
    sandbox").

    ## References
    - Issue #1017 (the conditions the harness tests).
    """

    CODE = "PG908"
    NAME = "runtime-inconclusive"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("#1017",)
    TAGS = ("tool",)
    # Needs a sandboxed run of a fixture that cannot be concluded on.
    TESTED_IN = ("tests/runtime/test_rules.py",)

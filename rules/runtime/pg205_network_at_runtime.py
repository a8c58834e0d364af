"""PG205 network-at-runtime."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.runtime.base import RuntimeRule


class NetworkAtRuntime(RuntimeRule):
    """
    ## What it does
    Reports a network access that the sandbox stopped while the submission ran: a socket
    connection, a name lookup, a URL fetch. The sandbox refuses every one of them, so the
    attempt is observed, not inferred from the code.

    ## Why is this bad?
    "No external downloads, training dataset access, or network calls are allowed during
    evaluation. The artifact must be fully self-contained." Whatever comes over the network
    (weights, statistics, validation text) is not paid for in the 16 MB.

    ## Example
    ```python
    urllib.request.urlopen("https://example.com/extra_weights.bin")
    ```

    ## Use instead
    Put everything the evaluation needs into the artifact.

    ## References
    - README, "Restrictions on evaluation": no network calls during evaluation.
    """

    CODE = "PG205"
    NAME = "network-at-runtime"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README",)
    TAGS = ("network",)
    VALID = (Valid(folder="fixtures/runtime/legal_sliding"),)
    INVALID = (Invalid(folder="fixtures/runtime/network"),)

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        result = self.causality(evidence)
        seen = set()
        for event in result.sandbox_events:
            if event.get("kind") != "network" or not event.get("blocked"):
                continue
            detail = str(event.get("detail", ""))
            if detail in seen:
                continue
            seen.add(detail)
            yield self.finding(
                f"the submission tried to reach the network while it ran (stopped by the sandbox): {detail}",
                self.location(bundle, result),
                evidence={"attempt": detail},
                key=detail,
            )

"""The claim's per-seed scores tested against a baseline (the analysis behind PG309).

The test is part of the evidence (``Evidence.significance``), so the report shows its outcome
whichever checks ran; PG309 only turns a failed or undecided test into a finding.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auditor.records.analysis import RecordsAnalysis
from auditor.records.stats import Significance, test_claim


@dataclass(frozen=True)
class ClaimTest:
    """The significance test of one submission's claim."""

    result: Significance
    per_seed: dict[str, float]
    #: A baseline was given (``--baseline…``); without one nothing is tested.
    baseline_given: bool
    #: Where the baseline came from, as the user gave it.
    source: str | None

    def summary(self) -> dict[str, Any]:
        """The test as a report fact."""
        out = self.result.to_dict() | {"baseline_source": self.source}
        return {k: v for k, v in out.items() if v is not None}


def claim_test(records: RecordsAnalysis, options: Mapping[str, Any]) -> ClaimTest:
    """Test the per-seed scores of the logs (one per seed) under ``options`` (``rule``,
    ``baseline``, ``baseline_value``, ``source``: the significance context of the audit)."""
    rows = [r for r in records.rows if r.score is not None]
    by_seed: dict[str, float] = {}
    for row in rows:
        by_seed.setdefault(row.seed, row.score.bpb)  # type: ignore[union-attr]
    ratios = [bt for r in rows if (bt := r.bytes_per_token())]
    family = records.family
    bt = statistics.median(ratios) if ratios else (family.bytes_per_token[0] if family else None)
    result = test_claim(
        list(by_seed.values()),
        rule=options.get("rule", "readme"),
        baseline=options.get("baseline") or None,
        baseline_value=options.get("baseline_value"),
        bytes_per_token=bt,
    )
    given = bool(options.get("baseline")) or options.get("baseline_value") is not None
    return ClaimTest(result, by_seed, given, options.get("source"))

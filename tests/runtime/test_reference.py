"""The positive control: every evaluator of the reference implementation passes every probe.

Runs when ``reference_impl.evaluate`` is present in the checkout (it lands with the reference
implementation); skipped otherwise.
"""

from __future__ import annotations

import pytest

from auditor.runtime import probes, reference

pytestmark = pytest.mark.skipif(not reference.available(), reason="reference_impl.evaluate is not in this checkout")


def test_every_reference_evaluator_passes_every_probe():
    plan = probes.ProbePlan(random_cuts=1, substitution_positions=1)
    results = reference.run(vocab=64, length=384, budget_s=150.0, plan=plan)
    assert set(results) == {"score_plain", "score_sliding", "score_ttt", "score_ngram_mixer"}
    for name, rows in results.items():
        statuses = {r.probe: r.status for r in rows}
        assert "fail" not in statuses.values(), (name, reference.table({name: rows}))
        assert statuses.get("determinism") == "pass" and statuses.get("future") == "pass", (name, statuses)
        assert statuses.get("substitution") == "pass", (name, statuses)

"""Significance of a record claim against the previous record, by the two rules in use.

- ``readme``: the README's rule — beat the state of the art by at least 0.005 nats at
  p < 0.01 (one-sided). The margin is per token: 0.005 nats = 0.005 / (ln 2 · B/T) bpb, with
  B/T the bytes per token of the submission's own logs (e.g. 0.0019 bpb for sp8192); when
  B/T is unknown, nats per byte (0.0072 bpb) are used and the result says so.
- ``welch``: the rule maintainers applied when they rebuilt the leaderboard (#1902,
  2026-04-28): a one-sided Welch t-test against the previous record's per-seed scores,
  p < 0.25, no margin.

Against per-seed scores of the previous record the test is Welch's two-sample t-test;
against a single value (a SOTA figure) it is a one-sample t-test. Both come from scipy;
without scipy the result says "scipy not installed" and nothing is decided.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

RULES = ("readme", "welch")
README_MARGIN_NATS = 0.005
README_P = 0.01
WELCH_P = 0.25


@dataclass
class Significance:
    rule: str
    decided: bool
    passed: bool | None = None
    p_value: float | None = None
    threshold: float | None = None
    test: str = ""
    n: int = 0
    mean: float | None = None
    baseline_mean: float | None = None
    baseline_n: int = 0
    margin_bpb: float = 0.0
    units: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v not in (None, "", {}, [])}
        out["decided"] = self.decided
        return out

    def describe(self) -> str:
        rule = "README rule (>= 0.005 nats at p < 0.01)" if self.rule == "readme" else "one-sided Welch, p < 0.25 (#1902)"
        if not self.decided:
            return f"{rule}: not tested ({self.reason})"
        verdict = "significant" if self.passed else "not significant"
        return (
            f"{rule}: {verdict}, p = {self.p_value:.4g} ({self.test}, n = {self.n}, mean {self.mean:.5f} "
            f"vs {self.baseline_mean:.5f}{f', margin {self.margin_bpb:.5f} bpb ({self.units})' if self.margin_bpb else ''})"
        )


def scipy_stats():
    try:
        from scipy import stats  # optional dependency
    except ImportError:
        return None
    return stats


def test_claim(
    values: list[float],
    *,
    rule: str = "readme",
    baseline: list[float] | None = None,
    baseline_value: float | None = None,
    bytes_per_token: float | None = None,
) -> Significance:
    """Test whether ``values`` (per-seed bpb, lower is better) beat the baseline under ``rule``."""
    if rule not in RULES:
        raise ValueError(f"unknown significance rule {rule!r}; choose from {', '.join(RULES)}")
    result = Significance(rule=rule, decided=False, n=len(values))
    if rule == "readme":
        if bytes_per_token:
            result.margin_bpb = README_MARGIN_NATS / (math.log(2.0) * bytes_per_token)
            result.units = f"nats per token at {bytes_per_token:.4f} bytes per token"
        else:
            result.margin_bpb = README_MARGIN_NATS / math.log(2.0)
            result.units = "nats per byte (bytes per token unknown)"
        result.threshold = README_P
    else:
        result.threshold = WELCH_P
    if not values:
        result.reason = "no per-seed scores in the logs"
        return result
    result.mean = statistics.fmean(values)
    base = [float(x) for x in (baseline or [])]
    if not base and baseline_value is None:
        result.reason = "no baseline given"
        return result
    result.baseline_mean = statistics.fmean(base) if base else float(baseline_value)  # type: ignore[arg-type]
    result.baseline_n = len(base)
    if len(values) < 2:
        result.reason = "one seed: a t-test needs at least two"
        result.decided, result.passed = True, False
        result.p_value = 1.0
        result.test = "none"
        return result
    stats = scipy_stats()
    if stats is None:
        result.reason = "scipy not installed (pip install 'parameter-golf-auditor[stats]')"
        return result
    shifted = [v + result.margin_bpb for v in values]
    if len(base) >= 2:
        result.test = "one-sided Welch two-sample t-test"
        if statistics.pstdev(shifted) == 0 and statistics.pstdev(base) == 0:
            p = 0.0 if statistics.fmean(shifted) < result.baseline_mean else 1.0
        else:
            p = float(stats.ttest_ind(shifted, base, equal_var=False, alternative="less").pvalue)
    else:
        target = base[0] if base else float(baseline_value)  # type: ignore[arg-type]
        result.test = "one-sided one-sample t-test against the baseline value"
        if statistics.pstdev(shifted) == 0:
            p = 0.0 if shifted[0] < target else 1.0
        else:
            p = float(stats.ttest_1samp(shifted, target, alternative="less").pvalue)
    if math.isnan(p):
        p = 1.0
    result.p_value = p
    result.decided = True
    result.passed = p < result.threshold
    return result

"""Static rules on decoded payloads: findings point into the payload, decoded exec calls are not PG110."""

from __future__ import annotations

from auditor.engine import AuditOptions, audit

from ..conftest import FIXTURES


def test_decoded_wrapper_is_analysed_and_not_dynamic_code():
    report = audit([FIXTURES / "wrappers" / "lzma_b85"], AuditOptions(select=["PG1"]))
    codes = [f.code for f in report.findings]
    assert "PG110" not in codes
    network = next(f for f in report.findings if f.code == "PG109")
    assert network.location.decoded_from is not None
    assert network.snippet.startswith("return urllib.request.urlopen(url).read()")

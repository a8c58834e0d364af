"""JSON: the contract other tools read.

``{"tool": {"name", "version"}, "submissions": [{"path", "verdict", "findings": [...],
"seeds": [...]}]}``; each finding carries its code, name, severity, confidence, status, tags,
message, location and evidence (see :meth:`auditor.findings.Finding.to_dict`).
"""

from __future__ import annotations

import json

from auditor.report.base import Reporter, escape_surrogates
from auditor.results import Report


class JsonReporter(Reporter):
    """Machine-readable output."""

    def render(self, report: Report) -> str:
        return escape_surrogates(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, sort_keys=False), in_json=True)

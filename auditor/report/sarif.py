"""SARIF 2.1.0 for GitHub code scanning and other consumers.

Rules carry their full documentation; results carry a line-free partial fingerprint so that
alerts survive edits elsewhere in the file. Findings in a decoded wrapper payload are placed
at the wrapper line (the file that exists in the repository) and name the decoded line.
Suppressed findings carry a SARIF ``suppressions`` entry; inactive ones (code switched off by
its defaults) are ``informational`` results with level ``none``.
"""

from __future__ import annotations

import json
from typing import Any

from auditor import registry
from auditor.findings import Finding, Severity, Status
from auditor.report.base import Reporter, escape_surrogates, source_url
from auditor.results import Report

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}
PRECISION = {"high": "high", "medium": "medium", "low": "low"}
INFORMATION_URI = "https://github.com/openai/parameter-golf"


def _rule_descriptor(code: str) -> dict[str, Any]:
    rule = registry.get(code)
    doc = rule.doc()
    links = [url for url in (source_url(s) for s in rule.SOURCES) if url]
    return {
        "id": rule.CODE,
        "name": rule.NAME,
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": rule.summary()},
        "help": {"text": doc, "markdown": doc + ("\n\n" + "\n".join(f"- {u}" for u in links) if links else "")},
        "defaultConfiguration": {"level": LEVEL[rule.SEVERITY]},
        "properties": {
            "tags": list(rule.TAGS),
            "precision": PRECISION[rule.CONFIDENCE.value],
            "sources": list(rule.SOURCES),
            "kind": rule.KIND,
        },
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    loc = finding.location
    message = finding.message
    if loc.decoded_from is not None:
        message += f" (decoded payload line {loc.line}; layers {' → '.join(loc.decoded_from.layers)})"
    physical: dict[str, Any] = {"artifactLocation": {"uri": loc.path, "uriBaseId": "%SRCROOT%"}}
    line = loc.physical_line
    if line is not None:
        region: dict[str, Any] = {"startLine": line}
        if loc.decoded_from is None and loc.column is not None:
            region["startColumn"] = loc.column + 1
        if finding.snippet and loc.decoded_from is None:
            region["snippet"] = {"text": finding.snippet}
        physical["region"] = region
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": LEVEL[finding.severity],
        "message": {"text": message},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {"pgolfAudit/v1": finding.fingerprint},
        "properties": {
            "confidence": finding.confidence.value,
            "status": finding.status.value,
            "tags": list(finding.tags),
            "evidence": finding.to_dict()["evidence"],
        },
    }
    if loc.decoded_from is not None:
        result["properties"]["decodedLine"] = loc.line
        result["properties"]["decodedLayers"] = list(loc.decoded_from.layers)
    if finding.status is Status.SUPPRESSED:
        kind = "external" if finding.status_reason.startswith("waived") else "inSource"
        result["suppressions"] = [{"kind": kind, "justification": finding.status_reason}]
    elif finding.status is Status.INACTIVE:
        result["kind"] = "informational"
        result["level"] = "none"
        result["properties"]["inactiveReason"] = finding.status_reason
    return result


def to_sarif(report: Report) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log (a dict)."""
    codes = sorted({f.code for f in report.findings})
    index = {code: i for i, code in enumerate(codes)}
    results = [_result(f, index[f.code]) for f in report.findings]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": report.tool_name,
                        "version": report.tool_version,
                        "semanticVersion": report.tool_version,
                        "informationUri": INFORMATION_URI,
                        "rules": [_rule_descriptor(code) for code in codes],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the repository root"}}},
                "results": results,
                "properties": {
                    "submissions": [{"path": s.path, "verdict": s.verdict.value} for s in report.submissions]
                },
            }
        ],
    }


class SarifReporter(Reporter):
    """SARIF 2.1.0 JSON."""

    def render(self, report: Report) -> str:
        return escape_surrogates(json.dumps(to_sarif(report), indent=2, ensure_ascii=False), in_json=True)

"""A structural check of SARIF 2.1.0 output, written from the OASIS specification.

The official JSON schema is not shipped on PyPI, and the tests must not need the network,
so this checks what the specification requires of the objects we emit (§3.13 sarifLog,
§3.14 run, §3.18 toolComponent, §3.27 result, §3.28 location, §3.29 physicalLocation,
§3.30 region, §3.49 reportingDescriptor, §3.34 suppression) and what GitHub code scanning
needs (stable ruleId, partialFingerprints).
"""

from __future__ import annotations

from typing import Any

LEVELS = {"none", "note", "warning", "error"}
KINDS = {"notApplicable", "pass", "fail", "review", "open", "informational"}
SUPPRESSION_KINDS = {"inSource", "external"}


def _message(obj: Any, where: str) -> list[str]:
    if not isinstance(obj, dict) or not (isinstance(obj.get("text"), str) or isinstance(obj.get("id"), str)):
        return [f"{where}: message needs 'text' or 'id'"]
    return []


def validate(log: Any) -> list[str]:
    """Problems found in a SARIF log (empty when it conforms)."""
    errors: list[str] = []
    if not isinstance(log, dict):
        return ["the log is not an object"]
    if log.get("version") != "2.1.0":
        errors.append("version must be '2.1.0'")
    if "$schema" in log and not isinstance(log["$schema"], str):
        errors.append("$schema must be a string")
    runs = log.get("runs")
    if not isinstance(runs, list):
        return errors + ["runs must be an array"]
    for r, run in enumerate(runs):
        where = f"runs[{r}]"
        driver = run.get("tool", {}).get("driver") if isinstance(run.get("tool"), dict) else None
        if not isinstance(driver, dict) or not isinstance(driver.get("name"), str):
            errors.append(f"{where}.tool.driver.name is required")
            continue
        rules = driver.get("rules", [])
        ids = []
        for i, rule in enumerate(rules):
            if not isinstance(rule.get("id"), str):
                errors.append(f"{where}.rules[{i}].id is required")
            ids.append(rule.get("id"))
            for key in ("shortDescription", "fullDescription"):
                if key in rule and not isinstance(rule[key].get("text"), str):
                    errors.append(f"{where}.rules[{i}].{key}.text must be a string")
            level = rule.get("defaultConfiguration", {}).get("level")
            if level is not None and level not in LEVELS:
                errors.append(f"{where}.rules[{i}] default level {level!r}")
        if len(set(ids)) != len(ids):
            errors.append(f"{where}: rule ids are not unique")
        for k, result in enumerate(run.get("results", [])):
            rw = f"{where}.results[{k}]"
            errors += _message(result.get("message"), rw)
            rule_id = result.get("ruleId")
            if not isinstance(rule_id, str):
                errors.append(f"{rw}.ruleId is required by code scanning")
            index = result.get("ruleIndex")
            if index is not None and (not isinstance(index, int) or index >= len(rules) or rules[index]["id"] != rule_id):
                errors.append(f"{rw}.ruleIndex does not point at rule {rule_id}")
            if result.get("level", "warning") not in LEVELS:
                errors.append(f"{rw}.level {result.get('level')!r}")
            if result.get("kind", "fail") not in KINDS:
                errors.append(f"{rw}.kind {result.get('kind')!r}")
            if result.get("kind") not in (None, "fail") and result.get("level", "none") != "none":
                errors.append(f"{rw}: a result of kind {result['kind']!r} must have level 'none' (§3.27.10)")
            fingerprints = result.get("partialFingerprints", {})
            if not isinstance(fingerprints, dict) or not all(isinstance(v, str) for v in fingerprints.values()):
                errors.append(f"{rw}.partialFingerprints must map to strings")
            for s, sup in enumerate(result.get("suppressions", [])):
                if sup.get("kind") not in SUPPRESSION_KINDS:
                    errors.append(f"{rw}.suppressions[{s}].kind {sup.get('kind')!r}")
            for j, loc in enumerate(result.get("locations", [])):
                phys = loc.get("physicalLocation")
                if phys is None:
                    continue
                uri = phys.get("artifactLocation", {}).get("uri")
                if not isinstance(uri, str) or uri.startswith("/") or "\\" in uri:
                    errors.append(f"{rw}.locations[{j}] needs a relative uri, got {uri!r}")
                region = phys.get("region")
                if region is not None:
                    for key in ("startLine", "startColumn", "endLine", "endColumn"):
                        if key in region and (not isinstance(region[key], int) or region[key] < 1):
                            errors.append(f"{rw}.locations[{j}].region.{key} must be an integer >= 1")
    return errors

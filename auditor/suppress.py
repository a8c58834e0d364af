"""Suppressions: waivers keyed by finding fingerprint, and inline comments with a reason.

A suppressed finding is kept (status ``suppressed``, with the reason) so that a reader sees
what was waived and why; it no longer counts towards the verdict or the exit code.

- A waivers file (TOML) lists findings, each by its code and fingerprint (both must match),
  with a reason and, ideally, a link to the ruling::

      [[waiver]]
      fingerprint = "3f1c…"
      code = "PG301"
      reason = "log counts the uncompressed code; the shipped wrapper is 26,420 bytes"
      link = "https://github.com/openai/parameter-golf/pull/1835"

- An inline comment on the finding's line, or on the line above it, must carry a reason::

      key = ctx_hash ^ (tok * P)  # pgolf-audit: ignore[PG101] -- tok is the previous input token

  A comment without a reason suppresses nothing; the finding stays and says why.
  Inline comments live in the audited code, which its author controls, so a CI gate run by
  maintainers can refuse them (``--no-inline-suppressions``) and rely on waivers alone.

A waiver that matches no finding is reported (:func:`unused_waivers`): a fingerprint changes
when the finding does, and a stale waiver should not wait silently for a new finding.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from auditor.bundle import Bundle
from auditor.errors import UsageError
from auditor.findings import Finding, Status

INLINE = re.compile(
    r"#\s*pgolf-audit:\s*ignore\[(?P<codes>[A-Za-z0-9,\s]+)\]\s*(?:(?:--|—|:)\s*)?(?P<reason>.*)$"
)
MIN_REASON_CHARS = 8


@dataclass(frozen=True)
class Waiver:
    """A maintainer's decision to accept one finding."""

    fingerprint: str
    reason: str
    link: str = ""
    code: str = ""


class WaiverError(UsageError):
    """The waivers file is malformed."""


def load_waivers(path: Path) -> list[Waiver]:
    """Read a waivers file; every entry needs a code, a fingerprint and a reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WaiverError(f"cannot read waivers file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WaiverError(f"waivers file {path} is not valid TOML: {exc}") from exc
    return parse_waivers(text, str(path))


def parse_waivers(text: str, path: str) -> list[Waiver]:
    """The waivers of a file's text (``path`` names it in messages)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise WaiverError(f"waivers file {path} is not valid TOML: {exc}") from exc
    entries = data.get("waiver", [])
    if not isinstance(entries, list):
        raise WaiverError(f"waivers file {path}: 'waiver' must be an array of tables ([[waiver]])")
    waivers = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise WaiverError(f"waivers file {path}: entry {i} is not a table")
        fingerprint = str(entry.get("fingerprint", "")).strip()
        reason = str(entry.get("reason", "")).strip()
        code = str(entry.get("code", "")).strip().upper()
        if not fingerprint or not reason or not code:
            raise WaiverError(f"waivers file {path}: entry {i} needs 'code', 'fingerprint' and 'reason'")
        waivers.append(Waiver(fingerprint, reason, str(entry.get("link", "")), code))
    return waivers


def waives(waiver: Waiver, finding: Finding) -> bool:
    """Whether the waiver is for this finding: the same fingerprint and the same code (a waiver
    for one rule never silences another that happens to share a fingerprint)."""
    return waiver.fingerprint == finding.fingerprint and waiver.code == finding.code


def unused_waivers(waivers: Sequence[Waiver], findings: Sequence[Finding]) -> list[Waiver]:
    """The waivers that matched none of ``findings``."""
    return [w for w in waivers if not any(waives(w, f) for f in findings)]


def _inline_reason(bundle: Bundle, finding: Finding) -> tuple[bool, str] | None:
    """(has reason, reason) if an inline comment names the finding's code, else None."""
    loc = finding.location
    if loc.line is None:
        return None
    source = next(
        (s for s in bundle.sources if s.path == loc.path and s.origin == loc.decoded_from),
        None,
    )
    if source is None:
        return None
    for line_no in (loc.line, loc.line - 1):
        if not 1 <= line_no <= len(source.lines):
            continue
        match = INLINE.search(source.lines[line_no - 1])
        if not match:
            continue
        codes = {c.strip().upper() for c in match.group("codes").split(",")}
        if finding.code not in codes:
            continue
        reason = match.group("reason").strip()
        return (len(reason) >= MIN_REASON_CHARS, reason)
    return None


def apply_suppressions(
    findings: list[Finding], bundle: Bundle | None, waivers: Sequence[Waiver], inline: bool = True
) -> list[Finding]:
    """Mark waived and inline-suppressed findings as suppressed, keeping them in the list
    (inline comments are read from ``bundle``; without one, only waivers apply)."""
    by_key = {(w.code, w.fingerprint): w for w in waivers}
    out = []
    for finding in findings:
        waiver = by_key.get((finding.code, finding.fingerprint))
        if waiver is not None:
            reason = f"waived: {waiver.reason}" + (f" ({waiver.link})" if waiver.link else "")
            out.append(finding.with_status(Status.SUPPRESSED, reason))
            continue
        if inline and bundle is not None and finding.status is Status.ACTIVE:
            found = _inline_reason(bundle, finding)
            if found is not None:
                has_reason, reason = found
                if has_reason:
                    out.append(finding.with_status(Status.SUPPRESSED, f"inline: {reason}"))
                    continue
                finding = finding.with_status(
                    Status.ACTIVE,
                    "an inline ignore comment names this finding but gives no reason, so it does not apply",
                )
        out.append(finding)
    return out

"""Suppressions: waivers keyed by finding fingerprint, and inline comments with a reason.

A suppressed finding is kept (status ``suppressed``, with the reason) so that a reader sees
what was waived and why; it no longer counts towards the verdict or the exit code.

- A waivers file (TOML) lists fingerprints with a reason and, ideally, a link to the ruling::

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
    """Read a waivers file; every entry needs a fingerprint and a reason."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WaiverError(f"cannot read waivers file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
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
        if not fingerprint or not reason:
            raise WaiverError(f"waivers file {path}: entry {i} needs both 'fingerprint' and 'reason'")
        waivers.append(Waiver(fingerprint, reason, str(entry.get("link", "")), str(entry.get("code", ""))))
    return waivers


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
    by_fingerprint = {w.fingerprint: w for w in waivers}
    out = []
    for finding in findings:
        waiver = by_fingerprint.get(finding.fingerprint)
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

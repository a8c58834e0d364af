"""Log lines matched to the statements that print them.

Each line of a log is compared with the line shapes of :mod:`auditor.scored.formats` (a
combined search for their literal keys first, so a long log costs one regular-expression scan
per line). A line matched by the formats of exactly one statement (or of statements that all
run under the same guards) proves that statement ran in that log's run; its groups give the
values of the interpolated expressions there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from auditor.scored.formats import LogFormat

#: Lines of a log that are read (a log's first lines hold the configuration, its last the scores).
MAX_LINES = 200_000
#: Longer lines (progress bars, dumped tensors) are not matched: no print of interest writes them,
#: and a pattern with several open values must not backtrack over megabytes.
MAX_LINE_CHARS = 2_000


@dataclass(frozen=True)
class Match:
    """A log line printed by a known statement."""

    log: str  # the log's path as shown to the user
    line: int
    text: str
    format: LogFormat
    values: tuple[str, ...]

    def where(self) -> str:
        return f"{self.log}:{self.line}"

    def settings(self) -> dict[str, str]:
        """Interpolated expression → the value the line shows."""
        return dict(zip(self.format.fields, self.values))


@dataclass
class LogMatches:
    """What one log says about the code: the statements it proves ran, first line each."""

    log: str
    #: First match per statement (keyed by the statement's identity).
    first: dict[int, Match] = field(default_factory=dict)
    #: Every match of a statement, up to a few (the last is the final value of a setting).
    all: dict[int, list[Match]] = field(default_factory=dict)
    lines: int = 0

    def proven(self) -> Iterable[Match]:
        return self.first.values()


def _same_place(formats: Sequence[LogFormat]) -> bool:
    """Several statements print this shape: the line still proves their common guards ran
    when they sit under the same guards of the same scope."""
    first = formats[0].stmt
    key = [(id(g.at), g.polarity) for g in first.guards]
    return all(f.stmt.scope is first.scope and [(id(g.at), g.polarity) for g in f.stmt.guards] == key for f in formats)


class Matcher:
    """Matches log lines against the formats of a program's sources."""

    def __init__(self, formats: Sequence[LogFormat]) -> None:
        self.formats = list(formats)
        keys = sorted({f.key for f in self.formats}, key=len, reverse=True)
        self.by_key: dict[str, list[LogFormat]] = {}
        for f in self.formats:
            self.by_key.setdefault(f.key, []).append(f)
        self.keys = re.compile("|".join(re.escape(k) for k in keys)) if keys else None

    def match_line(self, text: str) -> tuple[list[LogFormat], tuple[str, ...]] | None:
        """The formats that print this line (the most specific ones) and the values it shows."""
        if self.keys is None:
            return None
        hits: list[tuple[int, LogFormat, tuple[str, ...]]] = []
        for key in {m.group(0) for m in self.keys.finditer(text)}:
            for f in self.by_key.get(key, ()):
                m = f.pattern.match(text)
                if m is not None:
                    hits.append((len(f.template) - sum(len(x) + 2 for x in f.fields), f, m.groups()))
        if not hits:
            return None
        best = max(h[0] for h in hits)
        top = [h for h in hits if h[0] == best]
        values = {h[2] for h in top}
        formats = [h[1] for h in top]
        if len(values) != 1 or not _same_place(formats):
            return None  # two statements could have printed it: it proves neither
        return formats, top[0][2]

    def match_log(self, name: str, lines: Iterable[str]) -> LogMatches:
        out = LogMatches(name)
        for number, raw in enumerate(lines, 1):
            if number > MAX_LINES:
                break
            out.lines = number
            text = raw.rstrip("\r\n")
            if len(text) > MAX_LINE_CHARS:
                continue
            found = self.match_line(text)
            if found is None:
                continue
            formats, values = found
            for f in formats:
                match = Match(name, number, text.strip()[:200], f, values)
                out.first.setdefault(id(f.stmt), match)
                seen = out.all.setdefault(id(f.stmt), [])
                if len(seen) < 3:
                    seen.append(match)
                else:
                    seen[-1] = match
        return out

"""The scored run as the runtime harness needs it (parent side; no torch).

The claimed score was produced by one run: its seed logs say which stage printed it
(``legal_ttt_exact val_loss:… val_bpb:…``) and, through the scored configuration
(:mod:`auditor.scored.config`), with which settings: values its logs printed, the run command,
then the script's defaults. The harness

- runs that configuration: the sandbox shrinks data and sizes, never structure, so every
  setting of the scored run that is not a size keeps the scored run's value
  (:func:`auditor.runtime.knobs.knob_values`);
- passes only when the scorer behind the claimed stage was captured and probed
  (:func:`stage_reasons`): the sandboxed run printed the stage's line, the value on it is one
  a captured evaluation returned, and that evaluation passed every probe. The match is by value
  (the number on the line is the number the evaluation returned), not by names.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from auditor.runtime.protocol import InlineSite

if TYPE_CHECKING:
    from auditor.records.analysis import RecordsAnalysis
    from auditor.records.logparse import Score
    from auditor.runtime.protocol import ByteAccount, PassRecord
    from auditor.scored.config import ScoredConfiguration
    from auditor.scored.logmatch import Match
    from auditor.static.reach import Program

#: Lines of the sandboxed run that carry a stage label, kept at most (and their length).
MAX_STAGE_LINES = 40
MAX_LINE_CHARS = 400
#: Settings values that are not a value of the run (unknown defaults, unset variables).
_NOT_VALUES = frozenset({"?", "unset", ""})
#: Text that is code, not a value: a dotted name (``os.environ.get``) or a conversion's name.
_CODE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+|int|float|bool|str")


@dataclass(frozen=True)
class ClaimedStage:
    """The stage whose line carries the claimed score in a seed log."""

    label: str  # as the seed log prints it ("legal_ttt_exact")
    log_line: str  # "train_seed42.log:1874"
    printed_by: str  # "train_gpt.py:812" (the statement matched to that line), or ""
    log_text: str = ""  # the line itself, as the seed log has it

    def describe(self) -> str:
        by = f", printed by {self.printed_by}" if self.printed_by else ""
        return f"{self.label} ({self.log_line}{by})"


@dataclass(frozen=True)
class ScoredRuntime:
    """What the harness takes from the scored configuration."""

    #: Settings of the scored run: variable -> value, strongest source first.
    env: dict[str, str] = field(default_factory=dict)
    #: Variable -> where its value comes from ("train_seed42.log:1874", "default at …").
    sources: dict[str, str] = field(default_factory=dict)
    world_size: int | None = None
    stages: tuple[ClaimedStage, ...] = ()
    #: Set when the folder claims a score but no seed log names the stage that printed it: what
    #: is claimed (then no evaluation of the sandboxed run can be tied to the claim).
    unknown_stage: str = ""
    #: Functions whose returned values the claimed stages' lines print, whatever their names
    #: (:mod:`auditor.scored.producers`): the sandbox captures them as evaluations.
    scorers: tuple[str, ...] = ()
    #: Claimed lines whose function computes the printed score inline (no function returns
    #: it): the sandbox lifts the block that computes it into a function to capture.
    inline: tuple[InlineSite, ...] = ()


def scored_runtime(scored: ScoredConfiguration, program: Program | None = None,
                   records: RecordsAnalysis | None = None) -> ScoredRuntime:
    """The settings and claimed stage of the first scored run that names a stage (the seeds of a
    record run one configuration; a sweep whose logs disagree leaves the disagreeing values to
    the run command and the defaults, see ``ScoredConfiguration.overrides``)."""
    from auditor.scored.held import held_settings  # parent side only (the driver imports this module)
    from auditor.scored.producers import printed_producers
    from auditor.static.env import _LOG_VALUE

    runs = [r for r in scored.runs if r.stage]
    if not runs:
        claims = records.claims if records is not None else None
        if claims is not None and claims.val_bpb is not None:
            where = PurePath(records.claims_file.path).name if records.claims_file is not None else "the folder"
            return ScoredRuntime(unknown_stage=f"{where} claims val_bpb {claims.val_bpb.value} and no seed log "
                                               "names the stage that printed it")
        return ScoredRuntime()
    run = runs[0]
    env: dict[str, str] = {}
    sources: dict[str, str] = {}
    from_log: set[str] = set()  # values the run's log printed: nothing overrides them
    if program is not None:
        for setting in scored.settings(run, list(program.configs.values()), program.run_settings):
            if setting.value in _NOT_VALUES or _CODE.fullmatch(setting.value) or setting.name in env:
                continue  # unknown, or code read as a value (a script dumped into a log)
            # a printed value is the parsed one (``True`` for ``bool(int("1"))``): back to the text
            # the script parses, as the static analysis reads log values
            env[setting.name] = _LOG_VALUE.get(setting.value.lower(), setting.value) if setting.via else setting.value
            sources[setting.name] = _short(setting.source)
            if setting.via:
                from_log.add(setting.name)
        # the claimed stage's line was printed inside its guards: they held in the scored run
        given = {k: v for k, v in env.items() if not sources[k].startswith("default")}
        for held in held_settings(run, program, given):
            if held.name not in from_log:
                env[held.name] = held.value
                sources[held.name] = held.source
    stages: dict[str, ClaimedStage] = {}
    scorers: list[str] = []
    inline: list[InlineSite] = []
    for r in runs:
        assert r.stage is not None
        printed = r.stage_printed_by()
        if printed is not None and program is not None:
            producers = printed_producers(printed.format, program)
            scorers += [name for name in producers if name not in scorers]
            site = _inline_site(printed, r.stage) if not producers else None
            if site is not None and site not in inline:
                inline.append(site)
        by = f"{PurePath(printed.format.source.path).name}:{printed.format.line}" if printed is not None else ""
        text = printed.text[:MAX_LINE_CHARS] if printed is not None else ""
        stages.setdefault(r.stage, ClaimedStage(r.stage, f"{PurePath(r.log).name}:{r.stage_line}", by, text))
    return ScoredRuntime(env, sources, run.world_size, tuple(stages.values()), scorers=tuple(scorers),
                         inline=tuple(inline))


def _inline_site(printed: Match, label: str) -> InlineSite | None:
    """The claimed line's statement, when the function that prints it computes the score
    itself: the names of the printed loss and bpb (the fields whose text the records parser
    reads as the score), each assigned in that function."""
    from auditor.scored.producers import printed_names

    scope = printed.format.stmt.scope
    if scope.is_module:
        return None
    texts = {t for score in printed_scores([printed.text], label) for t in (score.bpb_text, score.loss_text) if t}
    fields = [f for f, value in zip(printed.format.fields, printed.values) if value in texts]
    names = [n for n in printed_names(printed.format, fields) if scope.assigned(n)]
    if not names:
        return None
    return InlineSite(scope.name, printed.format.line, names)


def _short(source: str) -> str:
    """A source as a report shows it: file names, not this machine's folders."""
    head, sep, rest = source.rpartition(" ")
    where = rest if sep else source
    path, colon, line = where.rpartition(":")
    if colon and line.isdigit():
        where = f"{PurePath(path).name}:{line}"
    return f"{head}{sep}{where}"


def stage_lines(text: str, labels: Sequence[str]) -> list[str]:
    """Lines of the sandboxed run's output that carry one of the claimed stage labels. A label
    the records parser composed from a line's words (``ppm_mix mix_bpb`` for ``ppm_mix
    bytes=1742 mix_bpb=0.9``) is carried by a line with each of its words; which lines print the
    stage is then decided by parsing them (:func:`printed_scores`)."""
    from auditor.records.logparse import STEP_LABEL

    if not labels:
        return []
    # a training-time validation line is a "step" line that prints a bpb (not a progress line)
    words = [label.split() + (["val_bpb"] if label == STEP_LABEL else []) for label in labels]
    out = []
    for line in text.splitlines():
        if any(all(word in line for word in label) for label in words):
            out.append(line[:MAX_LINE_CHARS])
            if len(out) >= MAX_STAGE_LINES:
                break
    return out


def printed_scores(lines: Iterable[str], label: str) -> list[Score]:
    """The score lines of the sandboxed run with the claimed stage's label (as the records
    parser reads the seed logs, so both sides read a line the same way)."""
    from auditor.records.logparse import STEP_LABEL, parse_lines, step_score

    parse = parse_lines("sandbox", [line + "\n" for line in lines])
    if label == STEP_LABEL:
        return [s for run in parse.runs for s in map(step_score, run.step_vals) if s is not None]
    return [s for run in parse.runs for s in run.scores if s.raw_label == label]


def _same(printed: str, decimals: int, value: float) -> bool:
    """The returned value, printed with the line's decimals, gives the printed text."""
    try:
        number = float(printed)
    except ValueError:
        return False
    return abs(number - value) <= 0.5 * 10.0 ** -decimals * 1.0001 + 1e-12


def scorer_of(score: Score, passes: Sequence[PassRecord]) -> PassRecord | None:
    """The captured top-level evaluation whose returned value the stage line printed."""
    for p in passes:
        if p.depth != 0 or not p.complete:
            continue
        for value in p.returned:
            if _same(score.bpb_text, score.decimals, value):
                return p
            if score.loss_text is not None and _same(score.loss_text, score.loss_decimals, value):
                return p
    return None


def stage_reasons(stage: ClaimedStage, lines: Sequence[str], passes: Sequence[PassRecord],
                  accounts: Sequence[ByteAccount] | None = None) -> tuple[list[str], str | None]:
    """Why the scored stage was not exercised (empty when it was), and the name of the
    evaluation function behind it.

    ``accounts``: the canonical bytes of the targets each call scored, when the run used the
    harness's tokenizer (else None). The probes are about the losses the capture matched to
    one returned number; a function that returns the model's score and a mixture's (and prints
    the mixture's as the claim) has them about the model's. With the bytes known, the captured
    losses must give the printed claim's bits per byte, else the stage was not exercised."""
    printed = printed_scores(lines, stage.label)
    head = f"the scored stage {stage.describe()} was not exercised"
    if not printed:
        return [f"{head}: the sandboxed run never printed its line"], None
    for score in printed:
        p = scorer_of(score, passes)
        if p is not None:
            dormant = _stage_dormancy(stage, lines)
            if dormant:
                return [f"{head}: {dormant}"], None
            other = _captured_elsewhere(score, [a for a in accounts or () if a.name == p.name])
            if other:
                return [f"{head}: {other}"], None
            return [], p.name
    return [f"{head}: the value on its line ({printed[0].bpb_text}) is none a captured evaluation returned"], None


def _captured_elsewhere(score: Score, accounts: Sequence[ByteAccount]) -> str:
    """Why the captured losses of a call are not the ones behind the printed claim ("" when
    one call's give its bits per byte, or nothing is known about them)."""
    from auditor.runtime.bytecheck import Printed, accepted, explain

    counted = [a for a in accounts if a.bytes > 0 and a.tokens > 0]
    claim = Printed(score.bpb_text)
    if not counted or any(explain(a, claim, accepted(a)) for a in counted):
        return ""
    a = counted[0]
    return (f"the losses captured in {a.name} give {a.nll_sum / (a.bytes * math.log(2.0)):.6g} bits per byte over "
            f"the {a.tokens} targets they score, and the line prints {score.bpb_text}: the probes would be about "
            "another figure than the claimed one")


def stage_dormant(stage: ClaimedStage, lines: Sequence[str]) -> bool:
    """Whether the sandboxed run printed the stage's line with the figures the seed log shows
    apart equal: its mechanism did not act at the shrunk scale (:func:`_dormant`), and a longer
    stream may wake it."""
    return bool(_stage_dormancy(stage, lines))


def _stage_dormancy(stage: ClaimedStage, lines: Sequence[str]) -> str:
    return _dormant(stage.log_text, [line for line in lines if stage.label in line])


#: ``name:value`` (or ``name=value``) bits-per-byte fields of a score line.
_BPB_FIELD = re.compile(r"([A-Za-z_]*bpb[A-Za-z_]*)\s*[:=]\s*(-?\d+\.\d+)")


def _dormant(log_text: str, sandbox_lines: Sequence[str]) -> str:
    """Why the sandboxed run did not reproduce what the claimed line shows ("" when it did).

    A claimed line that prints two bits-per-byte figures apart (``sliding_bpb:1.1478
    val_bpb:0.3922``: the model's and the mixture's) shows its mechanism at work. When the
    sandboxed run prints the same two figures equal, that mechanism did not act at the shrunk
    scale (an n-gram table read before its first update), and probes of that run say nothing
    about it.
    """
    logged = {k: float(v) for k, v in _BPB_FIELD.findall(log_text)}
    for line in sandbox_lines:
        ran = dict(_BPB_FIELD.findall(line))
        for a, b in itertools.combinations(sorted(set(logged) & set(ran)), 2):
            if abs(logged[a] - logged[b]) > 1e-3 and ran[a] == ran[b]:
                return (f"its line prints {a} and {b} apart in the seed log ({logged[a]:g} and {logged[b]:g}) but "
                        f"equal in the sandboxed run ({ran[a]}): what separates them did not act at the shrunk scale")
    return ""

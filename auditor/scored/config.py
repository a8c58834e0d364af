"""The scored configuration: which run produced each claimed score, and with which settings.

A claimed score was produced by one run, and the folder carries its evidence. For every seed
log whose run gives a score (:mod:`auditor.records.analysis`), this module collects, strongest
first:

1. log lines matched to the format strings of the script's own print and log calls
   (:mod:`auditor.scored.formats`, :mod:`auditor.scored.logmatch`): a matched line proves the
   statement that prints it ran, so every guard around it was true in that run, and its
   interpolated values are settings (``ngram_eval:order=7`` from
   ``f"ngram_eval:order={args.ngram_eval_order}"`` sets whatever ``args.ngram_eval_order``
   reads to 7);
2. the run's world size, as its log reports it: the value of ``torch.distributed``'s world size
   and of the launcher's ``WORLD_SIZE`` (torchrun's contract, not a name the script chose), so a
   default such as ``"1" if world_size > 1 else "0"`` is evaluated for the run that was made;
3. statements that did not run: a branch that prints a line whenever it runs, through a call
   that does write to these logs (other lines of the same call are in them), while no seed log
   of a complete run has that line.

Run commands (README, shell scripts), hyperparameter dumps and defaults stay with
:mod:`auditor.static.env`; :class:`auditor.static.reach.Program` weighs them below these.
Each setting names its source (``train_seed42.log:1874``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any


from auditor.scored.formats import LogFormat, formats_of
from auditor.scored.logmatch import LogMatches, Match, Matcher
from auditor.source import PythonSource, Role
from auditor.static.env import _LOG_VALUE, ENV_GETTERS, UNKNOWN, Config, EnvValue
from auditor.static.env import WORLD_SIZE_VARIABLE as LAUNCHER_WORLD_SIZE
from auditor.static.index import Guard, Scope, Stmt, index_of
from auditor.static.names import dotted

if TYPE_CHECKING:
    from collections.abc import Sequence

    from auditor.bundle import Bundle
    from auditor.records.analysis import RecordsAnalysis
    from auditor.records.logparse import Score

#: Logs larger than this are not matched line by line.
MAX_LOG_BYTES = 64_000_000
_SIMPLE = re.compile(r"^[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class Setting:
    """One setting of the scored run and where it comes from."""

    name: str  # what the script reads (an environment variable, or the expression printed)
    value: str
    source: str  # "train_seed42.log:1874", "default at train_gpt.py:116" …
    via: str = ""  # the expression whose printed value gave it

    def describe(self) -> str:
        via = f" (printed as {self.via})" if self.via and self.via != self.name else ""
        where = self.source if self.source.startswith("default") else f"at {self.source}"
        return f"{self.name}={self.value} {where}{via}"


@dataclass
class ScoredRun:
    """One seed's run: its log, the claimed stage, its world size, what its log proves."""

    log: str
    seed: str
    stage: str | None
    stage_line: int | None
    world_size: int | None
    world_size_source: str
    matches: LogMatches
    complete: bool  # the log reaches a score line (a crashed run proves no absence)
    #: Lines of the run's log that print a score (any stage), as the records parser reads them.
    score_lines: frozenset[int] = frozenset()

    def stage_printed_by(self) -> Match | None:
        if self.stage_line is None:
            return None
        for matches in self.matches.all.values():
            for m in matches:
                if m.line == self.stage_line:
                    return m
        return None


class ScoredConfiguration:
    """The scored runs of a submission and what they say about its code."""

    def __init__(self, runs: list[ScoredRun], formats: list[LogFormat]) -> None:
        self.runs = runs
        self.formats = formats
        self._proven: dict[int, Match] = {}
        for run in runs:
            for key, match in run.matches.first.items():
                self._proven.setdefault(key, match)
        # Calls that write to these logs: a line of theirs was found (callee and keywords as written).
        self._writers = {m.format.route for run in runs for m in run.matches.proven()}
        by_scope: dict[int, list[LogFormat]] = {}
        for f in formats:
            by_scope.setdefault(id(f.stmt.scope), []).append(f)
        self._by_scope = by_scope

    @property
    def has_logs(self) -> bool:
        return any(run.matches.first for run in self.runs)

    def ran(self, stmt: Stmt) -> Match | None:
        """The first log line that proves ``stmt`` ran in a scored run."""
        return self._proven.get(id(stmt))

    def proven_scope(self, scope_id: int) -> Match | None:
        for f in self._by_scope.get(scope_id, ()):
            match = self._proven.get(id(f.stmt))
            if match is not None:
                return match
        return None

    def guard_held(self, stmt: Stmt, position: int) -> Match | None:
        """A log line printed from inside the branch of ``stmt.guards[position]`` (same scope):
        that guard held in the scored run."""
        prefix = _guard_keys(stmt.guards[: position + 1])
        for f in self._by_scope.get(id(stmt.scope), ()):
            match = self._proven.get(id(f.stmt))
            if match is not None and _guard_keys(f.stmt.guards[: position + 1]) == prefix:
                return match
        return None

    def guard_failed(self, stmt: Stmt, position: int) -> LogFormat | None:
        """A statement that prints a line whenever the branch of ``stmt.guards[position]`` runs
        (directly in it, outside loops the statement is not in), through a call whose other
        lines are in the logs, while no complete scored run has that line."""
        runs = [r for r in self.runs if r.matches.first]
        if not runs or not all(r.complete for r in runs):
            return None
        prefix = _guard_keys(stmt.guards[: position + 1])
        loops = {id(loop) for loop in stmt.loops}
        for f in self._by_scope.get(id(stmt.scope), ()):
            if _guard_keys(f.stmt.guards) != prefix or f.route not in self._writers or not f.callee:
                continue
            if any(id(loop) not in loops for loop in f.stmt.loops):
                continue
            if id(f.stmt) not in self._proven:
                return f
        return None

    # settings ----------------------------------------------------------------------------

    def world_size(self) -> EnvValue | None:
        """The world size every scored run reports, with the line that says so."""
        sizes = {r.world_size for r in self.runs if r.world_size is not None}
        if len(sizes) != 1:
            return None
        run = next(r for r in self.runs if r.world_size is not None)
        return EnvValue(LAUNCHER_WORLD_SIZE, str(sizes.pop()), run.world_size_source)

    def overrides(self, config: Config) -> dict[str, EnvValue]:
        """Environment values of the scored runs for one source's configuration: what the
        printed values of its own expressions say, and the world size."""
        out: dict[str, EnvValue] = {}
        attributes = config.attribute_env()
        constants = config.constant_env()
        conflicting: set[str] = set()
        for run in self.runs:
            for matches in run.matches.all.values():
                for match in matches:
                    for expr, value in match.settings().items():
                        var = _env_for(expr, attributes, constants, match.format.stmt.scope)
                        if var is None or not _plain(value):
                            continue
                        value = _LOG_VALUE.get(value.lower(), value)
                        known = out.get(var)
                        if known is not None and known.value != value:
                            conflicting.add(var)
                        out.setdefault(var, EnvValue(var, value, match.where()))
        for var in conflicting:
            out.pop(var, None)  # the runs disagree (a sweep): the logs decide nothing
        world = self.world_size()
        if world is not None:
            out.setdefault(LAUNCHER_WORLD_SIZE, world)
        return out

    def settings(self, run: ScoredRun, configs: list[Config], commands: list[dict[str, EnvValue]]) -> list[Setting]:
        """The settings of one scored run, strongest first, each with its source: values its
        log printed, its world size, the run commands shipped with it, then the defaults."""
        seen: dict[str, Setting] = {}
        for config in configs:
            attributes, constants = config.attribute_env(), config.constant_env()
            for matches in run.matches.all.values():
                match = matches[-1]
                for expr, value in match.settings().items():
                    var = _env_for(expr, attributes, constants, match.format.stmt.scope)
                    if var is not None and _plain(value) and var not in seen:
                        seen[var] = Setting(var, value, match.where(), expr)
        if run.world_size is not None:
            seen.setdefault(LAUNCHER_WORLD_SIZE, Setting(LAUNCHER_WORLD_SIZE, str(run.world_size), run.world_size_source))
        # the run's own hyperparameter dump before the run commands shipped beside it: a README's
        # command may be a parent's, the dump is what this run read
        own = PurePath(run.log).name
        for command in sorted(commands, key=lambda c: not any(env.origin == own for env in c.values())):
            for var, env in command.items():
                if any(c.isalnum() for c in str(env.value)):  # a dump's value cut at a "/" says nothing
                    seen.setdefault(var, Setting(var, str(env.value), env.origin))
        for config in configs:
            for var, value, where in _defaults(config):
                seen.setdefault(var, Setting(var, value, f"default at {where}"))
        return list(seen.values())

    def summary(self, configs: list[Config] | None = None, commands: list[dict[str, EnvValue]] | None = None) -> list[dict[str, Any]]:
        """Per scored run, for the report: the claimed stage and what printed it, the world
        size, how many log lines were matched to code, and (given the program's configurations)
        the settings with their sources."""
        out = []
        for run in self.runs:
            printed = run.stage_printed_by()
            entry: dict[str, Any] = {"log": run.log, "seed": run.seed}
            if run.stage:
                entry["stage"] = run.stage + (f" (line {run.stage_line})" if run.stage_line else "")
            if printed is not None:
                entry["stage_printed_by"] = printed.format.where()
            if run.world_size is not None:
                entry["world_size"] = f"{run.world_size} ({run.world_size_source})"
            proven = sorted(run.matches.first.values(), key=lambda m: m.line)
            if proven:
                entry["lines_matched_to_code"] = len(proven)
            if configs is not None:
                settings = self.settings(run, configs, commands or [])
                if settings:
                    entry["settings"] = [s.describe() for s in settings[:40]]
            out.append(entry)
        return out


def _defaults(config: Config) -> list[tuple[str, str, str]]:
    """(variable, default, "file:line") of every environment read with a literal name."""
    index = config.index
    out = []
    for scope in index.scopes:
        for call in scope.calls:
            short = call.name.split(".")[-1]
            if not (call.qualified in ENV_GETTERS or call.name in ENV_GETTERS or short in config.env_helpers):
                continue
            name, default = call.arg(0), call.arg(1, "default")
            if name is None:
                continue
            key = config.evaluate(name, scope)
            if not isinstance(key.value, str):
                continue
            value = config.evaluate(default, scope).value if default is not None else None
            shown = "unset" if value is None else "?" if not _known(value) else str(value)
            out.append((key.value, shown, f"{index.source.path}:{index.line(call.node)}"))
    return out


def _known(value: Any) -> bool:
    return value is not UNKNOWN


def _guard_keys(guards: tuple[Guard, ...]) -> list[tuple[int, bool, str]]:
    return [(id(g.at), g.polarity, g.kind) for g in guards]


def _plain(value: str) -> bool:
    return bool(value) and len(value) <= 40 and re.fullmatch(r"[\w.+-]+", value) is not None


def _env_for(expr: str, attributes: dict[str, str], constants: dict[str, str], scope: Scope | None = None) -> str | None:
    """The environment variable a printed expression reads (``args.order`` → its variable).

    A local name the printing function assigned once from a setting (``use_dirichlet =
    args.dirichlet_enabled``, then ``f"dirichlet={use_dirichlet}"``) prints that setting."""
    if not _SIMPLE.match(expr):
        return None
    if "." in expr:
        return attributes.get(expr.rsplit(".", 1)[1])
    found = constants.get(expr) or attributes.get(expr)
    if found is None and scope is not None and not scope.is_module:
        assigned = scope.assigned(expr)
        if len(assigned) == 1 and assigned[0].kind == "assign" and assigned[0].position is None and assigned[0].value is not None:
            value = dotted(assigned[0].value)
            if value is not None and value != expr:
                return _env_for(value, attributes, constants)
    return found


def scored_configuration(bundle: Bundle, records: RecordsAnalysis) -> ScoredConfiguration:
    """The scored configuration of a bundle: its seed logs matched to its code."""
    sources = [s for s in bundle.sources if s.role in (Role.MAIN, Role.MODULE) and s.parse_error is None]
    formats: list[LogFormat] = []
    for source in sources:
        formats.extend(_formats(source))
    matcher = Matcher(formats)
    runs: list[ScoredRun] = []
    matched: dict[str, LogMatches] = {}
    for row in records.rows:
        entry = row.log
        if entry.duplicate_of is not None or not row.evidence or entry.file.size > MAX_LOG_BYTES:
            continue
        rel = entry.file.rel
        if rel not in matched:
            try:
                matched[rel] = matcher.match_log(entry.file.path, bundle.iter_lines(rel))
            except OSError:
                continue
        score = _printed_score(row.score, row.run.scores, matched[rel])
        world = row.world
        runs.append(ScoredRun(
            log=entry.file.path,
            seed=row.seed,
            stage=score.raw_label if score is not None else None,
            stage_line=score.line if score is not None else None,
            world_size=int(world.value) if world is not None and isinstance(world.value, (int, float)) else None,
            world_size_source=f"{entry.file.path}:{world.line}" if world is not None else "",
            matches=matched[rel],
            complete=score is not None,
            score_lines=frozenset(sc.line for sc in row.run.scores),
        ))
    return ScoredConfiguration(runs, formats)


def _printed_score(score: Score | None, scores: Sequence[Score], matches: LogMatches) -> Score | None:
    """The claimed score as the code printed it. A summary a person or a wrapper appended to
    the log (``val_bpb:          1.12278022`` after a ``---``) matches no statement of the
    script; the stage behind it is the last earlier line of the same run that a statement
    printed with the same value. Without one, the line stays what the records read."""
    if score is None or _printed_line(matches, score.line):
        return score
    same = [s for s in scores if s.line < score.line and _same_value(s, score) and _printed_line(matches, s.line)]
    return same[-1] if same else score


def _printed_line(matches: LogMatches, line: int) -> bool:
    return any(m.line == line for found in matches.all.values() for m in found)


def _same_value(a: Score, b: Score) -> bool:
    """Two printed bpb values that are the same number at the coarser one's decimals."""
    decimals = min(a.decimals, b.decimals)
    return abs(a.bpb - b.bpb) <= 0.5 * 10.0 ** -decimals * 1.0001 + 1e-12


def _formats(source: PythonSource) -> list[LogFormat]:
    return formats_of(source, index_of(source))

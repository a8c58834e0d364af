"""Does a statement run when the submission runs with its defaults?

Code that is present but switched off is common: an n-gram eval behind
``if args.ngram_eval_order >= 2`` with ``NGRAM_EVAL_ORDER`` defaulting to 0 (openai/parameter-golf
PR #1120, #1458), a pre-quantization TTT whose epoch count defaults to 0. A finding in such code
is reported ``inactive`` and names the variable that would switch it on.

A statement is active when none of the guards around it is false with the environment at its
defaults (see :mod:`auditor.static.env`) and its function is *live*: referenced, outside
false guards, from the module level of the main script or of a module it uses, or from
another live function. References are resolved by name across the submission's sources
(``self.mixer.update(...)`` makes every function named ``update`` live), which errs towards
calling code live. A guard that cannot be evaluated never makes code inactive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from auditor.source import PythonSource, Role
from auditor.static.env import Config, EnvValue, commands_set_all, log_scenarios, run_scenarios
from auditor.static.index import Guard, Scope, SourceIndex, Stmt, index_of
from auditor.static.names import dotted

if TYPE_CHECKING:
    from auditor.bundle import Bundle
    from auditor.scored.config import ScoredConfiguration
    from auditor.scored.path import ScoredPath

_IMPLICIT = ("__init__", "__call__", "forward", "__post_init__", "__enter__", "__exit__", "__iter__", "__next__", "__getitem__", "__len__")


@dataclass(frozen=True)
class Activity:
    """Whether a statement runs in the scored run (or under the defaults), and if not, why."""

    active: bool
    reason: str = ""
    env: tuple[EnvValue, ...] = ()
    guard: str = ""  # code of the guard that decides
    #: Log lines that prove the path ran in a scored run ("train_seed42.log:1874: `…` printed by …").
    ran: tuple[str, ...] = ()

    def evidence(self) -> dict:
        if self.active:
            out: dict = {}
            if self.ran:
                out["ran_in_scored_run"] = list(self.ran)
            if self.env:  # off by default, switched on by the submission's own run commands or logs
                out["enabled_by"] = [e.describe() for e in self.env]
            return out
        out = {"inactive_because": self.reason}
        if self.env:
            out["env"] = {e.name: e.value for e in self.env}
        if self.guard:
            out["guard"] = self.guard
        return out


ACTIVE = Activity(True)


class Program:
    """The Python sources of one submission that run together, with one call graph."""

    def __init__(
        self,
        sources: Iterable[PythonSource],
        texts: dict[str, str] | None = None,
        logs: dict[str, str] | None = None,
        scored: ScoredConfiguration | None = None,
    ) -> None:
        self.sources = [s for s in sources if s.module is not None]
        self.indexes: list[SourceIndex] = [index_of(s) for s in self.sources]
        self.scored = scored
        # Scenario 0 is the defaults; the others are the settings of the run commands and
        # logs shipped with the submission. Code is inactive only when no scenario runs it.
        defaults = {id(index): Config(index, main=source.role is Role.MAIN) for source, index in zip(self.sources, self.indexes)}
        self.scenarios: list[dict[int, Config]] = [defaults]
        wanted = {name for c in defaults.values() for name in c.read_names()}
        extra = run_scenarios(texts or {}, wanted)
        if logs:
            attributes: dict[str, str] = {}
            for config in defaults.values():
                attributes.update(config.attribute_env())
            code_lines = frozenset(line.strip() for source in self.sources for line in source.text.splitlines() if line.strip())
            extra += log_scenarios(logs, attributes, code_lines)
        #: The settings of the shipped run commands and hyperparameter dumps, one dict per run.
        self.run_settings: list[dict[str, EnvValue]] = extra
        # Every shipped command of the main script sets some of its variables: the commands,
        # not the bare defaults, say how it ran (a path on by default that each command
        # switches off did not run).
        mains = [s.path.replace("\\", "/").rsplit("/", 1)[-1] for s in self.sources if s.role is Role.MAIN]
        self._defaults_ran = not (extra and commands_set_all(texts or {}, wanted, mains))
        for settings in extra:
            configs = {}
            for source, index in zip(self.sources, self.indexes):
                config = Config(index, main=source.role is Role.MAIN)
                config.add_overrides(settings)
                configs[id(index)] = config
            self.scenarios.append(configs)
        for configs in self.scenarios:
            _link_imports(self.sources, self.indexes, configs)
        self.configs = defaults
        # The scored runs' own values (printed by the script, the run's world size): the
        # strongest evidence; they decide a guard whenever its value depends on them.
        self.scored_configs: dict[int, Config] = {}
        if scored is not None:
            for source, index in zip(self.sources, self.indexes):
                found = scored.overrides(defaults[id(index)])
                if found:
                    config = Config(index, main=source.role is Role.MAIN)
                    config.add_overrides(found)
                    self.scored_configs[id(index)] = config
        self._ran: dict[int, tuple[str, ...]] = {}
        self._scored_path: ScoredPath | None = None
        self._absent: dict[int, str] = {}
        #: Derived facts about the whole program, computed once (scoring functions, …).
        self.cache: dict[str, object] = {}
        self.by_name: dict[str, list[Scope]] = {}
        self.classes: dict[str, list] = {}
        self.referrers: dict[str, list[Stmt]] = {}
        self.index_of_scope: dict[int, SourceIndex] = {}
        for index in self.indexes:
            for scope in index.scopes:
                self.index_of_scope[id(scope)] = index
                for name, stmts in scope.refs.items():
                    self.referrers.setdefault(name, []).extend(stmts)
            for name, scopes in index.by_name.items():
                self.by_name.setdefault(name, []).extend(scopes)
            for name, info in index.classes.items():
                self.classes.setdefault(name, []).append(info)
        self._dead: dict[int, tuple[Guard, tuple[EnvValue, ...]] | None] = {}
        self._enabled: dict[int, tuple[EnvValue, ...]] = {}
        self.live: dict[int, Stmt | None] = {}
        self._compute_live()
        self._live_without_entry()

    def attach(self, indexes: Iterable[SourceIndex] | None = None) -> None:
        """Make this the program of its sources (or of ``indexes``): the data flow and the
        status of findings in them are then computed against it."""
        for index in self.indexes if indexes is None else indexes:
            index.program = self

    # guards -------------------------------------------------------------------------------

    def config_for(self, scope: Scope) -> Config:
        return self.configs[id(self.index_of_scope[id(scope)])]

    def _scored_verdict(self, stmt: Stmt, position: int, enabled: list[EnvValue], ran: list[str]) -> bool | None:
        """What the scored runs say about ``stmt.guards[position]``: True (it held), False (it
        did not), None (they do not tell; the defaults and run commands decide)."""
        scored = self.scored
        if scored is None:
            return None
        guard = stmt.guards[position]
        held = scored.guard_held(stmt, position)
        if held is not None:
            ran.append(f"{held.where()}: `{held.text[:100]}` (printed by {held.format.where()})")
            return True
        absent = scored.guard_failed(stmt, position)
        if absent is not None:
            self._absent[id(guard.at)] = (f"no scored run's log has the line `{absent.template[:90]}` that "
                                          f"{absent.where()} prints whenever this branch runs")
            return False
        config = self.scored_configs.get(id(self.index_of_scope[id(stmt.scope)]))
        if config is not None:
            truth = config.truth(guard.test, stmt.scope, guard.kind)
            from_runs = [e for e in truth.env if e.origin not in ("default", "script")]
            if truth.known and from_runs:
                if truth.value is guard.polarity:
                    enabled.extend(from_runs)
                    return True
                return False
        return None

    def dead_guard(self, stmt: Stmt) -> tuple[Guard, tuple[EnvValue, ...]] | None:
        """The first guard around a statement that did not hold in the scored runs (their logs
        and settings, see :mod:`auditor.scored.config`) or, where they do not tell, that is false
        under the defaults and under every shipped run configuration (with the evidence)."""
        key = id(stmt)
        if key not in self._dead:
            found = None
            index_key = id(self.index_of_scope[id(stmt.scope)])
            enabled: list[EnvValue] = []
            ran: list[str] = []
            for position, guard in enumerate(stmt.guards):
                scored = self._scored_verdict(stmt, position, enabled, ran)
                if scored is True:
                    continue
                if scored is False:
                    config = self.scored_configs.get(index_key) or self.configs[index_key]
                    found = (guard, config.truth(guard.test, stmt.scope, guard.kind).env)
                    break
                verdicts = []
                for configs in self.scenarios if self._defaults_ran else self.scenarios[1:]:
                    truth = configs[index_key].truth(guard.test, stmt.scope, guard.kind)
                    verdicts.append(truth)
                    if not truth.known or truth.value is guard.polarity:
                        if len(verdicts) > 1 or not self._defaults_ran:  # on in a shipped run command or log
                            enabled.extend(e for e in truth.env if e.origin != "default")
                        break
                else:
                    env = verdicts[0].env
                    found = (guard, env)
                    break
            self._dead[key] = found
            if enabled and found is None:
                self._enabled[key] = tuple(enabled)
            if ran and found is None:
                self._ran[key] = tuple(ran)
        return self._dead[key]

    # liveness -----------------------------------------------------------------------------

    def _targets(self, name: str) -> list[Scope]:
        found = list(self.by_name.get(name, ()))
        for info in self.classes.get(name, ()):
            found.extend(m for n, m in info.methods.items() if n in _IMPLICIT or (n.startswith("__") and n.endswith("__")))
        return found

    def _compute_live(self) -> None:
        queue: list[Scope] = []
        for index in self.indexes:
            self.live[id(index.module_scope)] = None
            queue.append(index.module_scope)
            if self.scored is not None:  # a function that printed a line of a scored run ran
                for scope in index.functions:
                    if self.scored.proven_scope(id(scope)) is not None:
                        self.live[id(scope)] = None
                        queue.append(scope)
        while queue:
            scope = queue.pop()
            for name, stmts in scope.refs.items():
                targets = self._targets(name)
                if not targets:
                    continue
                witness = next((s for s in stmts if self.dead_guard(s) is None), None)
                if witness is None:
                    continue
                for target in targets:
                    if id(target) in self.live or target is scope:
                        continue
                    if target.def_stmt is not None and self.dead_guard(target.def_stmt) is not None:
                        continue
                    self.live[id(target)] = witness
                    queue.append(target)

    def _live_without_entry(self) -> None:
        """A source with no entry point (nothing it defines is used at its module level, nor by
        another source) is a library or a snippet: its functions are treated as live."""
        for index in self.indexes:
            if not index.functions or any(id(f) in self.live for f in index.functions):
                continue
            names = {f.name for f in index.functions} | set(index.classes)
            entry = any(name in index.module_scope.refs for name in names) or any(
                stmt.scope.is_module for name in names for stmt in self.referrers.get(name, ())
            )
            if not entry:
                for f in index.functions:
                    self.live[id(f)] = None

    @staticmethod
    def _inside(scope: Scope, outer: Scope) -> bool:
        while scope is not None:
            if scope is outer:
                return True
            scope = scope.parent
        return False

    def is_live(self, scope: Scope) -> bool:
        return id(scope) in self.live

    # explanations -------------------------------------------------------------------------

    def _describe_guard(self, guard: Guard, env: tuple[EnvValue, ...], scope: Scope) -> tuple[str, str]:
        index = self.index_of_scope[id(scope)]
        code = index.code(guard.test, 100)
        settings = "; ".join(e.describe() for e in env)
        if guard.kind == "range":
            what = f"the loop `range({code})` runs zero times"
        elif guard.kind == "exit":
            what = f"the function returns early because `{code}` is true"
        else:
            what = f"`{code}` is {'false' if guard.polarity else 'true'}"
        absent = self._absent.get(id(guard.at))
        if absent:
            what += f" in the scored run ({absent})"
        names = ", ".join(e.name for e in env if e.origin in ("default", "script"))
        hint = f"; set {names} to enable this path" if names else ""
        return (f"{what} ({settings}){hint}" if settings else what + hint), code

    def _why_dead_scope(self, scope: Scope, depth: int = 0) -> Activity:
        if scope.def_stmt is not None:
            dead = self.dead_guard(scope.def_stmt)
            if dead is not None:
                reason, code = self._describe_guard(dead[0], dead[1], scope.def_stmt.scope)
                return Activity(False, f"{scope.qualname} is only defined when {reason}", dead[1], code)
        refs = [s for s in self.referrers.get(scope.name, ()) if s.scope is not scope]
        if not refs:
            return Activity(False, f"{scope.qualname} is never called")
        if depth < 4:
            for stmt in refs:
                dead = self.dead_guard(stmt)
                if dead is not None:
                    reason, code = self._describe_guard(dead[0], dead[1], stmt.scope)
                    where = "the module level" if stmt.scope.is_module else stmt.scope.qualname
                    return Activity(False, f"{scope.qualname} is only called from {where} where {reason}", dead[1], code)
            for stmt in refs:
                if not self.is_live(stmt.scope):
                    inner = self._why_dead_scope(stmt.scope, depth + 1)
                    return Activity(False, f"{scope.qualname} is only called from {stmt.scope.qualname}, and {inner.reason}", inner.env, inner.guard)
        return Activity(False, f"{scope.qualname} is not called from code that runs")

    def activity(self, stmt: Stmt) -> Activity:
        """Whether ``stmt`` runs under the defaults; when not, the reason and the variables."""
        dead = self.dead_guard(stmt)
        if dead is not None:
            reason, code = self._describe_guard(dead[0], dead[1], stmt.scope)
            return Activity(False, reason, dead[1], code)
        enabled = list(self._enabled.get(id(stmt), ()))
        ran = list(self._ran.get(id(stmt), ()))
        scope: Scope | None = stmt.scope
        seen = 0
        while scope is not None and not scope.is_module and seen < 12:
            seen += 1
            if not self.is_live(scope):
                return self._why_dead_scope(scope)
            if scope.def_stmt is not None:
                dead = self.dead_guard(scope.def_stmt)
                if dead is not None:
                    return self._why_dead_scope(scope)
            proof = self.scored.proven_scope(id(scope)) if self.scored is not None else None
            if proof is not None:
                if not ran and scope is stmt.scope:  # the function's own line proves it ran
                    ran.append(f"{proof.where()}: `{proof.text[:100]}` (printed by {proof.format.where()})")
                break  # the function ran in a scored run: how it was reached does not matter
            witness = self.live.get(id(scope))
            if witness is not None:
                self.dead_guard(witness)
                enabled.extend(self._enabled.get(id(witness), ()))
                ran.extend(self._ran.get(id(witness), ()))
                scope = witness.scope if not witness.scope.is_module else None
            else:
                scope = scope.parent
        if enabled or ran:
            unique = tuple({e.name: e for e in enabled}.values())
            return Activity(True, env=unique, ran=tuple(dict.fromkeys(ran))[:3])
        return ACTIVE

    def off_scored_path(self, stmt: Stmt) -> str | None:
        """Why code that ran is not on the path of the claimed score (see
        :mod:`auditor.scored.path`), or None when it is, or when the evidence does not tell."""
        if self.scored is None:
            return None
        if self._scored_path is None:
            from auditor.scored.path import ScoredPath

            self._scored_path = ScoredPath(self, self.scored)
        return self._scored_path.off_path(stmt.scope)

    def activity_of_scope(self, scope: Scope) -> Activity:
        if scope.is_module:
            return ACTIVE
        if not self.is_live(scope):
            return self._why_dead_scope(scope)
        return ACTIVE if scope.def_stmt is None else self.activity(scope.def_stmt)


def submission_texts(bundle: Bundle) -> tuple[dict[str, str], dict[str, str]]:
    """Run commands (shell scripts, README) and logs of the submission."""
    texts, logs = {}, {}
    for f in bundle.files:
        name = f.rel.rsplit("/", 1)[-1].lower()
        if (name.endswith(".sh") or name == "readme.md") and f.size < 400_000:
            text = bundle.try_read_text(f.rel)
            if text:
                texts[f.rel] = text
        elif f.kind.value == "log" and f.size < 4_000_000 and len(logs) < 4:
            text = bundle.try_read_text(f.rel)
            if text:
                logs[f.rel] = text
    return texts, logs


def _link_imports(sources: list[PythonSource], indexes: list[SourceIndex], configs: dict[int, Config]) -> None:
    """``from sibling import NAME``: a module's configuration reads NAME from the sibling's."""
    by_module = {s.path.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py"): configs[id(i)] for s, i in zip(sources, indexes)}
    for index in indexes:
        config = configs[id(index)]
        for stmt in index.module_scope.stmts:
            line = stmt.node
            for small in line.body if isinstance(line, cst.SimpleStatementLine) else (line,):
                if not isinstance(small, cst.ImportFrom) or small.relative or small.module is None:
                    continue
                other = by_module.get(dotted(small.module) or "")
                if other is None or other is config or isinstance(small.names, cst.ImportStar):
                    continue
                for alias in small.names:
                    name = dotted(alias.name) or ""
                    local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
                    config.imported.setdefault(local, (other, name))


def program_for(source: PythonSource) -> Program:
    """The program a source belongs to: the one attached to its index by the submission's
    evidence (:class:`auditor.evidence.Evidence`), else the source on its own."""
    index = index_of(source)
    if index.program is None:
        Program([source]).attach()
    assert index.program is not None
    return index.program

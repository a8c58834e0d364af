"""Settings a scored run's log proves by where its lines were printed (parent side).

A line printed from inside ``if args.ttt_enabled:`` means that test held in the run that
printed it, whatever the script's default, the README or a missing run command say. When the
settings known so far (the run's printed values and its run command, else the defaults) make
a guard of the claimed stage's statement fail, and exactly one environment variable the test
reads decides it, that variable had a value that makes the test hold: the harness runs with
it, so that the sandboxed run goes down the path the scored run went down.

The guards are those of the statement that printed the claimed stage and, while its function
has a single caller, those of that call (a line printed inside ``eval_ttt`` proves that
``eval_ttt`` was called). Only a value that makes the test hold under the analysis's own
evaluation is kept; where the test reads several variables, none that are unknown, or none
at all, nothing is inferred.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING

import libcst as cst

from auditor.static.env import Config, EnvValue
from auditor.static.index import walk

if TYPE_CHECKING:
    from auditor.scored.config import ScoredRun
    from auditor.static.index import Guard, Scope, Stmt
    from auditor.static.reach import Program

#: How many callers up a printed line's function is followed (each with a single caller).
MAX_CALLER_DEPTH = 4
#: Values tried for a variable, besides the string literals of the test itself.
_CANDIDATES = ("1", "0")


@dataclass(frozen=True)
class HeldSetting:
    """A variable's value in the scored run, from a guard a printed line proves held."""

    name: str
    value: str
    #: "train_seed1337.log:275 was printed inside `if args.ttt_enabled:` (train_gpt.py:1939)"
    source: str


def held_settings(run: ScoredRun, program: Program, known: Mapping[str, str]) -> list[HeldSetting]:
    """Settings the claimed stage's printed line proves, beyond ``known`` (name -> value, the
    settings of the run from its logs and commands; the defaults are the script's own)."""
    printed = run.stage_printed_by()
    if printed is None:
        return []
    settings: dict[str, str] = dict(known)
    out: list[HeldSetting] = []
    for stmt in _proven_chain(printed.format.stmt, program):
        for guard in stmt.guards:
            if guard.kind not in ("if", "exit"):
                continue
            found = _value_that_holds(guard, stmt.scope, program, settings)
            if found is None:
                continue
            name, value = found
            settings[name] = value
            index = program.index_of_scope[id(stmt.scope)]
            log = f"{PurePath(printed.log).name}:{printed.line}"
            out.append(HeldSetting(name, value, f"{log} was printed where `{index.code(guard.test, 80)}` held "
                                                f"({PurePath(index.source.path).name}:{index.line(guard.at)})"))
    return out


def _proven_chain(stmt: Stmt, program: Program) -> list[Stmt]:
    """The statement, then the call of its function while that function has one caller."""
    chain = [stmt]
    scope = stmt.scope
    for _ in range(MAX_CALLER_DEPTH):
        if scope.is_module or scope.cls is not None:
            break
        callers = [s for s in program.referrers.get(scope.name, ()) if s.scope is not scope and s is not scope.def_stmt]
        if len(callers) != 1 or len(program.by_name.get(scope.name, ())) != 1:
            break  # several callers (or several functions of that name): none is proven
        chain.append(callers[0])
        scope = callers[0].scope
    return chain


def _value_that_holds(guard: Guard, scope: Scope, program: Program, settings: Mapping[str, str]) -> tuple[str, str] | None:
    """The one variable, and a value of it, that makes a failing guard hold; None otherwise."""
    base = program.config_for(scope)
    config = _config(base, settings)
    truth = config.truth(guard.test, scope, guard.kind)
    if not truth.known or truth.value is guard.polarity:
        return None  # unknown, or it holds already: nothing to infer
    readers = [e for e in truth.env if e.origin == "default"]
    if len({e.name for e in truth.env}) != 1 or len(readers) != 1:
        return None
    name = readers[0].name
    for value in (*_CANDIDATES, *_literals(guard.test)):
        trial = _config(base, {**settings, name: value})
        result = trial.truth(guard.test, scope, guard.kind)
        if result.known and result.value is guard.polarity:
            return name, value
    return None


def _config(base: Config, settings: Mapping[str, str]) -> Config:
    config = Config(base.index, main=base.main)
    config.add_overrides({k: EnvValue(k, v, "scored run") for k, v in settings.items()})
    return config


def _literals(test: cst.BaseExpression) -> list[str]:
    """String constants the test compares with (``os.environ.get("MODE") == "ttt"``)."""
    found: list[str] = []
    for node in walk(test):
        value = node.evaluated_value if isinstance(node, cst.SimpleString) else None
        if isinstance(value, str) and len(value) <= 40 and value not in found:
            found.append(value)
    return found

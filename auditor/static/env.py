"""What a script's configuration is when nobody sets an environment variable.

Parameter Golf scripts read their switches from the environment, in a few shapes::

    class Hyperparameters:
        ngram_eval_order = int(os.environ.get("NGRAM_EVAL_ORDER", 0))
    TTT_ENABLED = bool(int(os.getenv("TTT_ENABLED", "1")))
    self.slot_enabled = os.environ.get("SLOT", "0") == "1"      # in a config __init__

:class:`Config` finds these reads (``os.environ.get``, ``os.getenv``, small helper functions
that wrap them) and evaluates expressions over them with every variable at its default:
``args.ngram_eval_order > 0`` is ``False`` with the evidence ``NGRAM_EVAL_ORDER=0``. Anything
it cannot evaluate is :data:`UNKNOWN`, and unknown never makes code inactive. Assignments in
the script itself (``os.environ.setdefault("X", "1")``, ``os.environ["X"] = "1"``) and the
run commands shipped with the submission (``NGRAM_EVAL_ORDER=7 torchrun …`` in a README or a
shell script) override the defaults; the evidence says where a value came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from auditor.source import code_of
from auditor.static.index import ClassInfo, Scope, SourceIndex, walk
from auditor.static.names import dotted


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:  # pragma: no cover - guards against accidental truth tests
        raise TypeError("UNKNOWN has no truth value")


UNKNOWN: Any = _Unknown()

ENV_GETTERS = frozenset({"os.environ.get", "os.getenv", "environ.get", "getenv", "os.environ.setdefault"})
#: Objects whose attributes are configuration (``args.x``, ``h.x`` …) when the attribute is known.
CONFIG_OBJECTS = frozenset({"args", "h", "hp", "hparams", "H", "cfg", "config", "conf", "opts", "opt", "a", "self", "settings", "params", "hyper", "P", "C", "A"})

#: The launcher's variable for the number of processes (torchrun's contract, not a script's name).
WORLD_SIZE_VARIABLE = "WORLD_SIZE"

_SHELL_ASSIGN = re.compile(r"(?:^|[\s;(`'\"])(?:export\s+)?([A-Z][A-Z0-9_]{2,})=(\"[^\"]*\"|'[^']*'|[^\s;&|`'\"]+)")


@dataclass(frozen=True)
class EnvValue:
    """An environment variable's value as the audit assumes it, and where that comes from."""

    name: str
    value: Any  # the default as written (str, int, float, None) or UNKNOWN
    origin: str  # "default" | "script" | a file name such as "run.sh" or "README.md"

    def describe(self) -> str:
        shown = "unset" if self.value is None else repr(self.value) if isinstance(self.value, str) else str(self.value)
        if self.origin == "default":
            return f"{self.name} defaults to {shown}"
        if self.origin == "script":
            return f"{self.name} is set to {shown} in the script"
        return f"{self.name}={self.value} in {self.origin}"


@dataclass(frozen=True)
class Evaluated:
    """A value and the environment variables it was computed from."""

    value: Any
    env: tuple[EnvValue, ...] = ()

    @property
    def known(self) -> bool:
        return self.value is not UNKNOWN


def _literal(node: cst.BaseExpression) -> Any:
    if isinstance(node, cst.Integer):
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            return UNKNOWN
    if isinstance(node, cst.Float):
        try:
            return float(node.value.replace("_", ""))
        except ValueError:
            return UNKNOWN
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value
        return value if isinstance(value, str) else UNKNOWN
    if isinstance(node, cst.Name) and node.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.value]
    return UNKNOWN


def _merge(*parts: Iterable[EnvValue]) -> tuple[EnvValue, ...]:
    seen: dict[str, EnvValue] = {}
    for part in parts:
        for env in part:
            seen.setdefault(env.name, env)
    return tuple(seen.values())


_CMP = {
    cst.LessThan: lambda a, b: a < b,
    cst.LessThanEqual: lambda a, b: a <= b,
    cst.GreaterThan: lambda a, b: a > b,
    cst.GreaterThanEqual: lambda a, b: a >= b,
    cst.Equal: lambda a, b: a == b,
    cst.NotEqual: lambda a, b: a != b,
    cst.In: lambda a, b: a in b,
    cst.NotIn: lambda a, b: a not in b,
    cst.Is: lambda a, b: a is b,
    cst.IsNot: lambda a, b: a is not b,
}
_BIN = {
    cst.Add: lambda a, b: a + b,
    cst.Subtract: lambda a, b: a - b,
    cst.Multiply: lambda a, b: a * b,
    cst.Divide: lambda a, b: a / b,
    cst.FloorDivide: lambda a, b: a // b,
    cst.Modulo: lambda a, b: a % b,
    cst.Power: lambda a, b: a**b if abs(b) < 64 else UNKNOWN,
    cst.BitAnd: lambda a, b: a & b,
    cst.BitOr: lambda a, b: a | b,
}
_PURE_FUNCS = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "abs": abs,
    "min": min,
    "max": max,
    "len": len,
    "round": round,
}
_STR_METHODS = frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "casefold", "isdigit"})
#: Conversions whose result prints the text they parsed (and, in a log, an annotation's type).
_TYPE_NAMES = frozenset({"int", "float", "bool", "str"})
#: String methods whose result, set as the variable, prints the same again.
_NORMALIZING = _STR_METHODS - {"isdigit"}


@dataclass
class Config:
    """Environment defaults and configuration attributes of one script."""

    index: SourceIndex
    #: The script is run (``__name__ == "__main__"``), rather than imported.
    main: bool = True
    overrides: Mapping[str, EnvValue] = field(default_factory=dict)
    env_reads: dict[str, EnvValue] = field(default_factory=dict)
    attributes: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)
    constants: dict[str, cst.BaseExpression] = field(default_factory=dict)
    env_helpers: set[str] = field(default_factory=set)
    #: Names bound to an environment getter itself (``_e = os.environ.get``).
    env_aliases: set[str] = field(default_factory=set)
    config_classes: set[str] = field(default_factory=set)
    #: Names imported from the submission's other modules: local name -> (their config, name there).
    imported: dict[str, tuple[Config, str]] = field(default_factory=dict)
    # Keyed by the identities of (expression, scope): both live as long as the module does.
    _memo: dict[tuple[int, int], Evaluated] = field(default_factory=dict)
    _active: set[tuple[int, int]] = field(default_factory=set)
    _config_names: dict[tuple[str, int], bool] = field(default_factory=dict)
    #: attribute_env / constant_env, computed once per set of overrides.
    _printing: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        index = self.index
        # Helper functions that wrap os.environ: def _env(name, default): return int(os.environ.get(name, default))
        for scope in index.functions:
            if scope.cls is None and scope.params and any(c.qualified in ENV_GETTERS or c.name in ENV_GETTERS for c in scope.calls):
                self.env_helpers.add(scope.name)
        for scope in index.scopes:
            for assignment in scope.assignments:
                value = assignment.value
                if (isinstance(assignment.target, cst.Name) and assignment.kind == "assign"
                        and isinstance(value, (cst.Attribute, cst.Name))
                        and ((index.imports.qualify(value) or "") in ENV_GETTERS or dotted(value) in ENV_GETTERS)):
                    self.env_aliases.add(assignment.target.value)
        module = index.module_scope
        for assignment in module.assignments:
            if isinstance(assignment.target, cst.Name) and assignment.kind in ("assign", "ann") and assignment.value is not None:
                if not assignment.stmt.loops and assignment.position is None:
                    name = assignment.target.value
                    if name in self.constants:
                        self.constants[name] = None  # type: ignore[assignment]  # assigned twice: unknown
                    else:
                        self.constants[name] = assignment.value
        # Configuration attributes: class attributes, and self.x = … in __init__, of the
        # classes that read the environment (Hyperparameters and the like).
        for info in index.classes.values():
            if info.is_module or not self._reads_env(info):
                continue
            self.config_classes.add(info.name)
            for name, value in info.attributes.items():
                self.attributes.setdefault(name, []).append(value)
            init = info.methods.get("__init__")
            if init is not None:
                for assignment in init.assignments:
                    target = assignment.target
                    if (
                        isinstance(target, cst.Attribute)
                        and isinstance(target.value, cst.Name)
                        and target.value.value == "self"
                        and assignment.value is not None
                        and assignment.kind in ("assign", "ann")
                        and not assignment.stmt.guards
                        and not assignment.stmt.loops
                        and assignment.position is None
                    ):
                        self.attributes.setdefault(target.attr.value, []).append(assignment.value)
        # Values the script sets for itself.
        script_sets: dict[str, EnvValue] = {}
        for call in module.calls:
            if call.qualified in ("os.environ.setdefault",) and not call.stmt.guards:
                key, value = call.arg(0), call.arg(1)
                if key is not None and value is not None and isinstance(_literal(key), str):
                    script_sets[_literal(key)] = EnvValue(_literal(key), _literal(value), "script")
        for assignment in module.assignments:
            target = assignment.target
            if isinstance(target, cst.Subscript) and dotted(target.value) in ("os.environ", "environ") and not assignment.stmt.guards:
                element = target.slice[0].slice if target.slice else None
                if isinstance(element, cst.Index) and assignment.value is not None:
                    key = _literal(element.value)
                    if isinstance(key, str):
                        script_sets[key] = EnvValue(key, _literal(assignment.value), "script")
        merged = dict(script_sets)
        merged.update(self.overrides)
        self.overrides = merged

    def _is_env_call(self, node: cst.CSTNode) -> bool:
        if not isinstance(node, cst.Call):
            return False
        name = dotted(node.func) or ""
        return (name in ENV_GETTERS or name in self.env_aliases or (self.index.imports.qualify(node.func) or "") in ENV_GETTERS
                or name.split(".")[-1] in self.env_helpers)

    def _reads_env(self, info) -> bool:
        from auditor.static.index import walk

        for value in info.attributes.values():
            if any(self._is_env_call(n) for n in walk(value)):
                return True
        init = info.methods.get("__init__")
        return init is not None and any(self._is_env_call(c.node) for c in init.calls)

    def attribute_env(self) -> dict[str, str]:
        """Configuration attributes whose printed value is one environment variable's: name -> variable.

        A dump line ``ttt_epochs: 3`` says what ``TTT_EPOCHS`` was only when the attribute shows
        the variable itself: its text, parsed (``int(os.environ.get("TTT_EPOCHS", 1))``), or a
        flag that is true exactly when the variable is ``"1"`` (``os.environ.get("TTT", "0") ==
        "1"``; printed ``True``, read back as ``1``). A value derived from a variable says nothing
        about the variable's text: ``is_main_process = rank == 0`` prints ``True`` when ``RANK``
        is ``0``, a path joined onto ``DATA_DIR`` is not ``DATA_DIR``.
        """
        if "attributes" not in self._printing:
            single = {name: values[0] for name, values in self.attributes.items() if len(values) == 1}
            self._printing["attributes"] = self._printing_env(single)
        return self._printing["attributes"]

    def constant_env(self) -> dict[str, str]:
        """Module-level names whose printed value is one environment variable's (as :meth:`attribute_env`)."""
        if "constants" not in self._printing:
            known = {name: value for name, value in self.constants.items() if value is not None}
            self._printing["constants"] = self._printing_env(known)
        return self._printing["constants"]

    def _printing_env(self, expressions: Mapping[str, cst.BaseExpression]) -> dict[str, str]:
        scope = self.index.module_scope
        out: dict[str, str] = {}
        flags: dict[str, tuple[cst.BaseExpression, str]] = {}
        for name, value in expressions.items():
            result = self.evaluate(value, scope)
            if len(result.env) != 1 or result.env[0].origin != "default":
                continue
            if self._parsed_read(value, 0):
                out[name] = result.env[0].name
            elif isinstance(result.value, bool):
                flags[name] = (value, result.env[0].name)
        if flags:
            # each flag reads one variable: two configurations, every such variable "1" or "0"
            on, off = (
                Config(self.index, main=self.main, overrides={**self.overrides, **{var: EnvValue(var, text, "probe") for _, var in flags.values()}})
                for text in ("1", "0")
            )
            for name, (value, var) in flags.items():
                if on.evaluate(value, scope).value is True and off.evaluate(value, scope).value is False:
                    out[name] = var
        return out

    def _parsed_read(self, node: cst.BaseExpression, depth: int) -> bool:
        """The expression is an environment read, at most converted (``int``, ``float``, ``bool``,
        ``str``) or normalized (``.strip().lower()``)."""
        if depth > 4:
            return False
        if isinstance(node, cst.Call):
            name = dotted(node.func) or ""
            if name in _TYPE_NAMES and len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
                return self._parsed_read(node.args[0].value, depth + 1)
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in _NORMALIZING and not node.args:
                return self._parsed_read(node.func.value, depth + 1)  # ``.strip().lower()``: its own text again
            return self._is_env_call(node)
        if isinstance(node, cst.Subscript):
            return dotted(node.value) in ("os.environ", "environ")
        if isinstance(node, cst.Name):
            constant = self.constants.get(node.value)
            return constant is not None and self._parsed_read(constant, depth + 1)
        return False

    def read_names(self) -> set[str]:
        """Names of the environment variables the script reads with a literal name."""
        names = set()
        for scope in self.index.scopes:
            for call in scope.calls:
                if call.qualified in ENV_GETTERS or call.name in ENV_GETTERS or call.name.split(".")[-1] in self.env_helpers:
                    first = call.arg(0)
                    if first is not None and isinstance(_literal(first), str):
                        names.add(_literal(first))
        return names

    def add_overrides(self, found: Mapping[str, EnvValue]) -> None:
        """Values set by the submission's run commands (they win over the script's defaults)."""
        if found:
            merged = dict(self.overrides)
            merged.update(found)
            self.overrides = merged
            self._memo.clear()
            self._printing.clear()

    # evaluation ----------------------------------------------------------------------------

    def env(self, name: str, default: Any) -> EnvValue:
        if name in self.overrides:
            return self.overrides[name]
        value = EnvValue(name, default, "default")
        self.env_reads.setdefault(name, value)
        return value

    def evaluate(self, node: cst.BaseExpression, scope: Scope | None = None, depth: int = 0) -> Evaluated:
        """The value of an expression with every environment variable at its default."""
        key = (id(node), id(scope))  # a pair: a combined integer could collide between pairs
        if key in self._memo:
            return self._memo[key]
        if depth > 12 or key in self._active:
            return Evaluated(UNKNOWN)
        self._active.add(key)
        try:
            result = self._evaluate(node, scope, depth)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, AttributeError, IndexError, KeyError):
            result = Evaluated(UNKNOWN)
        finally:
            self._active.discard(key)
        self._memo[key] = result
        return result

    def _evaluate(self, node: cst.BaseExpression, scope: Scope | None, depth: int) -> Evaluated:
        literal = _literal(node)
        if literal is not UNKNOWN or isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
            return Evaluated(literal)
        ev = lambda n: self.evaluate(n, scope, depth + 1)  # noqa: E731
        if isinstance(node, cst.Name):
            return self._name(node.value, scope, depth)
        if isinstance(node, cst.Attribute):
            base = dotted(node.value)
            if base == "self" or base == "cls":
                owner = scope.cls if scope is not None else None
                if owner is None:
                    return Evaluated(UNKNOWN)
                if owner.name not in self.config_classes:
                    return self._instance_attribute(owner, node.attr.value, depth)
                return self._attribute(node.attr.value, scope, depth)
            if base is not None and self.is_config_object(base, scope):
                return self._attribute(node.attr.value, scope, depth)
            if base is not None and "." in base and self.is_config_object(base.split(".")[0], scope) \
                    and self._nested_config(base.split(".")[-1]):
                # a section of the configuration (``config.eval.ngram_eval_enabled`` with
                # ``eval: EvalConfig = field(default_factory=EvalConfig)``)
                return self._attribute(node.attr.value, scope, depth)
            return Evaluated(UNKNOWN)
        if isinstance(node, cst.UnaryOperation):
            inner = ev(node.expression)
            if not inner.known:
                return Evaluated(UNKNOWN, inner.env)
            if isinstance(node.operator, cst.Not):
                return Evaluated(not inner.value, inner.env)
            if isinstance(node.operator, cst.Minus):
                return Evaluated(-inner.value, inner.env)
            return Evaluated(UNKNOWN, inner.env)
        if isinstance(node, cst.BooleanOperation):
            left = ev(node.left)
            is_and = isinstance(node.operator, cst.And)
            if left.known and (bool(left.value) is not is_and):
                return Evaluated(left.value, left.env)  # short circuit decides
            right = ev(node.right)
            if left.known and right.known:
                return Evaluated(right.value, _merge(left.env, right.env))
            # ``False and unknown`` is handled above; ``unknown and False`` is False too.
            if right.known and bool(right.value) is not is_and:
                return Evaluated(right.value, right.env)
            return Evaluated(UNKNOWN, _merge(left.env, right.env))
        if isinstance(node, cst.Comparison):
            left = ev(node.left)
            env = left.env
            value = left.value
            result: Any = True
            for target in node.comparisons:
                right = ev(target.comparator)
                env = _merge(env, right.env)
                op = _CMP.get(type(target.operator))
                if op is None or value is UNKNOWN or right.value is UNKNOWN:
                    return Evaluated(UNKNOWN, env)
                if not op(value, right.value):
                    result = False
                value = right.value
            return Evaluated(result, env)
        if isinstance(node, cst.BinaryOperation):
            left, right = ev(node.left), ev(node.right)
            op = _BIN.get(type(node.operator))
            env = _merge(left.env, right.env)
            if op is None or not left.known or not right.known:
                return Evaluated(UNKNOWN, env)
            return Evaluated(op(left.value, right.value), env)
        if isinstance(node, cst.IfExp):
            test = ev(node.test)
            if not test.known:
                return Evaluated(UNKNOWN, test.env)
            chosen = ev(node.body if test.value else node.orelse)
            return Evaluated(chosen.value, _merge(test.env, chosen.env))
        if isinstance(node, (cst.Tuple, cst.List, cst.Set)):
            values = [ev(e.value) for e in node.elements if isinstance(e, cst.Element)]
            env = _merge(*(v.env for v in values))
            if any(not v.known for v in values):
                return Evaluated(UNKNOWN, env)
            return Evaluated(tuple(v.value for v in values), env)
        if isinstance(node, cst.Call):
            return self._call(node, scope, depth)
        return Evaluated(UNKNOWN)

    def _makes_config(self, value: cst.BaseExpression | None) -> bool:
        """Whether a class attribute's value holds a configuration class (``eval: EvalConfig =
        field(default_factory=EvalConfig)``, ``eval = EvalConfig()``)."""
        return value is not None and any(isinstance(n, cst.Name) and n.value in self.config_classes for n in walk(value))

    def _holds_sections(self, name: str) -> bool:
        """Whether the class ``name`` of the source has configuration classes as attributes."""
        info = self.index.classes.get(name)
        return info is not None and any(self._makes_config(value) for value in info.attributes.values())

    def _nested_config(self, attr: str) -> bool:
        """Whether a class's attribute ``attr`` holds a configuration class."""
        return any(self._makes_config(info.attributes.get(attr)) for info in self.index.classes.values())

    def _instance_attribute(self, owner: ClassInfo, attr: str, depth: int) -> Evaluated:
        """``self.x`` of an object that is not the configuration: the value its constructor
        gives it (``self.temporal_conv = args.ple_temporal_conv``), when no other method
        rebinds it and that value is configuration."""
        init = owner.methods.get("__init__")
        if init is None:
            return Evaluated(UNKNOWN)
        bound = [a for method in owner.methods.values() for a in method.assignments
                 if isinstance(a.target, cst.Attribute) and dotted(a.target.value) == "self" and a.target.attr.value == attr]
        if len(bound) != 1 or bound[0].stmt.scope is not init or bound[0].value is None or bound[0].kind != "assign":
            return Evaluated(UNKNOWN)
        if bound[0].stmt.guards:
            return Evaluated(UNKNOWN)  # set on one branch only
        result = self.evaluate(bound[0].value, init, depth + 1)
        if not result.env:
            return Evaluated(UNKNOWN, result.env)  # only configuration decides
        return result

    def _name(self, name: str, scope: Scope | None, depth: int) -> Evaluated:
        if name == "__name__":
            return Evaluated("__main__" if self.main else "<imported>")
        # A local assigned once in the function, or several times to the same expression (a flag
        # read from the environment again further down), evaluates to that value.
        current = scope
        while current is not None and not current.is_module:
            assigned = current.assigned(name)
            if assigned:
                plain = [a for a in assigned
                         if a.kind in ("assign", "ann") and a.value is not None and a.position is None]
                if len(plain) == len(assigned) and (
                        len(plain) == 1 or len({code_of(a.value) for a in plain}) == 1):
                    result = self.evaluate(plain[0].value, current, depth + 1)
                    # Only configuration decides: a local computed from nothing in the
                    # environment (a list that is appended to later, a counter) is unknown.
                    if not result.env or isinstance(result.value, (list, tuple, dict, set)):
                        return Evaluated(UNKNOWN, result.env)
                    return result
                return Evaluated(UNKNOWN)
            if name in current.param_names:
                return Evaluated(UNKNOWN)
            current = current.parent
        value = self.constants.get(name)
        if value is None:
            link = self.imported.get(name)
            if link is not None and link[0] is not self and link[0].constants.get(link[1]) is not None:
                other, original = link
                return other._name(original, None, depth + 1)
            return Evaluated(UNKNOWN)
        result = self.evaluate(value, self.index.module_scope, depth + 1)
        if isinstance(result.value, (list, tuple, dict, set)) and not result.env:
            return Evaluated(UNKNOWN)
        return result

    def is_config_object(self, name: str, scope: Scope | None, depth: int = 0) -> bool:
        """Whether a name holds the configuration: an instance of a class that reads the
        environment, known from where it comes from (``h = Hyperparameters()``, a parameter
        annotated with the class, or one every caller passes the configuration to) or, as a
        tie-breaker, from a conventional name (``args``, ``hp``)."""
        if name in CONFIG_OBJECTS or name in self.config_classes or name.split(".")[-1] in CONFIG_OBJECTS:
            return True
        if not self.config_classes or "." in name or depth > 3:
            return False
        key = (name, id(scope))
        known = self._config_names.get(key)
        if known is None:
            self._config_names[key] = False  # a cycle through the callers decides nothing
            known = self._config_provenance(name, scope, depth)
            self._config_names[key] = known
        return known

    def _config_provenance(self, name: str, scope: Scope | None, depth: int) -> bool:
        current = scope
        while current is not None:
            node = current.node
            if not current.is_module and name in current.param_names and isinstance(node, cst.FunctionDef):
                for param in (*node.params.posonly_params, *node.params.params, *node.params.kwonly_params):
                    if param.name.value == name and param.annotation is not None:
                        annotated = dotted(param.annotation.annotation) or ""
                        if annotated.rsplit(".", 1)[-1] in self.config_classes:
                            return True
                return self._passed_config(current, name, depth)
            assigned = current.assigned(name)
            if assigned:
                return all(
                    a.value is not None and a.position is None and self._config_value(a.value, current, depth)
                    for a in assigned
                )
            if current.is_module:
                return False
            current = current.parent
        return False

    def _config_value(self, value: cst.BaseExpression, scope: Scope, depth: int) -> bool:
        if isinstance(value, cst.Call):
            made = (dotted(value.func) or "").rsplit(".", 1)[-1]
            return made in self.config_classes or self._holds_sections(made)
        if isinstance(value, cst.Name):
            return self.is_config_object(value.value, scope, depth + 1)
        return False

    def _passed_config(self, scope: Scope, name: str, depth: int) -> bool:
        """Whether every call of a function in this source passes the configuration for ``name``."""
        node = scope.node
        if not isinstance(node, cst.FunctionDef) or scope.cls is not None:
            return False
        positional = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        found = False
        for caller in self.index.scopes:
            for call in caller.calls:
                if not isinstance(call.node.func, cst.Name) or call.node.func.value != scope.name:
                    continue
                arg = call.arg(positional.index(name), name) if name in positional else call.arg(10**6, name)
                if arg is None:
                    continue
                if not (isinstance(arg, cst.Name) and self.is_config_object(arg.value, caller, depth + 1)):
                    return False
                found = True
        return found

    def _attribute(self, name: str, scope: Scope | None, depth: int) -> Evaluated:
        values = self.attributes.get(name)
        if not values:
            return Evaluated(UNKNOWN)
        results = [self.evaluate(v, self.index.module_scope, depth + 1) for v in values]
        env = _merge(*(r.env for r in results))
        distinct = {repr(r.value) for r in results}
        if len(distinct) != 1 or not results[0].known:
            return Evaluated(UNKNOWN, env)
        return Evaluated(results[0].value, env)

    def _call(self, node: cst.Call, scope: Scope | None, depth: int) -> Evaluated:
        name = dotted(node.func) or ""
        qualified = self.index.imports.qualify(node.func) or name
        args = [a for a in node.args if a.keyword is None and not a.star]
        kwargs = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
        if qualified.endswith("distributed.get_world_size") and not args:
            # the number of processes: known only from a run's log (auditor.scored.config)
            world = self.env(WORLD_SIZE_VARIABLE, UNKNOWN)
            value = world.value
            if isinstance(value, str) and value.isdigit():
                return Evaluated(int(value), (world,))
            return Evaluated(UNKNOWN)
        if (qualified in ENV_GETTERS or name in ENV_GETTERS or name in self.env_aliases
                or name.split(".")[-1] in self.env_helpers and name.split(".")[-1] not in ("get",)):
            if not args:
                return Evaluated(UNKNOWN)
            key = self.evaluate(args[0].value, scope, depth + 1)
            if not isinstance(key.value, str):
                return Evaluated(UNKNOWN)
            default_node = args[1].value if len(args) > 1 else kwargs.get("default")
            computed = self.evaluate(default_node, scope, depth + 1) if default_node is not None else Evaluated(None)
            default = computed.value
            env = self.env(key.value, default)
            # a default computed from a scored run's value (its world size) carries that evidence
            from_run = tuple(e for e in computed.env if e.origin not in ("default", "script")) if env.origin == "default" else ()
            value = env.value
            if name.split(".")[-1] in self.env_helpers and qualified not in ENV_GETTERS:
                # A helper casts the string to the type of its default: _env("X", 0) -> int.
                if isinstance(default, bool) and isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                elif isinstance(default, (int, float)) and isinstance(value, str):
                    try:
                        value = type(default)(float(value)) if isinstance(default, int) else float(value)
                    except ValueError:
                        value = UNKNOWN
            return Evaluated(value, (env, *from_run))
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in _STR_METHODS and not args:
            inner = self.evaluate(node.func.value, scope, depth + 1)
            if isinstance(inner.value, str):
                return Evaluated(getattr(inner.value, node.func.attr.value)(), inner.env)
            return Evaluated(UNKNOWN, inner.env)
        if name == "getattr" and len(args) >= 2:
            attr = self.evaluate(args[1].value, scope, depth + 1)
            if isinstance(attr.value, str):
                found = self._attribute(attr.value, scope, depth)
                if found.known or len(args) < 3:
                    return found
                default = self.evaluate(args[2].value, scope, depth + 1)
                return Evaluated(default.value if not found.env else UNKNOWN, found.env)
            return Evaluated(UNKNOWN)
        func = _PURE_FUNCS.get(name)
        if func is not None and args and not kwargs:
            values = [self.evaluate(a.value, scope, depth + 1) for a in args]
            env = _merge(*(v.env for v in values))
            if any(not v.known for v in values):
                return Evaluated(UNKNOWN, env)
            raw = [v.value for v in values]
            if name == "int" and isinstance(raw[0], str):
                raw[0] = raw[0].strip()
                try:
                    return Evaluated(int(raw[0], *(raw[1:2])), env)
                except ValueError:
                    return Evaluated(int(float(raw[0])), env)
            if name == "bool" and isinstance(raw[0], str):
                return Evaluated(bool(raw[0]), env)
            return Evaluated(func(*raw), env)
        return Evaluated(UNKNOWN)

    # guards ------------------------------------------------------------------------------

    def truth(self, node: cst.BaseExpression, scope: Scope | None, kind: str = "if") -> Evaluated:
        """Whether a guard's test holds (``range`` guards: whether the loop runs at all)."""
        result = self.evaluate(node, scope)
        if not result.known:
            return result
        if kind == "range":
            try:
                return Evaluated(result.value > 0, result.env)
            except TypeError:
                return Evaluated(UNKNOWN, result.env)
        try:
            return Evaluated(bool(result.value), result.env)
        except TypeError:
            return Evaluated(UNKNOWN, result.env)


def _runs_python(line: str) -> bool:
    """A shell line that runs a Python script (``torchrun …``, ``python3 train_gpt.py``)."""
    return "torchrun" in line or re.search(r"\bpython[0-9.]*\s", line) is not None


def run_scenarios(texts: Mapping[str, str], wanted: Iterable[str]) -> list[dict[str, EnvValue]]:
    """Environment settings of the run commands shipped with a submission, one dict per command.

    A command is a line (backslash continuations joined) of a shell script or README that
    runs ``torchrun`` or ``python``; ``NAME=value`` words on it, and ``export NAME=value``
    lines of the same file, set variables for that run. Only variables the script reads
    are kept; commands that set none of them are dropped.
    """
    wanted_set = set(wanted)
    scenarios: list[dict[str, EnvValue]] = []
    for name, text in texts.items():
        exports: dict[str, EnvValue] = {}
        commands: list[dict[str, EnvValue]] = []
        for line in text.replace("\\\n", " ").splitlines():
            settings = {
                var: EnvValue(var, value.strip("'\""), name)
                for var, value in _SHELL_ASSIGN.findall(line)
                if var in wanted_set
            }
            stripped = line.strip()
            if stripped.startswith("export "):
                exports.update(settings)
            elif _runs_python(line):
                commands.append(settings)
        for command in commands or ([{}] if exports else []):
            merged = {**exports, **command}
            if merged and merged not in scenarios:
                scenarios.append(merged)
    return scenarios[:12]


def commands_set_all(texts: Mapping[str, str], wanted: Iterable[str], scripts: Iterable[str]) -> bool:
    """Whether the shipped commands that run one of ``scripts`` (``torchrun … train_gpt.py``)
    exist and each sets (itself or by an ``export`` of its file) at least one variable of
    ``wanted``: then they, not the bare defaults, say how the submission was run. A plain
    command of the script (``torchrun --nproc_per_node=8 train_gpt.py``) keeps the defaults."""
    wanted_set, names = set(wanted), [n for n in scripts if n]
    found = False
    for text in texts.values():
        lines = text.replace("\\\n", " ").splitlines()
        exported = any(line.strip().startswith("export ") and any(v in wanted_set for v, _ in _SHELL_ASSIGN.findall(line))
                       for line in lines)
        for line in lines:
            if not any(re.search(rf"(^|[\s/]){re.escape(n)}\b", line) for n in names):
                continue
            if not _runs_python(line):
                continue
            found = True
            if not exported and not any(v in wanted_set for v, _ in _SHELL_ASSIGN.findall(line)):
                return False
    return found


_LOG_VALUE = {"enabled": "1", "true": "1", "on": "1", "yes": "1", "disabled": "0", "false": "0", "off": "0", "no": "0", "none": "0"}


def log_scenarios(logs: Mapping[str, str], attributes: Mapping[str, str],
                  code_lines: frozenset[str] = frozenset()) -> list[dict[str, EnvValue]]:
    """Settings a submission's logs print (``ngram_cache:enabled``, ``ttt_epochs=3``), one dict per log.

    ``attributes`` maps a configuration attribute to the environment variable it reads.
    ``code_lines`` are the stripped lines of the submission's sources: a log that dumps its
    script holds ``rope_dims=rope_dims,`` and ``seed = int(os.environ.get(...))``, which are
    code, not the values the run printed.
    """
    if not attributes:
        return []
    pattern = re.compile(
        r"(?:^|[\s,{(])(" + "|".join(re.escape(a) for a in sorted(attributes, key=len, reverse=True)) + r")[ \t]*[:=][ \t]*['\"]?([\w.+-]+)"
        # the whole value, on its line: not the start of a schedule (256:8,2000:24), a list (4,5)
        # or a call (a code dump's ``seed = int(...)``); an empty value is no value
        r"(?=$|[ \t]|,(?:[ \t]|$|[A-Za-z_]\w*[ \t]*[:=])|[})\]'\";])",
        re.M,
    )
    scenarios: list[dict[str, EnvValue]] = []
    for name, text in logs.items():
        found: dict[str, EnvValue] = {}
        if code_lines:
            text = "\n".join(line for line in text.splitlines() if line.strip() not in code_lines)
        for attr, raw in pattern.findall(text):
            var = attributes[attr]
            if var in found or raw in _TYPE_NAMES:
                continue  # a code dump's annotation (``num_layers: int = ...``) is no value
            value = _LOG_VALUE.get(raw.lower(), raw)
            found[var] = EnvValue(var, value, name)
        if found and found not in scenarios:
            scenarios.append(found)
    return scenarios[:6]

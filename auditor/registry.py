"""Loads the rule catalogue from the top-level ``rules/`` folder.

The catalogue is loaded by path through a synthetic package (``auditor.catalogue``), as Fixit
loads local rules, so that ``rules`` never becomes a generic top-level package in
site-packages. In a source checkout or an editable install the folder is ``rules/`` beside
``auditor/``; a wheel ships it as ``auditor/_catalogue``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
from pathlib import Path

from auditor.rule import Rule

PACKAGE = "auditor.catalogue"
CODE_PATTERN = re.compile(r"^PG\d{3}$")


class RegistryError(RuntimeError):
    """The catalogue is inconsistent (two rules with one code, a module that fails to import)."""


def catalogue_dir() -> Path:
    """The folder the rules are loaded from."""
    here = Path(__file__).resolve().parent
    packaged = here / "_catalogue"
    if packaged.is_dir():
        return packaged
    return here.parent / "rules"


def _ensure_package(name: str, path: Path) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(path)]
    sys.modules[name] = module


@functools.cache
def all_rules() -> dict[str, type[Rule]]:
    """Every rule of the catalogue by code, in code order."""
    root = catalogue_dir()
    if not root.is_dir():
        raise RegistryError(f"rule catalogue not found at {root}")
    _ensure_package(PACKAGE, root)
    found: dict[str, type[Rule]] = {}
    for path in sorted(root.rglob("pg[0-9][0-9][0-9]_*.py")):
        rel = path.relative_to(root).with_suffix("")
        for depth in range(1, len(rel.parts)):
            _ensure_package(".".join((PACKAGE, *rel.parts[:depth])), root.joinpath(*rel.parts[:depth]))
        name = ".".join((PACKAGE, *rel.parts))
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken rule module is a bug in the catalogue
            raise RegistryError(f"cannot import rule module {path.name}: {exc}") from exc
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, Rule)
                and obj.__module__ == module.__name__
                and "CODE" in vars(obj)
            ):
                if obj.CODE in found:
                    raise RegistryError(f"two rules share code {obj.CODE}: {found[obj.CODE].__name__}, {obj.__name__}")
                found[obj.CODE] = obj
    return dict(sorted(found.items()))


def get(code: str) -> type[Rule]:
    """The rule with this code; ``KeyError`` if there is none."""
    return all_rules()[code.upper()]


def by_kind(kind: str) -> list[type[Rule]]:
    """The rules of one kind: ``static``, ``records``, ``runtime`` or ``tool``."""
    return [rule for rule in all_rules().values() if rule.KIND == kind]


def select(codes: list[str] | None = None, ignore: list[str] | None = None) -> set[str]:
    """Codes to run: all, or those matching a prefix in ``codes``, minus ``ignore`` prefixes.

    ``PG1`` selects every static rule, ``PG101`` one rule. Tool results (PG9xx) say what could
    not be checked, so ``codes`` never drops them; only ``ignore`` does.
    """
    chosen = set()
    for code in all_rules():
        wanted = not codes or any(code.startswith(prefix.upper()) for prefix in codes)
        dropped = any(code.startswith(prefix.upper()) for prefix in ignore or ())
        if (wanted or code.startswith("PG9")) and not dropped:
            chosen.add(code)
    return chosen

"""The base of static rules: checks that read one Python source."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from auditor.findings import Finding
from auditor.rule import Rule
from auditor.source import PythonSource, Role


class StaticRule(Rule):
    """A check over one parsed Python source (script, helper module, or decoded payload).

    ``check`` receives a source that parsed; it reports findings located with
    ``source.location(node)``. ``ROLES`` says which sources the rule looks at: by default the
    main script and the modules it uses, not auxiliary scripts that never run at eval time.
    """

    KIND: ClassVar[str] = "static"
    ROLES: ClassVar[frozenset[Role]] = frozenset({Role.MAIN, Role.MODULE})

    def check(self, source: PythonSource) -> Iterable[Finding]:  # pragma: no cover - interface
        raise NotImplementedError

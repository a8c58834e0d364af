"""PG110 dynamic-code."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule

_DYNAMIC = frozenset({"exec", "eval", "compile", "builtins.exec", "builtins.eval", "builtins.compile"})


class DynamicCode(StaticRule):
    """
    ## What it does
    Finds `exec`, `eval` and `compile` of code that the static unpacker could not decode:
    a string built at run time, read from a file that is not part of the submission, or
    downloaded. Self-extracting wrappers that were decoded (`exec(lzma.decompress(
    b85decode("…")))`) are not reported, and neither is `exec(open("helper.py").read())`
    when `helper.py` is in the submission and analysed; a decoder chain that could not be
    decoded is PG904's.

    ## Why is this bad?
    Code that only exists at run time cannot be audited: none of the other checks see it,
    and its bytes may not be counted in the artifact. The README asks that counted code live
    in `train_gpt.py` and that the artifact be self-contained.

    ## Example
    ```python
    exec(open(os.environ["EXTRA_CODE"]).read())
    ```

    ## Use instead
    Ship the code as source in the records folder, or as a literal self-extracting wrapper
    that can be decoded without running it.

    ## References
    - README ("All counted code should live in the train_gpt.py script"); R-SIZE-CODE.
    """

    CODE = "PG110"
    NAME = "dynamic-code"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README", "R-SIZE-CODE")
    TAGS = ("dynamic_code",)
    VALID = (
        Valid(code="import torch\nmodel = torch.compile(model)\nmodel.eval()\n", note="torch.compile and Module.eval are not builtins"),
        Valid(
            files={"train_gpt.py": 'exec(open("helper.py").read())\n', "helper.py": "x = 1\n"},
            note="the exec'd file is part of the submission and analysed",
        ),
    )
    INVALID = (
        Invalid(code='import os\nexec(open(os.environ["EXTRA_CODE"]).read())\n', lines=(2,)),
        Invalid(code="import sys\nfn = eval(sys.argv[1])\n", lines=(2,)),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        bundled = self._bundled_names(source)
        reported: set[int] = set()
        for scope in index.scopes:
            for call in scope.calls:
                if id(call.stmt) in reported:
                    continue  # exec(compile(...)): one finding per statement
                if call.qualified not in _DYNAMIC or not isinstance(call.node.func, (cst.Name, cst.Attribute)):
                    continue
                if isinstance(call.node.func, cst.Attribute) and not call.name.startswith("builtins."):
                    continue
                line = index.line(call.node)
                if line in source.decoded_exec_lines:
                    continue  # a wrapper the unpacker decoded: its payload is analysed
                if self._reported_as_wrapper(source, line):
                    continue  # PG904 already says this wrapper could not be decoded
                text = index.code(call.node, 300)
                if any(f'"{name}"' in text or f"'{name}'" in text for name in bundled):
                    continue  # exec of a file of the submission, which is analysed
                if call.node.args and isinstance(call.node.args[0].value, (cst.SimpleString, cst.ConcatenatedString)):
                    continue  # a literal: visible in the source
                reported.add(id(call.stmt))
                yield self.report(
                    source, call.node, call.stmt,
                    f"`{call.name}` runs code that cannot be read statically ({index.code(call.node, 80)})",
                    evidence={"call": text[:200]},
                )

    @staticmethod
    def _reported_as_wrapper(source: PythonSource, line: int) -> bool:
        bundle = source.bundle
        if bundle is None:
            return False
        for problem in bundle.problems:
            loc = problem.location
            if problem.code == "PG904" and loc.path == source.path and loc.line == line and (loc.decoded_from == source.origin):
                return True
        return False

    @staticmethod
    def _bundled_names(source: PythonSource) -> set[str]:
        bundle = source.bundle
        if bundle is None:
            return set()
        names = set()
        for f in bundle.files:
            names.add(f.rel)
            names.add(f.rel.rsplit("/", 1)[-1])
        return names

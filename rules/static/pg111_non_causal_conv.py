"""PG111 non-causal-conv."""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.env import Config
from auditor.static.index import CallSite, ClassInfo, Scope, SourceIndex, walk
from auditor.static.names import dotted

CONV1D = frozenset({"torch.nn.Conv1d", "torch.nn.modules.conv.Conv1d", "nn.Conv1d"})
#: Operations that move the sequence axis last, the layout Conv1d convolves over.
CHANNELS_FIRST = frozenset({"transpose", "permute", "mT", "swapaxes", "movedim", "rearrange"})


class NonCausalConv(StaticRule):
    """
    ## What it does
    Finds a `Conv1d` over the sequence whose output at position t sees later positions:
    padding on both sides that keeps the length (`padding=k // 2`, `padding="same"`) with a
    kernel of 3 or more, in a module that neither trims the output nor pads only on the
    left. The sequence axis is recognised by what the code does: the conv's input is the
    block input moved channels-first (`x.transpose(1, 2)`, `permute`, `rearrange`).
    Without that, the finding is a warning.

    ## Why is this bad?
    A symmetric kernel of size k mixes positions t − k//2 … t + k//2: the hidden state that
    predicts token t + 1 already contains token t + 1 (and up to k//2 − 1 more). The score
    is then not a prediction from the prefix, violating condition C1 of issue #1017 ("p_t
    … may not depend on x_t or any future token"); the bpb drops for free.

    ## Example
    ```python
    self.conv = nn.Conv1d(d, d, kernel_size=4 + 1, padding=2, groups=d)
    ...
    y = self.conv(x.transpose(1, 2)).transpose(1, 2)
    ```

    ## Use instead
    Pad (k − 1)·dilation on the left only (`F.pad(x, ((k - 1) * d, 0))` and `padding=0`),
    or pad (k − 1)·dilation on both sides and keep the first T outputs
    (`self.conv(x)[..., :T]`).

    ## References
    - Issue #1017, condition C1 (strict causal dependence).
    - README: the score is a compression of the validation text from its prefix.
    """

    CODE = "PG111"
    NAME = "non-causal-conv"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("#1017", "R-1017-C1")
    TAGS = ("causality",)
    VALID = (
        Valid(
            code="""
            import torch.nn as nn
            import torch.nn.functional as F
            class ShortConv(nn.Module):
                def __init__(self, d, k=4):
                    super().__init__()
                    self.k = k
                    self.conv = nn.Conv1d(d, d, kernel_size=k, padding=k - 1, groups=d)
                def forward(self, x):
                    T = x.size(1)
                    return self.conv(x.transpose(1, 2))[..., :T].transpose(1, 2)
            """,
            note="padded (k - 1) on both sides, then the first T outputs kept: causal",
        ),
        Valid(
            code="""
            import torch.nn as nn
            import torch.nn.functional as F
            class ShortConv(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.conv = nn.Conv1d(d, d, 3, padding=0, groups=d)
                def forward(self, x):
                    h = F.pad(x.transpose(1, 2), (2, 0))
                    return self.conv(h).transpose(1, 2)
            """,
            note="padded on the left only: causal",
        ),
        Valid(
            code="""
            import torch.nn as nn
            class Stem(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.mix = nn.Conv1d(d, d, kernel_size=1, padding=0)
                def forward(self, x):
                    return self.mix(x.transpose(1, 2)).transpose(1, 2)
            """,
            note="a kernel of one position mixes channels only",
        ),
    )
    INVALID = (
        Invalid(
            code="""
            import torch.nn as nn
            class ShortConv(nn.Module):
                def __init__(self, d, k=5):
                    super().__init__()
                    self.conv = nn.Conv1d(d, d, kernel_size=k, padding=k // 2, groups=d)
                def forward(self, x):
                    return self.conv(x.transpose(1, 2)).transpose(1, 2)
            """,
            lines=(5,),
        ),
        Invalid(
            code="""
            import os
            from torch import nn
            KSIZE = int(os.environ.get("KSIZE", "3"))
            class Mixer(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.tmix = nn.Conv1d(d, d, KSIZE, padding="same")
                def forward(self, h):
                    u = h.permute(0, 2, 1)
                    return self.tmix(u).permute(0, 2, 1)
            """,
            lines=(7,),
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        config = self.settings(evidence, source)
        for scope in index.scopes:
            for call in scope.calls:
                if call.qualified not in CONV1D and not call.qualified.endswith(".nn.Conv1d"):
                    continue
                why = _symmetric(config, scope, call)
                if why is None:
                    continue
                attr = _stored_as(call)
                uses = _uses(scope.cls, attr) if scope.cls is not None and attr else []
                if any(_trimmed_or_left_padded(index, use_scope, use) for use_scope, use in uses):
                    continue
                time_axis = any(_channels_first(use_scope, use) for use_scope, use in uses) and not why.endswith("?")
                why = why.rstrip("?")
                where = f" (used at line {index.line(uses[0][1].node)})" if uses else ""
                message = (
                    f"`{index.code(call.node, 90)}` pads {why} on both sides and keeps the length: the output at "
                    f"position t mixes later positions{where}"
                )
                if time_axis:
                    message += "; its input is the sequence moved channels-first, so the mixing runs over the sequence"
                    yield self.report(source, call.node, call.stmt, message, evidence={"conv": index.code(call.node, 160)})
                else:
                    yield self.report(
                        source, call.node, call.stmt,
                        message + "; the kernel size or whether it runs over the sequence axis was not seen",
                        evidence={"conv": index.code(call.node, 160)}, severity=Severity.WARNING, confidence=Confidence.LOW,
                    )


_OPS = {cst.Add: lambda a, b: a + b, cst.Subtract: lambda a, b: a - b, cst.Multiply: lambda a, b: a * b,
        cst.FloorDivide: lambda a, b: a // b if b else None}


def _value(config: Config, scope: Scope, node: cst.BaseExpression | None, depth: int = 0):
    """The value of a size expression: literals, the configuration's defaults, a parameter's
    default value, and + - * // of those."""
    if node is None or depth > 8:
        return None
    if isinstance(node, cst.BinaryOperation) and type(node.operator) in _OPS:
        left, right = _value(config, scope, node.left, depth + 1), _value(config, scope, node.right, depth + 1)
        if isinstance(left, int) and isinstance(right, int):
            return _OPS[type(node.operator)](left, right)
        return None
    if isinstance(node, cst.Name):
        for name, default in scope.params:
            if name == node.value:
                return _value(config, scope, default, depth + 1) if default is not None else None
    value = config.evaluate(node, scope).value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def _int(config: Config, scope: Scope, node: cst.BaseExpression | None) -> int | None:
    value = _value(config, scope, node)
    return value if isinstance(value, int) else None


def _symmetric(config: Config, scope: Scope, call: CallSite) -> str | None:
    """How the conv pads, when it pads both sides so that the length stays (kernel ≥ 3).

    With a kernel size that cannot be evaluated (a constant of another module), padding
    ``"same"`` or ``K // 2`` of that same expression K still says so, for any K of 3 or more;
    the answer then ends with ``?`` (the kernel could be 1, which mixes nothing).
    """
    kernel_node = call.arg(2, "kernel_size")
    kernel = _int(config, scope, kernel_node)
    dilation = _int(config, scope, call.arg(5, "dilation")) or 1
    pad_node = call.arg(4, "padding")
    if pad_node is None or kernel_node is None:
        return None
    if kernel is None:
        k = cst.Module([]).code_for_node(kernel_node).replace(" ", "")
        p = cst.Module([]).code_for_node(pad_node).replace(" ", "")
        if p.strip("'\"") == "same" or p in (f"{k}//2", f"({k})//2", f"({k}-1)//2"):
            return f"{p} (kernel {k})?"
        return None
    if kernel < 2:
        return None
    pad = _value(config, scope, pad_node)
    if isinstance(pad, str) and pad.strip().strip("'\"") == "same":
        return "'same'" if kernel >= 2 else None
    if isinstance(pad, int) and not isinstance(pad, bool) and kernel % 2 == 1 and kernel >= 3:
        if pad == (kernel - 1) // 2 * dilation:
            return f"{pad} (kernel {kernel})"
    return None


def _stored_as(call: CallSite) -> str | None:
    """``conv`` for ``self.conv = nn.Conv1d(…)``."""
    node = call.stmt.node
    if isinstance(node, cst.Assign) and node.value is call.node and len(node.targets) == 1:
        target = node.targets[0].target
        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name):
            return target.attr.value
    return None


def _uses(cls: ClassInfo, attr: str) -> list[tuple[Scope, CallSite]]:
    """Calls of the stored conv in the class's methods (``self.conv(h)``)."""
    found = []
    for method in cls.methods.values():
        for call in method.calls:
            func = call.node.func
            if isinstance(func, cst.Attribute) and func.attr.value == attr and isinstance(func.value, cst.Name):
                found.append((method, call))
    return found


def _trimmed_or_left_padded(index: SourceIndex, scope: Scope, use: CallSite) -> bool:
    """The method slices the conv's output, or pads its input itself (``F.pad``)."""
    for sub in scope.subscripts:
        if any(node is use.node for node in walk(sub.node.value)):
            return True
    for call in scope.calls:
        if call.method == "pad" and call is not use:
            return True
    # the output assigned to a name that is sliced afterwards
    stmt = use.stmt.node
    if isinstance(stmt, cst.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0].target, cst.Name):
        name = stmt.targets[0].target.value
        for sub in scope.subscripts:
            if isinstance(sub.node.value, cst.Name) and sub.node.value.value == name and any(
                isinstance(e.slice, cst.Index) is False for e in sub.node.slice
            ):
                return True
    return False


def _channels_first(scope: Scope, use: CallSite) -> bool:
    """The conv's input is moved channels-first (directly, or through a local name)."""
    arg = use.arg(0)
    if arg is None:
        return False
    seen: set[str] = set()
    todo = [arg]
    while todo:
        node = todo.pop()
        for part in walk(node):
            if isinstance(part, cst.Call):
                func = part.func
                method = func.attr.value if isinstance(func, cst.Attribute) else dotted(func) or ""
                if method.rsplit(".", 1)[-1] in CHANNELS_FIRST:
                    return True
            elif isinstance(part, cst.Attribute) and part.attr.value == "mT":
                return True
            elif isinstance(part, cst.Name) and part.value not in seen:
                seen.add(part.value)
                todo.extend(a.value for a in scope.assigned(part.value) if a.value is not None)
    return False

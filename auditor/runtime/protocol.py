"""The typed contract between the harness (parent) and the driver (sandbox); no torch here.

The parent sends a :class:`Job` on the child's standard input; the child answers with
:class:`DriverResult` messages on an inherited pipe, never through a file in its own folder
(a submission could write that file and exit). Each message is one line of JSON::

    {"nonce": "<per-run secret>", "seq": 3, "final": false, "result": {...DriverResult...}}

The parent (:func:`read_channel`) accepts a message only when it carries the run's nonce, its
sequence number grows, nothing follows the final message, and the result has exactly the
fields and types declared here. Anything else (an unknown field, a wrong type, a second final
message, more bytes than the cap) makes the whole channel invalid: the run is inconclusive.

This is not proof against a submission that searches the driver's memory for the nonce; the
real defence is that a runtime pass never clears a static error (``auditor.runtime.base``).
What it removes is the trivial forgery: writing a result and exiting.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

#: Bytes the parent reads from the result channel at most (a checkpoint is a few kB).
CHANNEL_CAP = 32 * 2**20


class ProtocolError(ValueError):
    """A message that does not follow the protocol (the run's result is not trusted)."""


@dataclass
class InlineSite:
    """A claimed line whose values its function computes inline, not returned by a call: the
    loader lifts the block that computes them into a function it can capture
    (:mod:`auditor.runtime.inline`)."""

    function: str  # the function holding the printing statement
    line: int  # the printing statement's first line (of the decoded text for a wrapper's payload)
    printed: list[str] = field(default_factory=list)  # the names the statement prints


@dataclass
class Job:
    """What the parent asks the driver to run."""

    script: str  # the script to run, relative to the submission folder
    file: str  # its name as the audited folder has it (a decoded wrapper runs under another name)
    nonce: str  # per-run secret every result message must carry
    result_fd: int  # the inherited pipe the driver writes to
    input: str  # a read-only folder holding the copy of the submission's files ("" when ``files`` carries them)
    run_env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: Settings of the run that produced the claimed score (auditor.runtime.stage.ScoredRuntime).
    scored_env: dict[str, str] = field(default_factory=dict)
    scored_world_size: int | None = None
    #: Labels of the claimed stages: the driver keeps the output lines that carry them.
    stage_labels: list[str] = field(default_factory=list)
    #: Functions the driver captures as evaluations besides those named like one: those whose
    #: returned values the claimed stage's line prints.
    scorers: list[str] = field(default_factory=list)
    #: Claimed lines whose values are computed inline, in a block the loader lifts to capture it.
    inline: list[InlineSite] = field(default_factory=list)
    #: The submission's files (relative path to base64 bytes), written into its records folder.
    files: dict[str, str] = field(default_factory=dict)
    #: The audited folder's name: its copy sits at ``records/track_10min_16mb/<folder>``.
    folder: str = ""
    #: The writable home folder that holds the checkout ("" : the working folder itself).
    home: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> Job:
        return _build(cls, _loads(text), "job")


@dataclass
class ErrorInfo:
    """An exception of the run, reduced to what a report may show (see ``driver._error``)."""

    type: str
    message: str
    kind: str = "error"  # import | file | kernel | memory | refused | harness | error
    line: int | None = None  # line in the submission's script, when the error was raised there
    code: str = ""
    in_submission: bool = False


@dataclass
class PassRecord:
    """One call of an evaluation function and what the capture saw."""

    name: str
    index: int
    depth: int
    seconds: float
    returned: list[float]
    complete: bool
    reason: str = ""
    strategy: str = ""
    scored: int = 0
    coverage: dict[str, int] = field(default_factory=dict)


@dataclass
class RunRecord:
    """One run of the whole pipeline (baseline, perturbed, repeat)."""

    label: str
    seconds: float = 0.0
    error: ErrorInfo | None = None
    passes: list[PassRecord] = field(default_factory=list)


@dataclass
class ProbeRow:
    """One probe on one evaluation function."""

    probe: str
    status: str  # pass | fail | inconclusive | skipped
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    scorer: str = ""
    seconds: float = 0.0


@dataclass
class PipelineRow:
    """A whole-pipeline rerun on a stream changed after ``cut``, compared pass by pass."""

    name: str
    index: int
    status: str
    detail: str = ""
    cut: int | None = None
    max_abs_delta: float | None = None
    at_position: int | None = None
    positions_compared: int = 0
    positions_changed: int = 0
    tolerance: float | None = None
    noise: float | None = None


@dataclass
class ScorerRecord:
    """The probes of one evaluation function (or a pointer to its twin already probed)."""

    name: str
    final: bool = False
    same_as: str = ""
    calls: int = 1
    seconds: float = 0.0
    coverage: dict[str, int] = field(default_factory=dict)
    strategy: str = ""
    noise: float | None = None
    probes: list[ProbeRow] = field(default_factory=list)


@dataclass
class ByteAccount:
    """The canonical bytes of the targets one top-level evaluation call scored
    (auditor.runtime.bytecount): what the parent compares with the script's bits per byte."""

    name: str
    index: int
    tokens: int  # scored targets, a target scored twice counted twice (as its NLL is)
    distinct: int  # distinct stream positions among them
    nll_sum: float  # sum of the captured NLLs (nats)
    loss: float | None  # the returned loss the capture matched
    returned: list[float]
    bytes: int  # pipeline.md's formula over the scored targets
    space_after_boundary: int  # the same, a leading space after a boundary counted too
    alternatives: dict[str, int] = field(default_factory=dict)  # sums that name accounting errors


@dataclass
class SandboxEvent:
    """An attempt the audit hook refused (or tolerated)."""

    kind: str
    detail: str
    blocked: bool


@dataclass
class DriverResult:
    """Everything the driver reports; a checkpoint is the same shape, filled so far."""

    phase: str = ""
    runs: list[RunRecord] = field(default_factory=list)
    pipeline: list[PipelineRow] = field(default_factory=list)
    pipeline_ran: bool = False
    scorers: list[ScorerRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    adjustments: list[str] = field(default_factory=list)
    wrapped: list[str] = field(default_factory=list)
    knobs: dict[str, str] = field(default_factory=dict)
    run_env: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    confinement: dict[str, Any] = field(default_factory=dict)
    sandbox_events: list[SandboxEvent] = field(default_factory=list)
    log_tail: list[str] = field(default_factory=list)
    #: Output lines of the baseline run that carry a claimed stage's label.
    stage_lines: list[str] = field(default_factory=list)
    #: Canonical bytes of what each top-level evaluation call of the baseline run scored, the
    #: output lines of that run that carry a bits-per-byte value, and whether the script loaded
    #: the tokenizer the harness wrote ("harness", "other" or "" when it loaded none).
    byte_accounts: list[ByteAccount] = field(default_factory=list)
    metric_lines: list[str] = field(default_factory=list)
    tokenizer_loaded: str = ""
    seconds: float = 0.0
    #: Hashed-table sizes set above the stream's scaled load (the script refused the scaled
    #: size): the tables collide less than at full load, so a pass of theirs clears nothing.
    tables_above_scale: list[str] = field(default_factory=list)
    #: Seconds the driver asks for in all, from the measured cost of the probes it has to run
    #: (the parent grants at most its Limits.max_wall_s; untrusted, so only ever bounded).
    wanted_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, obj: Any) -> DriverResult:
        return _build(cls, obj, "result")


def message(nonce: str, seq: int, final: bool, result: DriverResult) -> bytes:
    """One line of the result channel."""
    return (json.dumps({"nonce": nonce, "seq": seq, "final": final, "result": result.to_dict()},
                       allow_nan=False) + "\n").encode("utf-8")


@dataclass
class Channel:
    """What the parent read from the result channel."""

    final: DriverResult | None = None
    latest: DriverResult | None = None  # the last checkpoint (a run stopped at the limit still reports)
    problem: str = ""  # why the channel is not trusted; then both results are None
    bytes_read: int = 0


def read_messages(data: bytes, nonce: str, truncated: bool = False) -> Channel:
    """Validate the whole content of the channel (see the module docstring)."""
    out = Channel(bytes_read=len(data))
    if truncated:
        return Channel(problem=f"the result channel carried more than {CHANNEL_CAP} bytes", bytes_read=len(data))
    seq = -1
    # the piece after the last newline is empty, or a message the child was stopped writing
    lines = data.split(b"\n")[:-1]
    for number, line in enumerate(lines, start=1):
        try:
            frame = _loads(line)
            if not isinstance(frame, dict) or set(frame) != {"nonce", "seq", "final", "result"}:
                raise ProtocolError("a message with other fields than nonce, seq, final and result")
            if not isinstance(frame["nonce"], str) or not hmac.compare_digest(frame["nonce"].encode(), nonce.encode()):
                raise ProtocolError("a message without this run's nonce")
            if type(frame["seq"]) is not int or frame["seq"] <= seq:
                raise ProtocolError("a message out of sequence")
            if type(frame["final"]) is not bool:
                raise ProtocolError("a message whose final flag is not a boolean")
            if out.final is not None:
                raise ProtocolError("a message after the final one")
            seq = frame["seq"]
            result = DriverResult.from_dict(frame["result"])
        except ProtocolError as exc:
            return Channel(problem=f"the result channel is not trusted: message {number}: {exc}", bytes_read=len(data))
        out.latest = result
        if frame["final"]:
            out.final = result
    return out


# -- building dataclasses from JSON, strictly ------------------------------------------------

def _loads(text: str | bytes) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON ({type(exc).__name__})") from None


def _no_constant(name: str) -> Any:
    raise ProtocolError(f"a non-JSON number ({name})")


def _plain(value: Any) -> Any:
    """Plain JSON values: non-finite floats as strings, NumPy values as numbers and lists, other
    objects as their text, so that the message stays strict JSON."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return str(value)


_HINTS: dict[type, dict[str, Any]] = {}


def _build(cls: type, obj: Any, where: str) -> Any:
    """An instance of dataclass ``cls`` from ``obj``: every field of the right type, no other key."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"{where}: expected an object")
    hints = _HINTS.get(cls)
    if hints is None:
        # this module's names, not sys.modules': in the sandbox the harness's modules are not there
        hints = _HINTS[cls] = typing.get_type_hints(cls, globalns=globals())
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(obj) - names
    if unknown:
        raise ProtocolError(f"{where}: unexpected field(s) {sorted(unknown)[:3]}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"{where}: missing field {f.name!r}")
            continue
        values[f.name] = _value(hints[f.name], obj[f.name], f"{where}.{f.name}")
    return cls(**values)


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _value(option, value, where)
            except ProtocolError:
                continue
        raise ProtocolError(f"{where}: unexpected type {type(value).__name__}")
    if hint is type(None):
        if value is None:
            return None
        raise ProtocolError(f"{where}: expected null")
    if origin is list:
        if not isinstance(value, list):
            raise ProtocolError(f"{where}: expected a list")
        (item,) = typing.get_args(hint)
        return [_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object")
        _, item = typing.get_args(hint)
        return {k: _value(item, v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if hint is float:
        if type(value) in (int, float):
            return float(value)
        if value in ("inf", "-inf", "nan"):
            return float(value)
        raise ProtocolError(f"{where}: expected a number")
    if hint in (int, str, bool):
        if type(value) is hint:
            return value
        raise ProtocolError(f"{where}: expected {hint.__name__}")
    raise ProtocolError(f"{where}: no rule for {hint!r}")  # pragma: no cover - a field type this module lacks

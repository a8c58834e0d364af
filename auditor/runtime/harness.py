"""From a submission to a causality verdict (parent side; no torch needed here).

:func:`causality_of` copies the submission into the sandbox, tells the driver which script to
run and with which of its own settings (the environment assignments of the run command in its
README, e.g. ``TTT_ENABLED=1 ... torchrun ... train_gpt.py``: the configuration the claimed
score came from), and turns the driver's report into a :class:`Causality`:

- ``fail``: a probe failed beyond the measured noise floor; the rows say where, by how much;
- ``pass``: every evaluation the script made was captured completely, and determinism,
  whole-pipeline future perturbation, per-evaluation future perturbation and target
  substitution all ran and passed (and where the reported evaluation was given inputs the
  script computed from the stream before calling it, reruns of the whole script with a
  substituted target tried them: :mod:`auditor.runtime.precomputed`);
- ``inconclusive``: anything else, with the reasons (the import failed, the run stopped at a
  line, an evaluation was not captured, the time budget ran out ...). Never a pass by default.

The submission's evidence keeps the result (``Evidence.runtime``), so the PG2xx rules and PG908
share one sandbox run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from auditor.runtime.bytecheck import judge as judge_bytes
from auditor.runtime.compat import backport_fstrings
from auditor.runtime.knobs import Settings, is_table_size
from auditor.runtime.protocol import DriverResult, ErrorInfo
from auditor.runtime.sandbox import HOME, WALL_MARGIN_S, WORKDIR, ChildResult, Limits, run_child
from auditor.runtime.stage import ClaimedStage, ScoredRuntime, stage_dormant, stage_reasons

if TYPE_CHECKING:
    from auditor.bundle import Bundle

#: Files not copied into the sandbox (the run does not need logs; huge files are refused).
MAX_COPY_BYTES = 64 * 2**20
SKIP_SUFFIXES = (".log", ".out")

# Probe names as the report shows them, and the rule each failure becomes.
PROBE_LABELS = {
    "determinism": "determinism",
    "pipeline_future": "future perturbation (whole pipeline)",
    "pipeline_substitution": "target substitution (whole pipeline)",
    "future": "future perturbation",
    "score_before_update": "score before update",
    "substitution": "target substitution",
    "capture": "capture",
    "replay": "replay",
    "bytes": "byte accounting",
}


@dataclass
class Row:
    """One line of the probe table."""

    scorer: str
    probe: str
    status: str  # pass | fail | inconclusive | skipped
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "probe": self.probe, "status": self.status, "detail": self.detail,
                "evidence": self.evidence, "seconds": self.seconds}


@dataclass
class Causality:
    """What the runtime harness concluded about one submission."""

    status: str  # fail | pass | inconclusive
    reasons: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    passes: list[dict[str, Any]] = field(default_factory=list)
    sandbox_events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    script: str = ""
    script_lines: dict[str, int] = field(default_factory=dict)  # evaluation function -> line of its def
    decoded_from: Any = None  # Origin of the decoded payload when the script is a wrapper
    run_env: dict[str, str] = field(default_factory=dict)
    knobs: dict[str, str] = field(default_factory=dict)
    adjustments: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None
    hashed_tables: bool = False
    #: The claimed stage's line showed its mechanism idle at the shrunk scale (stage_dormant).
    dormant: bool = False
    #: What the kernel confined the sandbox to (auditor.runtime.confine.Confinement.to_dict()).
    confinement: dict[str, Any] = field(default_factory=dict)
    raw: DriverResult | None = field(default=None, repr=False)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "reasons": self.reasons, "rows": [r.to_dict() for r in self.rows],
            "passes": self.passes, "sandbox_events": self.sandbox_events, "seconds": round(self.seconds, 2),
            "script": self.script, "run_env": self.run_env, "knobs": self.knobs, "adjustments": self.adjustments,
            "error": self.error, "confinement": self.confinement,
        }


# -- the run command in the README -----------------------------------------------------------

ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
RUNNERS = ("torchrun", "python", "python3", "accelerate", "srun", "deepspeed")


def run_env_from_readme(text: str, script_name: str = "train_gpt.py") -> dict[str, str]:
    """Environment assignments of the command(s) in a README that run the script.

    ``KEY=value`` words before ``torchrun``/``python`` on a (backslash-continued) command line,
    and ``export KEY=value`` lines just before it, later commands overriding earlier ones.
    """
    env: dict[str, str] = {}
    pending: dict[str, str] = {}
    lines = text.replace("\\\r\n", " ").replace("\\\n", " ").splitlines()
    for raw in lines:
        line = raw.strip().lstrip("$> ").strip()
        if not line or line.startswith("#"):
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if not words:
            continue
        if words[0] == "export":
            for w in words[1:]:
                m = ASSIGN.match(w)
                if m:
                    pending[m.group(1)] = m.group(2)
            continue
        assigns: dict[str, str] = {}
        i = 0
        while i < len(words) and ASSIGN.match(words[i]):
            m = ASSIGN.match(words[i])
            assert m is not None
            assigns[m.group(1)] = m.group(2)
            i += 1
        rest = words[i:]
        if rest and rest[0] == "env":
            rest = rest[1:]
            while rest and ASSIGN.match(rest[0]):
                m = ASSIGN.match(rest[0])
                assert m is not None
                assigns[m.group(1)] = m.group(2)
                rest = rest[1:]
        runs_script = bool(rest) and rest[0].split("/")[-1] in RUNNERS and any(
            w.endswith(".py") and (w.split("/")[-1] == script_name or "train" in w) for w in rest)
        if runs_script:
            env.update(pending)
            env.update(assigns)
            pending = {}
        elif not rest and assigns:
            pending.update(assigns)  # "KEY=value" lines of a block, then the command
    return env


#: Settings of a README command that are about files, machines or partial reruns, not the model.
UNUSABLE_KNOB = re.compile(r"ONLY|SKIP|PATH|_DIR$|DIR_|FILE|CHECKPOINT|RESUME|LOAD|SAVE|NCCL|CUDA|TORCH|OMP_|"
                           r"MASTER_|NPROC|WORLD|RANK|HF_|WANDB|LOG_|SCHEDULE", re.I)


def usable_run_env(env: dict[str, str]) -> dict[str, str]:
    """The README settings that choose what the script computes (paths, reruns from saved files,
    machine and launcher settings left out)."""
    return {k: v for k, v in env.items()
            if not UNUSABLE_KNOB.search(k) and not re.search(r"[/\\]|\.(pt|ptz|bin|model|npz|json)$", v)}


def runtime_python(text: str) -> str | None:
    """The interpreter for the sandbox: this one, or ``PGOLF_AUDIT_RUNTIME_PYTHON`` when the script
    needs a newer Python (PEP 701 f-strings need 3.12) and that variable names one."""
    override = os.environ.get("PGOLF_AUDIT_RUNTIME_PYTHON")
    if not override:
        return None  # nothing to choose (the f-string rewrite, _backported, covers 3.12 syntax)
    try:
        compile(text, "<script>", "exec")
        return None
    except SyntaxError:
        return override
    except (ValueError, RecursionError, MemoryError):
        return None


# -- running --------------------------------------------------------------------------------

HASH_SIGNS = re.compile(r"primes?\[|_PRIME|\bprime\b|BUCKETS|bucket|hash", re.I)
TABLE_SIGNS = re.compile(r"np\.add\.at|bincount|index_add_|scatter_add_|\.at\[")


def _job_files(bundle: Bundle) -> tuple[dict[str, bytes], str, str, list[str], list[str]]:
    """The files to copy, the script to run (decoded payload for wrappers), its __file__, notes,
    and what was adjusted in the copies."""
    files: dict[str, bytes] = {}
    notes: list[str] = []
    for f in bundle.files:
        if f.size > MAX_COPY_BYTES or f.rel.lower().endswith(SKIP_SUFFIXES):
            continue
        try:
            files[f.rel] = bundle.read_bytes(f.rel, None)
        except OSError as exc:
            notes.append(f"{f.rel} could not be read ({exc})")
    main = bundle.main_script
    source = bundle.main_source
    if main is None or source is None:
        return files, "", "", notes, []
    script = run_as = main.rel
    if source.is_decoded:
        folder = script.rsplit("/", 1)[0] + "/" if "/" in script else ""
        run_as = f"{folder}__pg_decoded__{script.rsplit('/', 1)[-1]}"
        files[run_as] = source.text.encode("utf-8")
    return files, run_as, script, notes, _backported(files)


def _backported(files: dict[str, bytes]) -> list[str]:
    """Rewrite, in the copies, the Python 3.12 f-strings this interpreter cannot compile
    (auditor.runtime.compat), unless PGOLF_AUDIT_RUNTIME_PYTHON names an interpreter that can."""
    if os.environ.get("PGOLF_AUDIT_RUNTIME_PYTHON") or sys.version_info >= (3, 12):
        return []
    done: list[str] = []
    for rel in [r for r in files if r.endswith(".py")]:
        try:
            text = files[rel].decode("utf-8")
            compile(text, rel, "exec")
            continue
        except SyntaxError:
            pass
        except (UnicodeDecodeError, ValueError, RecursionError, MemoryError):
            continue
        backport = backport_fstrings(text)
        if backport is not None and backport[1]:
            files[rel] = backport[0].encode("utf-8")
            done.append(f"{rel.rsplit('/', 1)[-1]}: {backport[1]} f-string(s) of Python 3.12 syntax run as "
                        f"str.format calls on Python {sys.version_info.major}.{sys.version_info.minor} "
                        "(same lines)")
    return done


def causality_of(bundle: Bundle, settings: dict[str, Any] | None = None, limits: Limits | None = None,
                 progress: Any = None, scored: ScoredRuntime | None = None) -> Causality:
    """Run the harness on a bundle (``Evidence.runtime`` calls it once per bundle). ``scored``:
    the settings and claimed stage of the run that produced the claimed score; the sandbox runs
    that configuration, and without it no check ties the verdict to the claimed stage."""
    return _run(bundle, settings or {}, limits, progress, scored or ScoredRuntime())


def _run(bundle: Bundle, settings: dict[str, Any], limits: Limits | None, progress: Any = None,
         scored: ScoredRuntime | None = None) -> Causality:
    scored = scored or ScoredRuntime()
    started = time.monotonic()
    files, script, file_name, notes, backported = _job_files(bundle)
    if not script:
        return Causality("inconclusive", ["no main script (train_gpt.py) to run"], seconds=time.monotonic() - started)
    source = bundle.main_source
    text = source.text if source is not None else ""
    readme = bundle.readme
    run_env: dict[str, str] = {}
    if readme is not None:
        readme_text = bundle.try_read_text(readme.rel) or ""
        run_env = usable_run_env(run_env_from_readme(readme_text, file_name.rsplit("/", 1)[-1]))
    limits = limits or Limits()
    python = runtime_python(text)
    if python and not limits.python:
        limits = Limits(**{**limits.__dict__, "python": python})
    budget = float(settings.get("budget_s", max(20.0, limits.wall_s - WALL_MARGIN_S)))
    # the probes may take longer when their measured cost needs it, within the grown wall limit
    most = max(budget, budget + limits.max_wall_s - limits.wall_s)
    job = {"script": script, "file": file_name, "folder": _folder_name(bundle), "run_env": run_env,
           "settings": {**settings, "budget_s": budget, "max_budget_s": most, "threads": limits.threads},
           "scored_env": usable_run_env(scored.env), "scored_world_size": scored.world_size,
           "stage_labels": [st.label for st in scored.stages], "scorers": list(scored.scorers),
           "inline": [dataclasses.asdict(site) for site in scored.inline]}
    shipped = [f.rel for f in bundle.files]

    def judge(child: ChildResult) -> Causality:
        return interpret(child, text, scored.stages, scored.unknown_stage, shipped)

    out = judge(run_child(files, job, limits, progress=progress))
    if out.dormant and out.status == "inconclusive" and not settings.get("late_substitution"):
        out = _grown(out, files, job, limits, progress, judge)
    out.script = script
    out.run_env = run_env
    out.reasons[:0] = notes
    out.adjustments[:0] = backported
    out.seconds = time.monotonic() - started
    out.decoded_from = source.origin if source is not None else None
    out.script_lines = _def_lines(text)
    return out


#: The validation stream of a rerun whose scored mechanism did not act on the shrunk one.
GROWN_VAL_TOKENS = 65_536


def _grown(first: Causality, files: dict[str, bytes], job: dict[str, Any], limits: Limits, progress: Any,
           judge: Callable[[ChildResult], Causality]) -> Causality:
    """Run once more on a longer stream when the claimed stage's mechanism did not act on the
    shrunk one (a cache read before its first update: the model's and the mixture's figures
    printed equal). Tables keep their load (they scale with the stream), the model stays small,
    and substitution moves to the end of the stream, where the mechanism has the most behind
    it. Still idle there, the rerun stays inconclusive for that reason."""
    settings = job["settings"]
    if int(settings.get("val_tokens", Settings.val_tokens)) >= GROWN_VAL_TOKENS:
        return first
    wall = max(limits.wall_s, limits.max_wall_s)
    budget = max(20.0, wall - WALL_MARGIN_S)
    grown_job = {**job, "settings": {**settings, "val_tokens": GROWN_VAL_TOKENS, "late_substitution": True,
                                     "budget_s": budget, "max_budget_s": budget}}
    out = judge(run_child(files, grown_job, dataclasses.replace(limits, wall_s=wall), progress=progress))
    out.adjustments.insert(0, f"validation stream grown to {GROWN_VAL_TOKENS} tokens: on the shrunk one, "
                              f"{first.reasons[0] if first.reasons else 'the scored stage did not act'}")
    return out


def _def_lines(text: str) -> dict[str, int]:
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"\s*def\s+([A-Za-z_][A-Za-z0-9_]*)\s*\(", line)
        if m and m.group(1) not in lines:
            lines[m.group(1)] = number
    return lines


def _rows_from(raw: DriverResult, files: Sequence[str] = ()) -> list[Row]:
    rows: list[Row] = []
    for c in raw.pipeline:
        if c.detail:
            detail = c.detail
        elif c.status == "fail":
            detail = (f"whole pipeline rerun with every token after index {c.cut} changed: "
                      f"{c.positions_changed} earlier target(s) moved, largest |dNLL| {c.max_abs_delta or 0.0:.4g} "
                      f"at target {c.at_position}")
        else:
            detail = (f"whole pipeline rerun with every token after index {c.cut} changed: "
                      f"no earlier NLL moved ({c.positions_compared} targets compared)")
        evidence = {k: v for k, v in dataclasses.asdict(c).items() if k not in ("status", "detail", "name", "index")}
        evidence["call"] = c.index
        rows.append(Row(shown(c.name, 80), "pipeline_future", c.status, shown(detail), evidence))
    for scorer in raw.scorers:
        for p in scorer.probes:
            rows.append(Row(shown(scorer.name, 80), shown(p.probe, 40), p.status, shown(p.detail), p.evidence,
                            p.seconds))
    for p in judge_bytes(raw, files):  # the printed bpb against the bytes of the scored targets
        rows.append(Row(shown(p.scorer, 80), p.probe, p.status, shown(p.detail), p.evidence))
    return rows


def shown(text: str, limit: int = 400) -> str:
    """Text of the untrusted child as a report may carry it: printable, outside paths replaced,
    bounded (see :func:`reduce_error`)."""
    text = "".join(ch if ch.isprintable() else " " for ch in text[:4 * limit])
    text = _ABSOLUTE.sub(_path_shown, text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


REQUIRED = ("determinism", "future", "substitution")
STATUSES = ("pass", "fail", "inconclusive", "skipped")


def interpret(child: ChildResult, source_text: str = "", stages: tuple[ClaimedStage, ...] = (),
              unknown_stage: str = "", files: Sequence[str] = ()) -> Causality:
    """The verdict from the driver's report (see the module docstring for the rules). With the
    claimed stages of the scored run, a pass needs each one exercised: its line printed in the
    sandboxed run with a value a captured evaluation returned, and that evaluation probed.
    ``files``: the folder's files (the byte check asks whether it ships its own tokenizer)."""
    raw = child.result or child.latest  # a run stopped early reports its last checkpoint: never a pass
    if raw is None:
        reason = child.problem or "the harness produced no result"
        return Causality("inconclusive", [reason], seconds=child.seconds)
    rows = _rows_from(raw, files)
    odd = sorted({r.status for r in rows} - set(STATUSES))
    if odd:
        return Causality("inconclusive", [f"the harness reported an unknown probe status {odd[0][:40]!r}"],
                         seconds=child.seconds)
    base = raw.runs[0] if raw.runs else None
    passes = [dataclasses.asdict(p) for p in base.passes] if base else []
    error = raw.error or (base.error if base else None)
    out = Causality("inconclusive", rows=rows, passes=passes,
                    sandbox_events=[{"kind": shown(e.kind, 20), "detail": shown(e.detail, 300), "blocked": e.blocked}
                                    for e in raw.sandbox_events[:200]],
                    knobs=raw.knobs, adjustments=raw.adjustments,
                    error=dataclasses.asdict(reduce_error(error)) if error else None, raw=raw,
                    confinement=raw.confinement)
    scaled = (any(is_table_size(k) for k in out.knobs) or any("scaled" in a for a in out.adjustments)) \
        and not raw.tables_above_scale
    out.hashed_tables = bool(HASH_SIGNS.search(source_text) and TABLE_SIGNS.search(source_text))
    reasons: list[str] = []
    if child.timed_out:
        reasons.append(f"the harness hit its {child.seconds:.0f} s wall-clock limit")
    elif child.result is None:
        reasons.append(child.problem or "the run ended before its final report")
    if child.survivors:  # the namespace should have taken every process with it
        reasons.append(f"{child.survivors} process(es) of the sandbox outlived it")
    if raw.error:
        e = reduce_error(raw.error)
        reason = f"{_kind(e)}: {e.type}: {e.message}"
        if e.type == "SyntaxError" and not os.environ.get("PGOLF_AUDIT_RUNTIME_PYTHON"):
            reason += (f" (the script does not compile on Python {sys.version_info.major}.{sys.version_info.minor}; "
                       "set PGOLF_AUDIT_RUNTIME_PYTHON to a newer interpreter that has torch and numpy)")
        reasons.append(reason)
    if base is None:
        reasons.append("the script was not run")
    elif base.error:
        e = reduce_error(base.error)
        where = f" at line {e.line}" if e.line and e.in_submission else ""
        reasons.append(f"the run stopped{where} ({stop_cause(e, out.knobs)}): {e.type}: {e.message}")
    top = [p for p in (base.passes if base else []) if p.depth == 0]
    if base is not None and not top:
        reasons.append("no evaluation function was called" if raw.wrapped else
                       "entry point not found: no evaluation function (eval_*) in the script")
    for p in top:
        if not p.complete:
            reasons.append(f"capture incomplete for {shown(p.name, 80)} (call {p.index + 1}): {shown(p.reason)}")
    # a refused network access is a finding (PG205) and leaves the run unproven; other refusals
    # (a program, a file outside the folder) matter only when they stopped the run, which the
    # run's error then says
    for e in [e for e in out.sandbox_events if e["blocked"] and e["kind"] == "network"][:1]:
        reasons.append(f"the sandbox refused network access: {e['detail']}")
    if out.failures:
        out.status = "fail"
        out.reasons = reasons
        return out
    if top and not raw.pipeline_ran:
        reasons.append("the whole-pipeline future perturbation did not run (time budget)")
    for r in rows:
        if r.probe == "pipeline_future" and r.status != "pass":
            reasons.append(f"{PROBE_LABELS['pipeline_future']} on {r.scorer}: {r.status} ({r.detail})")
    names = {p.name for p in top if p.complete}
    final = next((sc.name for sc in raw.scorers if sc.final), None)
    twins = {sc.name: sc.same_as for sc in raw.scorers if sc.same_as}
    behind_stage: set[str] = set()
    unexercised: list[str] = []
    if unknown_stage:
        unexercised.append(f"the scored stage is unknown ({unknown_stage}): no evaluation of the run is tied "
                           "to the claimed score")
    lines = [shown(line) for line in raw.stage_lines]
    for stage in stages:
        why, scorer = stage_reasons(stage, lines, top, raw.byte_accounts if raw.tokenizer_loaded == "harness" else None)
        unexercised.extend(why)
        out.dormant = out.dormant or stage_dormant(stage, lines)
        if scorer is not None:
            behind_stage.add(scorer)
    for name in sorted(names):
        mine = [r for r in rows if r.scorer == twins.get(name, name)]
        # the evaluation whose number is reported (the claimed stage's, else the last one) must
        # pass every probe; the others (diagnostic evaluations of the same model) determinism
        # and future perturbation, and substitution where it ran
        required = REQUIRED if name in behind_stage or final in (name, twins.get(name)) or any(
            r.probe == "substitution" and r.status == "pass" for r in mine) \
            else ("determinism", "future")
        for probe in required:
            got = [r for r in mine if r.probe == probe]
            if not got:
                why = "; ".join(f"{r.probe}: {r.detail}" for r in mine if r.status != "pass") or "not run"
                reasons.append(f"{PROBE_LABELS[probe]} on {name}: {why}")
            elif any(r.status != "pass" for r in got):
                bad = next(r for r in got if r.status != "pass")
                reasons.append(f"{PROBE_LABELS[probe]} on {name}: {bad.status} ({bad.detail})")
        # inputs computed from the stream before the call are invisible to the replays: their
        # substitution pass says nothing about them unless the reruns tried them
        for r in mine:
            if r.probe == "pipeline_substitution" and r.status != "pass" and r.evidence.get("derived_positions"):
                reasons.append(f"{PROBE_LABELS[r.probe]} on {name}: {r.status} ({r.detail})")
    if out.hashed_tables and not scaled and not reasons:
        reasons.append("the script keeps hashed count tables whose size the harness could not scale to the load of a "
                       "full validation run, so target substitution on a short stream cannot clear it")
    out.reasons = unexercised + reasons  # the scored stage first: it is what a pass would be about
    out.status = "pass" if not out.reasons and names else "inconclusive"
    if out.status == "inconclusive" and not out.reasons:
        out.reasons = ["nothing was captured"]
    return out


#: What of an error message may reach a report: printable text, at most this long.
MESSAGE_CHARS = 200
_ABSOLUTE = re.compile(r"(?<![\w.:/])/(?:[^\s'\"():,]+)")


def reduce_error(error: ErrorInfo) -> ErrorInfo:
    """An error of the untrusted child as a report may show it: the type (a Python name), the
    line in the submission, and a short printable message whose absolute paths are replaced
    (a path outside the copied folder, or what the submission read there, stays in the sandbox)."""
    kind = error.type if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,60}", error.type or "") else "Error"
    message = "".join(ch if ch.isprintable() else " " for ch in (error.message or ""))
    message = _ABSOLUTE.sub(_path_shown, message)
    message = re.sub(r"\s+", " ", message).strip()
    if len(message) > MESSAGE_CHARS:
        message = message[:MESSAGE_CHARS - 3] + "..."
    code = "".join(ch for ch in (error.code or "")[:200] if ch.isprintable()) if error.in_submission else ""
    line = error.line if error.in_submission and isinstance(error.line, int) and error.line > 0 else None
    return ErrorInfo(type=kind, message=message, kind=error.kind if error.kind in ERROR_KINDS else "error",
                     line=line, code=code, in_submission=error.in_submission)


def _path_shown(match: re.Match[str]) -> str:
    path = match.group(0)
    for folder in (WORKDIR, HOME):  # the sandbox's own folders: the copy, the data, what the run wrote
        if path.startswith(folder + "/"):
            return path[len(folder) + 1:]
    return "<path>"


def _folder_name(bundle: Bundle) -> str:
    """The audited folder's name (the records folder its copy gets in the sandbox's checkout)."""
    path = PurePosixPath(bundle.path.replace("\\", "/"))
    return (path.parent if bundle.single_file else path).name


ERROR_KINDS = frozenset({"import", "file", "kernel", "memory", "harness", "refused", "error"})


#: Messages of errors that a CPU run of GPU code, or the shrunk settings, typically cause.
_CAUSES = (
    (re.compile(r"operator \S+ does not exist|no such operator|could not find the operator|torch\.ops\.", re.I),
     "a GPU-only kernel was needed: a compiled extension's operator is not built"),
    (re.compile(r"same dtype|expected scalar type|dtype mismatch|dtypes? must (be|match)|input type \(\S+\) and weight type",
                re.I), "dtype mismatch"),
    (re.compile(r"size of tensor a|shapes? .*(cannot be multiplied|mismatch|must match|invalid)|"
                r"invalid for input of size|must match the size|expected .*size|out of bounds for dimension|"
                r"not divisible|divisible by", re.I), "shape mismatch under the shrunk settings"),
)


def stop_cause(error: ErrorInfo, knobs: dict[str, str] | None = None) -> str:
    """What stopped the run, specific enough to act on: a kind the driver set (import, kernel,
    file, memory, refused), a setting of the harness's that the script rejected (its name is in
    the message), or the class of the error's message (dtype, shape), else "error"."""
    if error.kind != "error":
        return _kind(error)
    message = error.message or ""
    named = sorted(k for k in (knobs or {}) if len(k) > 3 and re.search(rf"\b{re.escape(k)}\b", message))
    if named:
        return f"the script rejected a shrunk setting: {named[0]}={(knobs or {})[named[0]]}"
    for pattern, cause in _CAUSES:
        if pattern.search(message):
            return cause
    if error.type == "AssertionError":
        return "an assertion of the script failed"
    return "error"


def _kind(error: ErrorInfo) -> str:
    return {"import": "import failed", "file": "a file was missing", "kernel": "a GPU-only kernel was needed",
            "memory": "out of memory", "harness": "harness error",
            "refused": "the sandbox refused it"}.get(error.kind, "error")

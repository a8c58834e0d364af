"""A records folder → the per-seed table every records check reads.

Each log is parsed once per bundle (the analysis is a field of :class:`auditor.evidence.Evidence`);
byte-identical copies (a ``train.log``
that duplicates ``train_seed42.log``) are recognised by content and counted once. Each log's
evidence run gives one row: the seed, the score and which stage it is, the sizes (as logged
and as submitted), the training time, every evaluation stage with its time, the hardware and
the data fingerprints. The report shows the rows and a summary (:meth:`RecordsAnalysis.facts`),
whichever checks ran; the checks decide on them.

Which stage is the score (§6.2 of the pipeline notes): the last metric line that is not a
diagnostic or pre-quantization pass, with the 8-decimal ``_exact`` twin preferred. When
submission.json claims a value for the seed (or one value for a single-log folder, or a mean
that a stage's per-seed values average to), the stage that matches the claim is the score,
even a diagnostic one: the eval budget and the byte accounting are then checked on the stage
the claim actually rests on.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditor.bundle import Bundle, BundleFile
from auditor.discover import submission_json
from auditor.files import FileStoreError
from auditor.records import constants as C
from auditor.records import patterns as P
from auditor.records.claims import Claims, SeedClaim, close, parse_claims
from auditor.records.declared import Declared, declared
from auditor.records.logparse import At, LogParse, Run, Score, SizeLine, parse_lines, step_score

LN2 = math.log(2.0)
_FILE_SEED = re.compile(r"(?:seed[_\-]?|_s)(\d{1,10})(?![\d])", re.I)
FOLDER_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}_\S")
TRACKS = ("track_10min_16mb", "track_non_record_16mb")


@dataclass
class LogEntry:
    file: BundleFile
    parse: LogParse
    duplicate_of: str | None = None  # rel of the log this one is a byte-identical copy of


@dataclass
class Stage:
    """An evaluation stage with a time: one column of the eval table."""

    label: str
    seconds: float
    line: int
    text: str
    final: bool


@dataclass
class SeedRow:
    """One seed's figures, from one log's evidence run."""

    seed: str
    key: str  # unique key in the table ("42", "42:rerun.log")
    log: LogEntry
    run: Run
    runs_in_log: int
    claim: SeedClaim | None = None
    score: Score | None = None
    score_reason: str = ""
    score_time: At | None = None  # seconds of the scored pass and the line it was read from
    stages: list[Stage] = field(default_factory=list)
    total_logged: SizeLine | None = None
    model: SizeLine | None = None
    code_logged: At | None = None
    code_counted: int | None = None
    code_counted_how: str = ""
    submitted_total: int | None = None
    helper_bytes: int = 0
    with_helpers_total: int | None = None
    #: Bytes the log's total counts besides the model and the code (a paid-prefix blob …).
    extra_bytes: int = 0
    train: At | None = None
    world: At | None = None
    hardware: str | None = None
    #: False for another run of a seed whose claimed score a different log of the folder shows
    #: (an ablation or an earlier attempt kept beside the evidence).
    evidence: bool = True
    #: Why a row is not the claim's evidence, when it is not (see :func:`_mark_evidence`).
    not_evidence_because: str = ""

    @property
    def path(self) -> str:
        return self.log.file.path

    @property
    def eval_sum_s(self) -> float:
        return sum(s.seconds for s in self.stages)

    def work_after_stop(self) -> dict[str, float] | None:
        """GPTQ calibration that ran after the training stop line, and when it ended."""
        after = [g for g in self.run.gptq if g.after_stop and g.seconds is not None]
        if not after or self.train is None:
            return None
        seconds = sum(g.seconds for g in after if g.seconds is not None)
        return {"gptq_s": round(seconds, 3), "ends_at_s": round(self.train.value + seconds, 3)}

    def bytes_per_token(self) -> float | None:
        s = self.score
        if s is None or s.loss is None or s.bpb <= 0:
            return None
        return s.loss / (s.bpb * LN2)

    def to_dict(self) -> dict[str, Any]:
        run = self.run
        eval_s: dict[str, float] = {}
        scored_stage = None  # the eval_s entry whose timer gives scored_eval_s
        for stage in self.stages:
            name = stage.label
            k = 2
            while name in eval_s:
                name = f"{stage.label}#{k}"
                k += 1
            eval_s[name] = round(stage.seconds, 3)
            if self.score_time is not None and stage.line == self.score_time.line:
                scored_stage = name
        out: dict[str, Any] = {
            "seed": self.seed,
            "key": self.key,
            "log": self.path,
            "run": f"{run.index + 1} of {self.runs_in_log}" if self.runs_in_log > 1 else None,
            "val_bpb": self.score.bpb if self.score else None,
            "val_bpb_stage": self.score.raw_label if self.score else None,
            "val_bpb_line": self.score.line if self.score else None,
            "val_loss": self.score.loss if self.score else None,
            "score_reason": self.score_reason or None,
            "evidence": None if self.evidence else False,
            "total_bytes_logged": self.total_logged.bytes if self.total_logged else None,
            "model_bytes": self.model.bytes if self.model else None,
            "code_bytes_logged": self.code_logged.value if self.code_logged else None,
            "submitted_code_bytes": self.code_counted,
            "submitted_code_counted_as": self.code_counted_how or None,
            "total_bytes_submitted": self.submitted_total,
            "total_bytes": self.submitted_total if self.submitted_total is not None else (
                self.total_logged.bytes if self.total_logged else None),
            "helper_code_bytes": self.helper_bytes or None,
            "other_artifact_bytes": self.extra_bytes or None,
            "total_bytes_with_helpers": self.with_helpers_total if self.helper_bytes else None,
            "train_s": round(self.train.value, 3) if self.train else None,
            "eval_s": eval_s,
            "scored_eval_s": round(self.score_time.value, 3) if self.score_time else None,
            "scored_eval_stage": scored_stage,
            "eval_sum_s": round(self.eval_sum_s, 3) if self.stages else None,
            "outside_timer_s": {a.value[0]: a.value[1] for a in run.outside_timer} or None,
            "total_eval_time_s": run.total_eval.value if run.total_eval else None,
            "work_after_stop_s": self.work_after_stop(),
            "world_size": self.world.value if self.world else None,
            "hardware": self.hardware,
            "val_tokens": run.val_tokens.value if run.val_tokens else None,
            "train_shards": run.train_shards.value if run.train_shards else None,
            "bytes_per_token": round(b, 7) if (b := self.bytes_per_token()) else None,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class RecordsAnalysis:
    """Everything the records checks share about one submission."""

    logs: list[LogEntry]
    rows: list[SeedRow]
    claims: Claims | None
    claims_file: BundleFile | None
    track: str | None
    track_source: str
    folder_parts: tuple[str, ...]
    main_bytes: int | None
    helpers: list[BundleFile]
    family: C.Family | None
    family_source: str
    read_errors: list[tuple[BundleFile, str]] = field(default_factory=list)
    #: What the README and submission.json say about the run (hardware, time, training data).
    declared: Declared = field(default_factory=Declared)

    @property
    def record_track(self) -> bool:
        """Whether the 10-minute record rules (train and eval budgets, 8xH100) apply."""
        return self.track != "track_non_record_16mb"

    @property
    def helper_bytes(self) -> int:
        return sum(max(f.size, 0) for f in self.helpers)

    def facts(self) -> dict[str, Any]:
        c = self.claims
        scores = [r.score.bpb for r in self.rows if r.score]
        out: dict[str, Any] = {
            "track": self.track,
            "track_source": self.track_source,
            "claimed_val_bpb": c.val_bpb.value if c and c.val_bpb else None,
            "claimed_val_loss": c.val_loss.value if c and c.val_loss else None,
            "claimed_bytes_total": int(c.bytes_total.value) if c and c.bytes_total else None,
            "claimed_seeds": c.seeds if c and c.seeds else None,
            "logs": len(self.logs),
            "duplicate_logs": {e.file.path: e.duplicate_of for e in self.logs if e.duplicate_of} or None,
            "seeds_with_scores": len(scores),
            "mean_val_bpb_logged": round(statistics.fmean(scores), 8) if scores else None,
            "main_script_bytes": self.main_bytes,
            "helper_code_files": {f.path: f.size for f in self.helpers} or None,
            "tokenizer_family": self.family.name if self.family else None,
            "tokenizer_family_source": self.family_source or None,
        }
        tokens = {r.run.val_tokens.value for r in self.rows if r.run.val_tokens}
        if tokens:
            out["val_tokens"] = sorted(tokens)[0] if len(tokens) == 1 else sorted(tokens)
        out.update(self.declared.facts())
        return {k: v for k, v in out.items() if v is not None}


# -- building ------------------------------------------------------------------------------------


def analyse(bundle: Bundle) -> RecordsAnalysis:
    """The records analysis of a bundle (read it through ``Evidence.records``, computed once)."""
    logs, errors = _read_logs(bundle)
    claims, claims_file = _claims(bundle)
    parts = folder_parts(bundle)
    track, track_source = _track(parts, claims)
    main = bundle.main_script
    helpers = [f for f in bundle.code_files if f is not main and f.size >= 0]
    result = RecordsAnalysis(
        logs=logs,
        rows=[],
        claims=claims,
        claims_file=claims_file,
        track=track,
        track_source=track_source,
        folder_parts=parts,
        main_bytes=main.size if main is not None and main.size >= 0 else None,
        helpers=helpers,
        family=None,
        family_source="",
        read_errors=errors,
    )
    result.rows = _rows(result)
    _choose_scores(result)
    _mark_evidence(result)
    for row in result.rows:
        _fill_row(result, row)
    result.family, result.family_source = _family(result)
    result.declared = declared(bundle, claims.data if claims else None, claims_file)
    return result


def _read_logs(bundle: Bundle) -> tuple[list[LogEntry], list[tuple[BundleFile, str]]]:
    entries: list[LogEntry] = []
    errors: list[tuple[BundleFile, str]] = []
    seen: dict[str, str] = {}
    # seed-named logs first, so that a train.log copying one is the duplicate, not the original
    for f in sorted(bundle.logs, key=lambda f: (not re.search(r"seed", f.rel, re.I), f.rel.count("/"), f.rel)):
        try:
            parse = parse_lines(f.rel, bundle.iter_lines(f.rel))
        except FileStoreError as exc:
            errors.append((f, str(exc)))
            continue
        entry = LogEntry(f, parse)
        if parse.lines and parse.digest in seen:
            entry.duplicate_of = seen[parse.digest]
        elif parse.lines:
            seen[parse.digest] = f.path
        entries.append(entry)
    return entries, errors


def _claims(bundle: Bundle) -> tuple[Claims | None, BundleFile | None]:
    files = sorted(bundle.submission_jsons, key=lambda f: (f.rel.count("/"), f.rel != "submission.json", f.rel))
    for f in files:
        data = submission_json(bundle, f.rel)
        if data is not None:
            return parse_claims(f.path, data), f
    return None, None


def records_relative(bundle: Bundle) -> tuple[str, ...] | None:
    """The folder's path from the ``records`` folder of a parameter-golf tree on, or None.

    A git tree is read repository-relative; a folder on disk counts when the folder holding
    its ``records`` is a checkout (it has ``train_gpt.py``, ``data/`` or ``.git``), so that a
    ``records`` folder elsewhere (a fixture collection) is not taken for the challenge's.
    """
    store = bundle.store
    prefix = getattr(store, "prefix", None)
    if isinstance(prefix, str):
        parts = tuple(p for p in prefix.split("/") if p)
        return parts if parts[:1] == ("records",) else None
    parts = folder_parts(bundle)
    if "records" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("records")
    root = Path(*parts[:i]) if i else Path(".")
    if any((root / marker).exists() for marker in ("train_gpt.py", "data", ".git")):
        return parts[i:]
    return None


def folder_parts(bundle: Bundle) -> tuple[str, ...]:
    """The submission folder's path components (repository-relative for a git tree)."""
    store = bundle.store
    prefix = getattr(store, "prefix", None)
    if isinstance(prefix, str):
        return tuple(p for p in prefix.split("/") if p)
    root = getattr(store, "root", None)
    if isinstance(root, Path):
        try:
            return tuple(root.resolve().parts)
        except OSError:
            return tuple(root.parts)
    return tuple(p for p in bundle.path.split("/") if p)


def _track(parts: tuple[str, ...], claims: Claims | None) -> tuple[str | None, str]:
    declared_non_record = bool(claims and claims.track and "non" in claims.track.lower()
                               and "record" in claims.track.lower())
    for part in reversed(parts[:-1]):
        if part.startswith("track_"):
            if part == "track_10min_16mb" and declared_non_record:
                # the submission says what it is; the folder is where it was put (PG308)
                return "track_non_record_16mb", "submission.json (in a track_10min_16mb folder)"
            return part, "folder"
    if claims and claims.track:
        text = claims.track.lower()
        if "non" in text and "record" in text:
            return "track_non_record_16mb", "submission.json"
        if "10min" in text or "10_min" in text or text in ("record", "records"):
            return "track_10min_16mb", "submission.json"
    return None, ""


def _seed_of(entry: LogEntry, run: Run) -> str:
    if run.seed is not None:
        return str(run.seed.value)
    name = entry.file.rel.rsplit("/", 1)[-1]
    match = _FILE_SEED.search(name)
    if match:
        return str(int(match.group(1)))
    return name


def _rows(result: RecordsAnalysis) -> list[SeedRow]:
    rows: list[SeedRow] = []
    used: set[str] = set()
    claims = result.claims
    # logs named like the seed come first, so "42" is train_seed42.log and not a rerun
    ordered = sorted(
        (e for e in result.logs if e.duplicate_of is None),
        key=lambda e: (not re.search(r"seed", e.file.rel, re.I), e.file.rel.count("/"), e.file.rel),
    )
    for entry in ordered:
        run = entry.parse.main_run
        if run is None:
            continue
        seed = _seed_of(entry, run)
        key = seed if seed not in used else f"{seed}:{entry.file.rel}"
        used.add(key)
        row = SeedRow(seed, key, entry, run, len(entry.parse.evidence_runs))
        row.claim = claims.seed_claim(seed) if claims else None
        rows.append(row)
    rows.sort(key=lambda r: (r.log.file.rel,))
    return rows


# -- the score of each row -----------------------------------------------------------------------


def default_score(run: Run) -> Score | None:
    """The last final stage line, with its 8-decimal ``_exact`` twin preferred (§6.2)."""
    finals = [s for s in run.scores if s.final]
    if not finals:
        return None
    last = finals[-1]
    if not last.exact:
        for s in reversed(finals):
            if s.exact and s.label == last.label and s.line >= last.line and close(s.bpb, s.decimals, last.bpb, last.decimals):
                return s
    return last


def _matching(run: Run, value: float, decimals: int) -> list[Score]:
    return [s for s in run.scores if close(value, decimals, s.bpb, s.decimals)]


def _bpb_under_val_loss(claims: Claims, rows: list[SeedRow]) -> None:
    """A submission.json with no ``val_bpb`` whose ``val_loss`` holds a bits-per-byte figure
    (it equals a logged bpb and no logged loss): that figure is the claim the runs are matched
    against (PG305 reports the mislabelled key)."""
    if claims.val_bpb is not None or claims.val_loss is None:
        return
    value, decimals = claims.val_loss.value, claims.val_loss.decimals
    scores = [s for r in rows for s in r.run.scores]
    if any(close(value, decimals, s.bpb, s.decimals) for s in scores) and not any(
            s.loss is not None and close(value, decimals, s.loss, s.decimals) for s in scores):
        claims.val_bpb = claims.val_loss


def _choose_scores(result: RecordsAnalysis) -> None:
    claims = result.claims
    rows = result.rows
    distinct_seeds = {r.seed for r in rows}
    for row in rows:
        row.score = default_score(row.run)
        row.score_reason = "last final stage" if row.score else ""
    if claims is None:
        return
    _bpb_under_val_loss(claims, rows)
    unmatched = []
    for row in rows:
        claim = row.claim.bpb if row.claim and row.claim.bpb else None
        how = f"matches submission.json {claim.key}" if claim else ""
        if claim is None and len(distinct_seeds) == 1 and claims.val_bpb:
            claim, how = claims.val_bpb, f"matches submission.json {claims.val_bpb.key}"
        if claim is None:
            unmatched.append(row)
            continue
        _pick(row, claim.value, claim.decimals, how)
    # a mean claim: the stage whose per-seed values average to it
    if unmatched and claims.val_bpb and len(distinct_seeds) > 1:
        target = claims.val_bpb
        current = [r.score.bpb for r in unmatched if r.score]
        if len(current) == len(unmatched) and close(target.value, target.decimals, statistics.fmean(current), 8):
            return
        labels: dict[str, list[tuple[SeedRow, Score]]] = {}
        for row in unmatched:
            per_label: dict[str, Score] = {}
            for s in row.run.scores:
                per_label[s.label] = s  # the last of each label
            for label, s in per_label.items():
                labels.setdefault(label, []).append((row, s))
        for label, members in labels.items():
            if len(members) != len(unmatched):
                continue
            mean = statistics.fmean(s.bpb for _, s in members)
            if close(target.value, target.decimals, mean, 8):
                for row, s in members:
                    if row.score is None or row.score.label != label:
                        row.score = _exact_twin(row.run, s)
                        row.score_reason = f"stage whose mean over seeds matches submission.json {target.key}"
                break


def _mark_evidence(result: RecordsAnalysis) -> None:
    """A seed with several logs: those whose score is not the claimed one are other runs. In
    a single-seed submission (``"seed": 1337``) the logs of other seeds are other runs too
    (seeds it tried and dropped)."""
    single = result.claims.single_seed if result.claims else None
    if single is not None and any(row.seed == single for row in result.rows):
        for row in result.rows:
            if row.seed != single:
                row.evidence = False
                row.not_evidence_because = f"not seed {single}, the one seed submission.json names: not part of the claim"
    by_seed: dict[str, list[SeedRow]] = {}
    for row in result.rows:
        by_seed.setdefault(row.seed, []).append(row)
    for rows in by_seed.values():
        if len(rows) < 2:
            continue
        matched = [r for r in rows if "matches submission.json" in r.score_reason]
        if matched:
            for row in rows:
                row.evidence = row in matched


def _exact_twin(run: Run, score: Score) -> Score:
    for s in run.scores:
        if s.label == score.label and s.exact and s.line > score.line and close(s.bpb, s.decimals, score.bpb, score.decimals):
            return s
    return score


def _pick(row: SeedRow, value: float, decimals: int, how: str) -> None:
    if row.score is not None and close(value, decimals, row.score.bpb, row.score.decimals):
        row.score_reason = f"last final stage; {how}"
        return
    matches = _matching(row.run, value, decimals)
    if matches:
        finals = [s for s in matches if s.final]
        chosen = (finals or matches)[-1]
        row.score = chosen
        row.score_reason = how + ("" if chosen.final else " (a stage that is not a final score)")
        return
    if row.score is None:  # no stage line at all: the claim may be a training-time validation
        steps = [s for s in map(step_score, row.run.step_vals) if s is not None and close(value, decimals, s.bpb, s.decimals)]
        if steps:
            row.score = steps[-1]
            row.score_reason = how + " (a training-time validation, not a final score)"


# -- figures of each row -------------------------------------------------------------------------


def score_time(run: Run, score: Score) -> At | None:
    """Seconds of the pass a score comes from: its own timer, its twin's, or the pass it mixes."""
    if score.eval_s is not None:
        return At(score.eval_s, score.line, score.text)
    index = next((i for i, s in enumerate(run.scores) if s is score), None)
    if index is None:
        return None
    for s in reversed(run.scores[max(0, index - 10):index]):
        if s.eval_s is None or score.line - s.line > 12:
            continue
        same = s.label == score.label or close(s.bpb, s.decimals, score.bpb, score.decimals)
        if same:
            return At(s.eval_s, s.line, s.text)
    if score.loss is None:  # a mixture on top of the pass just before it
        for s in reversed(run.scores[max(0, index - 3):index]):
            if s.eval_s is not None and score.line - s.line <= 3:
                return At(s.eval_s, s.line, s.text)
    return None


def _stages(run: Run) -> list[Stage]:
    stages = []
    for s in run.scores:
        if s.eval_s is None or P.PROGRESS_LABEL.search(s.raw_label):
            continue
        if s.kind == "done" and any(o.eval_s is not None and 0 < o.line - s.line <= 3 for o in run.scores):
            continue  # "ttt:done … elapsed=" repeats the stage line that follows it
        stages.append(Stage(s.raw_label, s.eval_s, s.line, s.text, s.final))
    return stages


def _fill_row(result: RecordsAnalysis, row: SeedRow) -> None:
    run = row.run
    if row.score is not None:
        row.score_time = score_time(run, row.score)
    row.stages = _stages(run)
    row.total_logged = run.artifact_total()
    row.model = run.artifact_model()
    row.code_logged = run.code_logged()
    row.train = run.train_time()
    row.world = run.world()
    row.hardware = run.hardware()
    compressed = run.code.get("compressed")
    if compressed is not None:
        row.code_counted = int(compressed.value)
        row.code_counted_how = "the compressed code size the script logged (#1855 convention)"
    elif result.main_bytes is not None:
        row.code_counted = result.main_bytes
        row.code_counted_how = "the main script as shipped"
    if row.model is not None and row.total_logged is not None and row.code_logged is not None:
        # what the log's total holds besides the model and the code it counted (a paid-prefix
        # blob, a packed table) is part of the artifact too
        row.extra_bytes = max(0, row.total_logged.bytes - row.model.bytes - int(row.code_logged.value))
    if row.code_counted is not None:
        if row.model is not None:
            row.submitted_total = row.model.bytes + row.code_counted + row.extra_bytes
        elif row.total_logged is not None and row.code_logged is not None:
            row.submitted_total = row.total_logged.bytes - int(row.code_logged.value) + row.code_counted
    row.helper_bytes = result.helper_bytes
    if row.submitted_total is not None:
        row.with_helpers_total = row.submitted_total + row.helper_bytes


def _family(result: RecordsAnalysis) -> tuple[C.Family | None, str]:
    """The tokenizer family: from the scored token count, else from the tokenizer's name."""
    for row in result.rows:
        if row.run.val_tokens is not None:
            fam = C.family_of_tokens(row.run.val_tokens.value)
            if fam is not None:
                return fam, f"val_tokens {row.run.val_tokens.value:,} ({row.path}:{row.run.val_tokens.line})"
    for row in result.rows:
        run = row.run
        text = str(run.tokenizer.value).lower() if run.tokenizer else ""
        where = f"{row.path}:{run.tokenizer.line}" if run.tokenizer else row.path
        if "caseops" in text or run.sidecar is not None:
            return C.family_named("caseops"), f"CaseOps tokenizer or byte sidecar ({where})"
        for name, size in (("sp1024", 1024), ("sp4096", 4096), ("sp8192", 8192)):
            if f"fineweb_{size}_bpe.model" in text:
                return C.family_named(name), f"tokenizer {run.tokenizer.value} ({where})"  # type: ignore[union-attr]
        if "byte260" in text:
            return C.family_named("byte260"), f"byte260 tokenizer ({where})"
    return None, ""

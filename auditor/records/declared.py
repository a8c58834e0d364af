"""What a submission declares about its own run, in prose and in submission.json.

Logs are the first evidence of how a run was made, but some submissions say it in words
instead, or as well: ``"hardware": "RTX A6000"`` or ``"wallclock_minutes": 120`` in
submission.json, ``Hardware: 1x A100`` or "we train on the validation shard" in the README.
Those statements are the submitter's own account, so the records checks read them too:
hardware (PG310), training time (PG304) and validation data in training (PG307).

Precision comes first, so only statements of a fixed shape are read:

- hardware and training time from ``key: value`` lines (markdown lists, bold keys, table
  rows) and from submission.json keys; never from free prose, where other machines and
  other runs are discussed ("ablations on a 4090, final runs on 8xH100");
- validation data in training from a sentence whose verb is "train" and whose object is
  the validation shard, split, set, data or files (``fineweb_val_*``), or from a
  ``TRAIN_FILES`` / ``train_files`` setting that names validation files. A sentence that
  negates it ("no training on validation data"), quotes the rules, or speaks of score-first
  test-time training (training on tokens already scored is legal) is not a declaration.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from auditor.bundle import Bundle, BundleFile, FileKind
from auditor.files import FileStoreError

#: Markdown files larger than this are not read (no README comes close).
MAX_MD_BYTES = 1_000_000


@dataclass(frozen=True)
class Statement:
    """A declared fact and where it is written."""

    path: str  # as shown to the user
    line: int
    text: str  # the line (or JSON key and value), trimmed
    value: object


@dataclass
class Declared:
    """The facts a submission declares about its run."""

    hardware: list[Statement] = field(default_factory=list)  # value: (count | None, model)
    train_time: list[Statement] = field(default_factory=list)  # value: (seconds, training-specific)
    val_training: list[Statement] = field(default_factory=list)  # value: what is trained on

    def facts(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.hardware:
            out["declared_hardware"] = [f"{s.path}:{s.line}: {s.text}" for s in self.hardware]
        if self.train_time:
            out["declared_train_time"] = [f"{s.path}:{s.line}: {s.text}" for s in self.train_time]
        if self.val_training:
            out["declared_val_training"] = [f"{s.path}:{s.line}: {s.text}" for s in self.val_training]
        return out


# -- hardware --------------------------------------------------------------------------------------

#: GPU models, as people write them; a value naming none of these is not read as hardware.
_GPU = re.compile(
    r"(?i)(?:(?<=\d[x×])|(?<![A-Za-z0-9]))(?P<model>(?:(?:GeForce|RTX|Tesla|Quadro)\s+)*(?:H100|H200|H800|H20|B200|B100|GB200|A100|A800|A6000|A5000|A4000|A40|A10G?|L40S?|L4|V100|T4|P100"
    r"|MI\d{3}X?|RTX\s?(?:PRO\s?)?\d{4}(?:\s?Ti)?|GTX\s?\d{4}(?:\s?Ti)?|\d{4}\s?Ti|[345]090)"
    r"(?:[\s-]?(?:SXM\d?|PCIe|NVL|\d+\s?GB|HBM3e?))*)"
)
_COUNT_BEFORE = re.compile(r"(?i)(?P<n>\d{1,3})\s*(?:x|×|\*)\s*(?:(?:NVIDIA|AMD)\s+)?$")
_COUNT_AFTER = re.compile(r"(?i)^\s*(?:x|×|\*)\s*(?P<n>\d{1,3})\b")
#: ``Hardware: …`` / ``**GPU**: …`` / ``| GPUs | … |`` keys.
_HW_KEY = r"(?:hardware|gpus?|gpu[ _]type|device|devices|compute|accelerators?|machine)"
_KV_LINE = re.compile(r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?(?P<key>[A-Za-z][\w /()-]{0,40}?)(?:\*\*|__)?\s*[:=]\s*(?:\*\*|__)?\s*(?P<value>.+)$")
_TABLE_ROW = re.compile(r"^\s*\|\s*(?:\*\*)?(?P<key>[A-Za-z][\w /()-]{0,40}?)(?:\*\*)?\s*\|\s*(?P<value>[^|]+)\|")


def parse_hardware(value: str) -> tuple[int | None, str] | None:
    """(GPU count or None, model) of a hardware value such as ``8xH100 SXM`` or ``RTX A6000``."""
    m = _GPU.search(value)
    if m is None:
        return None
    model = re.sub(r"\s+", " ", m.group("model")).strip()
    count = None
    before = _COUNT_BEFORE.search(value[: m.start()])
    after = _COUNT_AFTER.match(value[m.end():])
    if before:
        count = int(before.group("n"))
    elif after:
        count = int(after.group("n"))
    return count, model


# -- training time ---------------------------------------------------------------------------------

_UNIT_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "secs": 1.0, "seconds": 1.0, "second": 1.0, "m": 60.0, "min": 60.0,
           "mins": 60.0, "minutes": 60.0, "minute": 60.0, "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hours": 3600.0,
           "hour": 3600.0}
#: submission.json keys: ``wallclock_minutes``, ``train_time_seconds``, ``training_minutes`` …
_TIME_KEY = re.compile(
    r"(?i)^(?P<train>train(?:ing)?_?)?(?:(?:wall_?clock|time|duration|run_?time)_?)?"
    r"(?P<unit>ms|s|sec|secs|seconds|m|min|mins|minutes|h|hr|hrs|hours)$"
)
#: Prose keys of a ``key: value`` line: ``Training time``, ``Wallclock``, ``Train wallclock``.
_TIME_PROSE_KEY = re.compile(
    r"(?i)^(?:(?P<train>train(?:ing)?\s*(?:wall[\s-]?clock|time|duration))|wall[\s-]?clock(?:\s*time)?)(?:\s*\(.*\))?$"
)
_TIME_VALUE = re.compile(r"^\s*~?\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|sec|secs|seconds|m|min|mins|minutes|h|hr|hrs|hours)\b", re.I)


def _time_key(key: str) -> tuple[float, bool] | None:
    """(seconds per unit, training-specific) of a submission.json key naming a run time."""
    if re.search(r"(?i)eval|ttt|step|avg|per_|gptq|compile|budget|cap|limit|max", key):
        return None
    m = _TIME_KEY.match(key)
    if m is None or not re.search(r"(?i)wall|time|train|duration", key):
        return None
    return _UNIT_S[m.group("unit").lower()], bool(m.group("train"))


# -- training on validation data -------------------------------------------------------------------

_VAL_OBJECT = (
    r"(?:fineweb_val\w*(?:\*|\.bin)?|\bval(?:idation)?[\s_-]?(?:shards?|split|set|data(?:set)?|files?|bins?)\b"
    r"|\bval(?:idation)?\s+(?:documents|docs|tokens)\b)"
)
_TRAIN_ON_VAL = re.compile(
    # not a compound's second half: "post-training adaptation" names a phase, not what it trains on
    r"(?i)(?<![\w-])(?:train(?:s|ed|ing)?|fine-?tun(?:e|es|ed|ing)|pre-?train(?:s|ed|ing)?)\b(?P<gap>[^.;:!?\n]{0,60}?)"
    r"\b(?:on|with|from|using|over)\s+(?:(?:the|a|an|our|its|their|full|entire|whole|all|of|official|held[\s-]?out"
    r"|fineweb|first|\d+k?)\s+){0,4}" + _VAL_OBJECT
)
#: Words between the verb and its object that start another clause ("trained on 8B tokens, then
#: evaluated on the validation set"): the object then belongs to another verb.
_OTHER_CLAUSE = re.compile(r"(?i),|\b(?:and|then|but|while|before|after|eval\w*|scor\w*|test\w*|measur\w*|report\w*|comput\w*)\b")
#: A setting of the training files that names validation files: ``TRAIN_FILES=…fineweb_val_*``.
_TRAIN_FILES_VAL = re.compile(r"(?i)\btrain_files\b\s*[:=]\s*\S*fineweb_val")
_NEGATION = re.compile(
    r"(?i)\b(?:no|not|never|without|cannot|nor|none|forbid\w*|prohibit\w*|illegal|disallow\w*|avoid\w*)\b|n't\b|n’t\b"
)
#: Test-time training on tokens already scored is the legal form (score-first, L-TTT-SCORE-FIRST);
#: a sentence in that context is not a declaration of training on validation data, unless it
#: says the training comes first ("pre-quant TTT trains on validation data BEFORE quantization").
_TTT_CONTEXT = re.compile(r"(?i)\bTTT\b|test[\s-]?time|score[\s-]?first|already[\s-](?:scored|evaluated|seen)|after (?:scoring|being scored|they are scored|it is scored|evaluat)|backward[\s-]looking|legal")
_TRAIN_FIRST = re.compile(r"(?i)pre[\s-]?quant|before (?:quantiz|scor|evaluat|the eval)|prior to (?:quantiz|scor|evaluat)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _declares_val_training(sentence: str) -> str | None:
    """The matched words when a sentence declares training on validation data, else None."""
    m = _TRAIN_FILES_VAL.search(sentence)
    if m:
        return m.group(0)
    m = _TRAIN_ON_VAL.search(sentence)
    if m is None or _OTHER_CLAUSE.search(m.group("gap")):
        return None
    head = sentence[: m.end()]
    if _NEGATION.search(head):
        return None
    if re.search(r"[\"“”]", sentence[: m.start()]):
        return None  # a quotation (of the rules, of a review)
    if _TTT_CONTEXT.search(sentence) and not _TRAIN_FIRST.search(sentence):
        return None
    return m.group(0)


# -- reading -------------------------------------------------------------------------------------


def _markdown_files(bundle: Bundle) -> list[BundleFile]:
    return [
        f for f in bundle.files
        if (f.kind is FileKind.README or f.rel.lower().endswith(".md")) and 0 <= f.size <= MAX_MD_BYTES
    ]


def _strip_md(line: str) -> str:
    return line.replace("`", "").replace("**", "").replace("__", "")


def _read_markdown(bundle: Bundle, f: BundleFile, out: Declared) -> None:
    try:
        text = bundle.read_text(f.rel, limit=MAX_MD_BYTES)
    except FileStoreError:
        return
    in_code = False
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            in_code = not in_code
            continue
        line = _strip_md(raw)
        shown = stripped[:300]
        if stripped.startswith(">"):
            continue  # a quotation (of the rules, of a review)
        if in_code:
            # commands in a code block: only a training-files setting is a statement
            m = _TRAIN_FILES_VAL.search(line)
            if m:
                out.val_training.append(Statement(f.path, number, shown, m.group(0)))
            continue
        kv = _TABLE_ROW.match(line) or _KV_LINE.match(line)
        if kv is not None:
            key, value = kv.group("key").strip().lower(), kv.group("value").strip()
            if re.fullmatch(_HW_KEY, key):
                hw = parse_hardware(value)
                if hw is not None:
                    out.hardware.append(Statement(f.path, number, shown, hw))
            tk = _TIME_PROSE_KEY.match(key)
            tv = _TIME_VALUE.match(value)
            if tk and tv:
                seconds = float(tv.group("n")) * _UNIT_S[tv.group("unit").lower()]
                out.train_time.append(Statement(f.path, number, shown, (seconds, bool(tk.group("train")))))
        for sentence in _SENTENCE_END.split(line):
            found = _declares_val_training(sentence)
            if found:
                out.val_training.append(Statement(f.path, number, shown, found))
                break


def _json_line(text: str, key: str) -> int:
    """The line of ``"key"`` in a JSON text (1 when it cannot be found)."""
    at = text.find(json.dumps(key))
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def _read_json(bundle: Bundle, f: BundleFile, data: dict, out: Declared) -> None:
    try:
        text = bundle.read_text(f.rel)
    except FileStoreError:
        text = ""
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        lower = key.lower()
        if re.fullmatch(_HW_KEY, lower) and isinstance(value, str):
            hw = parse_hardware(value)
            if hw is not None:
                out.hardware.append(Statement(f.path, _json_line(text, key), f"{json.dumps(key)}: {json.dumps(value)}", hw))
            continue
        unit = _time_key(key)
        if unit is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            scale, training = unit
            out.train_time.append(
                Statement(f.path, _json_line(text, key), f"{json.dumps(key)}: {json.dumps(value)}", (float(value) * scale, training))
            )
            continue
        if lower in ("train_files", "train_data", "training_data", "train_shards_pattern") and isinstance(value, str):
            if "fineweb_val" in value or re.fullmatch(r"(?i)val(?:idation)?(?:[ _]?(?:shard|split|set|data))?", value.strip()):
                out.val_training.append(Statement(f.path, _json_line(text, key), f"{json.dumps(key)}: {json.dumps(value)}", value))
            continue
        if lower in ("blurb", "description", "notes", "summary", "name") and isinstance(value, str):
            for sentence in _SENTENCE_END.split(value):
                found = _declares_val_training(sentence)
                if found:
                    out.val_training.append(Statement(f.path, _json_line(text, key), f"{json.dumps(key)}: {sentence[:200]}", found))
                    break


def declared(bundle: Bundle, claims_data: dict | None, claims_file: BundleFile | None) -> Declared:
    """The facts the submission's markdown files and submission.json declare about its run."""
    out = Declared()
    for f in _markdown_files(bundle):
        _read_markdown(bundle, f, out)
    if claims_data is not None and claims_file is not None:
        _read_json(bundle, claims_file, claims_data, out)
    return out

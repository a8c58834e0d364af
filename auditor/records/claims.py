"""What a submission.json claims, read from the many shapes it comes in.

The README asks for "name, GitHub ID, val_bpb, and related metadata"; in practice the file
has dozens of variants (74 surveyed): ``val_bpb`` or only ``val_loss`` holding a bpb (PR
#825), ``seeds`` as a list or a dict, ``seed_results`` keyed by ``"42"`` or ``"seed1"``,
``val_bpb_per_seed``, sizes as ``bytes_total``, ``artifact_bytes``, ``artifact_bytes_max`` …
This module reads them into one shape and remembers which key each figure came from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_SEED_KEY = re.compile(r"^(?:seed[_\-\s]?|s)?(\d{1,10})$", re.I)
_MEAN_BPB_KEYS = re.compile(r"^(?:mean_)?val_bpb(?:_mean|_\d+seed_mean|_avg|_average)?$", re.I)
_SIZE_KEYS = (
    "bytes_total", "artifact_bytes_max", "total_submission_bytes_max", "artifact_bytes", "total_bytes",
    "artifact_size_bytes", "artifact_bytes_mean", "total_submission_bytes_mean", "submission_bytes",
)
_CODE_KEYS = ("bytes_code", "code_bytes")
_PER_SEED_BPB = ("val_bpb", "mix_bpb", "bpb", "final_val_bpb", "val_bpb_exact")
_PER_SEED_LOSS = ("val_loss",)
_PER_SEED_BYTES = ("artifact_bytes", "bytes_total", "total_bytes", "total_submission_bytes", "submission_bytes", "bytes")
_PER_SEED_TRAIN = (("train_time_ms", 1e-3), ("train_ms", 1e-3), ("train_time_s", 1.0), ("train_s", 1.0), ("train_time", 1.0))
_PER_SEED_EVAL = (("eval_time_ms", 1e-3), ("eval_ms", 1e-3), ("eval_time_s", 1.0), ("eval_s", 1.0), ("ttt_time_ms", 1e-3),
                  ("total_eval_time_s", 1.0))


def number(value: Any) -> float | None:
    """A JSON value as a finite number (numbers, numeric strings), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value  # an int is a float to its callers; kept integral for byte counts
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        try:
            out = float(text)
        except ValueError:
            return None
        return out if math.isfinite(out) else None
    return None


def decimals_of(value: Any) -> int:
    """Decimals a claimed number was written with (1.0835 → 4)."""
    text = value if isinstance(value, str) else repr(value)
    if "e" in text.lower() or "." not in text:
        return 0
    return len(text.split(".", 1)[1].rstrip())


@dataclass(frozen=True)
class Claim:
    """A claimed number and the key it was read from."""

    value: float
    key: str
    decimals: int


@dataclass
class SeedClaim:
    seed: str
    bpb: Claim | None = None
    loss: Claim | None = None
    bytes: Claim | None = None
    train_s: Claim | None = None
    eval_s: Claim | None = None


@dataclass
class Claims:
    """The figures a submission.json claims."""

    rel: str
    data: dict[str, Any]
    val_bpb: Claim | None = None
    val_loss: Claim | None = None
    bytes_total: Claim | None = None
    bytes_code: Claim | None = None
    track: str | None = None
    hardware: str | None = None
    seeds: list[str] = field(default_factory=list)  # seeds named anywhere
    #: ``"seed": 1337`` with no list or per-seed results: the one seed the claim rests on.
    single_seed: str | None = None
    per_seed: dict[str, SeedClaim] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # required fields that are absent

    def seed_claim(self, seed: str | None) -> SeedClaim | None:
        return self.per_seed.get(seed) if seed is not None else None


def _claim(data: dict[str, Any], key: str) -> Claim | None:
    if key not in data:
        return None
    value = number(data[key])
    if value is None:
        return None
    return Claim(value, key, decimals_of(data[key]))


def _seed_of(key: Any) -> str | None:
    match = _SEED_KEY.match(str(key).strip())
    return str(int(match.group(1))) if match else None


def _seed_maps(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Dicts keyed by seeds, anywhere one level down (``seed_results``, ``val_bpb_per_seed`` …)."""
    found = []
    for key, value in data.items():
        if isinstance(value, dict) and value and all(_seed_of(k) is not None for k in value):
            found.append((key, value))
    return found


def parse_claims(rel: str, data: dict[str, Any]) -> Claims:
    claims = Claims(rel, data)
    claims.val_bpb = _claim(data, "val_bpb")
    if claims.val_bpb is None:
        for key in data:
            if _MEAN_BPB_KEYS.match(key):
                claims.val_bpb = _claim(data, key)
                if claims.val_bpb:
                    break
    claims.val_loss = _claim(data, "val_loss")
    for key in _SIZE_KEYS:
        claims.bytes_total = _claim(data, key)
        if claims.bytes_total:
            break
    for key in _CODE_KEYS:
        claims.bytes_code = _claim(data, key)
        if claims.bytes_code:
            break
    track = data.get("track")
    kind = data.get("submission_type") or data.get("type")
    if isinstance(track, str):
        claims.track = track.strip()
    elif isinstance(kind, str) and "non" in kind.lower() and "record" in kind.lower():
        claims.track = kind.strip()  # ``"submission_type": "non-record"`` names the track when ``track`` does not
    hardware = data.get("hardware") or data.get("gpu") or data.get("gpus")
    if isinstance(hardware, str):
        claims.hardware = hardware.strip()

    seeds: list[str] = []
    raw_seeds = data.get("seeds")
    if isinstance(raw_seeds, list):
        seeds += [s for s in (_seed_of(x) for x in raw_seeds if isinstance(x, (int, str))) if s is not None]
    elif isinstance(data.get("seed"), (int, str)) and not isinstance(data.get("seed"), bool):
        claims.single_seed = _seed_of(data["seed"])  # a single-seed submission: ``"seed": 1337``
    for map_key, mapping in _seed_maps(data):
        for raw_key, value in mapping.items():
            seed = _seed_of(raw_key)
            assert seed is not None
            if seed not in seeds:
                seeds.append(seed)
            entry = claims.per_seed.setdefault(seed, SeedClaim(seed))
            if isinstance(value, dict):
                _fill_seed(entry, value, map_key)
            else:
                v = number(value)
                if v is None:
                    continue
                lower = map_key.lower()
                if "byte" in lower or "size" in lower:
                    entry.bytes = entry.bytes or Claim(v, map_key, decimals_of(value))
                elif "loss" in lower:
                    entry.loss = entry.loss or Claim(v, map_key, decimals_of(value))
                elif "bpb" in lower or lower in ("seeds", "seed_results", "results", "per_seed"):
                    entry.bpb = entry.bpb or Claim(v, map_key, decimals_of(value))
    claims.seeds = seeds
    if claims.val_bpb is None:
        claims.missing.append("val_bpb")
    if not any(k in data for k in ("name", "author")):
        claims.missing.append("name/author")
    if not any(k in data for k in ("github_id", "github", "github_user", "author_github")):
        claims.missing.append("github_id")
    return claims


def _fill_seed(entry: SeedClaim, value: dict[str, Any], map_key: str) -> None:
    for key in _PER_SEED_BPB:
        c = _claim(value, key)
        if c:
            entry.bpb = entry.bpb or Claim(c.value, f"{map_key}.{key}", c.decimals)
            break
    for key in _PER_SEED_LOSS:
        c = _claim(value, key)
        if c:
            entry.loss = entry.loss or Claim(c.value, f"{map_key}.{key}", c.decimals)
    for key in _PER_SEED_BYTES:
        c = _claim(value, key)
        if c:
            entry.bytes = entry.bytes or Claim(c.value, f"{map_key}.{key}", c.decimals)
            break
    for key, scale in _PER_SEED_TRAIN:
        c = _claim(value, key)
        if c:
            entry.train_s = entry.train_s or Claim(c.value * scale, f"{map_key}.{key}", c.decimals)
            break
    for key, scale in _PER_SEED_EVAL:
        c = _claim(value, key)
        if c:
            entry.eval_s = entry.eval_s or Claim(c.value * scale, f"{map_key}.{key}", c.decimals)
            break


def close(claimed: float, claimed_decimals: int, logged: float, logged_decimals: int) -> bool:
    """Whether a claimed and a logged number agree to the rounding either was written with."""
    tol = 0.5 * 10 ** (-max(claimed_decimals, 2)) + 0.5 * 10 ** (-max(logged_decimals, 2)) + 1e-12
    return abs(claimed - logged) <= tol

"""Feed the auditor broken folders: it must answer each one without a traceback and write nothing.

Usage::

    python benchmarks/fuzz.py [--seed 0] [--cases 2] [--kinds flip_py,huge_sparse_log] [--timeout 120]
                              [--repo PATH/TO/parameter-golf --labels PATH/TO/dev.jsonl [--prs 825,1412] [--sample 15]]

The folders: the bundled example (``fixtures/examples/*``) and the records folders among the
fixtures (``fixtures/records/*``); with ``--repo`` and ``--labels``, also the records folders
of labeled pull requests, read from the clone at their head commits (``--prs``, else
``--sample`` of them drawn with the seed; every labeled head is audited once as it is).

Each folder is copied into a temporary directory and broken in one way per case; ``--cases``
cases of every kind (:data:`KINDS`) per folder, drawn from ``random.Random`` seeded by
``--seed``, the folder and the kind, so a run is reproducible. Each broken copy is audited in a
subprocess, ``python -m auditor check FOLDER --debug --format json`` (every third case
``sarif``, every fifth ``markdown``), without ``--runtime``, under ``--timeout`` seconds.
Counted per kind:

``crash``     a traceback on stderr (``--debug`` lets an internal error raise), or an exit
              code outside 0, 1, 2 (:mod:`auditor.exitcodes`);
``PG907``     a check that crashed and was caught;
``bad out``   JSON or SARIF output that does not parse, or is empty;
``timeout``   no answer within ``--timeout`` seconds;
``written``   the folder (or the file a link points at) changed: bytes, modes, mtimes, names.

Printed: a table per kind with the totals and the CPU seconds of the audits, then the first
lines of each failure. The exit code is 1 when anything failed. The mutated folders are removed.
As root, ``chmod 000`` does not stop reading: the ``unreadable`` kind is then run but says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(REPO_ROOT))

#: Exit codes the command line documents (auditor.exitcodes; 2 also for usage errors).
EXIT_CODES = (0, 1, 2)
#: Size of the sparse log; the auditor reads at most auditor.files.MAX_LOG_BYTES of it.
HUGE_BYTES = 256 * 1024 * 1024


@dataclass
class Context:
    """What a mutation may use besides the folder: a directory outside it and the sizes to write."""

    outside: Path
    huge_bytes: int = HUGE_BYTES
    long_line_bytes: int = 48 * 1024 * 1024


# --- picking files -------------------------------------------------------------------------------

def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _pick(folder: Path, rng: random.Random, role: str) -> Path:
    """A file of the folder in a role (script, log, json, readme), created when the folder has none."""
    files = _files(folder)
    match = {
        "script": lambda p: p.suffix == ".py",
        "log": lambda p: p.suffix in (".log", ".txt") and p.name != "requirements.txt",
        "json": lambda p: p.name == "submission.json",
        "readme": lambda p: p.name.lower() == "readme.md",
        "any": lambda p: True,
    }[role]
    chosen = [p for p in files if match(p)]
    if role == "script" and (folder / "train_gpt.py").is_file():
        chosen = [folder / "train_gpt.py"] * 3 + chosen  # the main script most often
    if chosen:
        return rng.choice(chosen)
    name = {"script": "train_gpt.py", "log": "train_seed1.log", "json": "submission.json",
            "readme": "README.md", "any": "README.md"}[role]
    (folder / name).write_bytes(b"")
    return folder / name


def _log_text(folder: Path) -> bytes:
    logs = [p for p in _files(folder) if p.suffix == ".log"]
    return logs[0].read_bytes() if logs else b"step:1/10 train_loss:3.0\nstep:10/10 val_loss:2.0 val_bpb:1.2\n"


def _random_bytes(rng: random.Random, n: int) -> bytes:
    """Bytes with invalid UTF-8 sequences and NUL bytes mixed in."""
    pieces = [rng.randbytes(n), b"\x00", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
    rng.shuffle(pieces)
    return b"".join(pieces)


# --- the mutations: each breaks the copy of a folder in place and says what it did -------------

def _flip(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    if not data:
        path.write_bytes(_random_bytes(rng, 16))
        return f"{path.name}: was empty, random bytes"
    spots = sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 8)))
    for spot in spots:
        data[spot] ^= rng.randint(1, 255)
    path.write_bytes(bytes(data))
    return f"{path.name}: bytes flipped at {spots}"


def flip_py(folder: Path, rng: random.Random, ctx: Context) -> str:
    return _flip(_pick(folder, rng, "script"), rng)


def flip_log(folder: Path, rng: random.Random, ctx: Context) -> str:
    return _flip(_pick(folder, rng, "log"), rng)


def flip_json(folder: Path, rng: random.Random, ctx: Context) -> str:
    return _flip(_pick(folder, rng, "json"), rng)


def flip_readme(folder: Path, rng: random.Random, ctx: Context) -> str:
    return _flip(_pick(folder, rng, "readme"), rng)


def truncate(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, rng.choice(["script", "script", "log", "json", "readme"]))
    size = path.stat().st_size
    cut = rng.randrange(size) if size else 0
    with path.open("r+b") as handle:
        handle.truncate(cut)
    return f"{path.name}: cut at byte {cut} of {size}"


def garbage_files(folder: Path, rng: random.Random, ctx: Context) -> str:
    made = []
    for _ in range(rng.randint(1, 5)):
        stem = rng.choice(["train_gpt", "train_seed7", "x", "submission", "README", "utils", "data", "run"])
        name = f"{stem}_{rng.randrange(1000)}{rng.choice(['.py', '.log', '.json', '.txt', '.md', '.sh', ''])}"
        sub = folder / rng.choice(["", "", "logs", "extra/deeper"])
        sub.mkdir(parents=True, exist_ok=True)
        (sub / name).write_bytes(_random_bytes(rng, rng.randint(0, 4096)))
        made.append((sub / name).relative_to(folder).as_posix())
    return f"random files {made}"


def random_bytes(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, rng.choice(["script", "log", "json", "readme", "any"]))
    path.write_bytes(_random_bytes(rng, rng.randint(1, 20000)))
    return f"{path.name}: replaced by random bytes"


def huge_sparse_log(folder: Path, rng: random.Random, ctx: Context) -> str:
    """A log with real lines, then a hole of zeros up to ``ctx.huge_bytes`` (no disk used)."""
    path = folder / f"train_seed{rng.randrange(10**6)}.log"
    path.write_bytes(_log_text(folder))
    with path.open("r+b") as handle:
        handle.truncate(ctx.huge_bytes)
    return f"{path.name}: sparse, {ctx.huge_bytes:,} bytes"


def huge_repeated_log(folder: Path, rng: random.Random, ctx: Context) -> str:
    """A real log's lines repeated past the read cap (the log a runaway loop prints)."""
    from auditor.files import MAX_LOG_BYTES

    text = _log_text(folder)
    path = _pick(folder, rng, "log")
    target = MAX_LOG_BYTES + len(text) + 1
    with path.open("wb") as handle:
        written = 0
        while written < target:
            handle.write(text)
            written += len(text)
    return f"{path.name}: its lines repeated to {written:,} bytes"


def one_line_log(folder: Path, rng: random.Random, ctx: Context) -> str:
    """A log that is one enormous line (no newline at all)."""
    path = _pick(folder, rng, "log")
    chunk = rng.choice([b"step:1/2 val_loss:2.0 val_bpb:1.1 ", b"\x1b[2K\r", b"x" * 64, b"\x00"])
    with path.open("wb") as handle:
        for _ in range(ctx.long_line_bytes // (1 << 20)):
            handle.write((chunk * ((1 << 20) // len(chunk) + 1))[: 1 << 20])
    return f"{path.name}: one line of {ctx.long_line_bytes:,} bytes of {chunk[:12]!r}"


_WRONG = [None, True, -1, 0, 1e308, float("nan"), "1.2", "", [], [1, "2"], {}, {"a": {"b": []}}, "x" * 10000]


def json_wrong_types(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, "json")
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        data = {}
    if not isinstance(data, dict) or not data:
        data = {"val_bpb": 1.2, "bytes_total": 15_000_000, "seeds": [1, 2, 3], "track": "10min_16mb"}
    keys = rng.sample(sorted(data), k=rng.randint(1, len(data)))
    for key in keys:
        data[key] = rng.choice(_WRONG)
    path.write_text(json.dumps(data, allow_nan=True))
    return f"{path.name}: wrong types for {keys}"


def json_deep(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, "json")
    depth = rng.choice([1000, 100_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    inner = '{"val_bpb": ' + "[" * depth + "]" * depth + "}" if rng.random() < 0.5 else opener * depth + "1" + closer * depth
    path.write_text(inner)
    return f"{path.name}: nested {depth} deep"


def json_not_object(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, "json")
    text = rng.choice(["[]", "[1, 2]", "null", "1.5", '"val_bpb"', "true", "", "  ", "{", '{"a": 1} {"b": 2}', "\ufeff{}", "NaN"])
    path.write_text(text)
    return f"{path.name}: {text!r}"


def json_duplicate_keys(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, "json")
    text = path.read_text(errors="replace").rstrip()
    extra = ', "val_bpb": 0.5, "val_bpb": "x", "seeds": 3, "seeds": null}'
    if text.endswith("}"):
        text = text[:-1].rstrip() + (extra if text[:-1].strip() not in ("{", "") else extra[1:])
    else:
        text = '{"val_bpb": 1.0' + extra
    path.write_text(text)
    return f"{path.name}: duplicate keys"


def empty_folder(folder: Path, rng: random.Random, ctx: Context) -> str:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return "every file removed"


def name_non_utf8(folder: Path, rng: random.Random, ctx: Context) -> str:
    names = rng.sample([b"train_\xff.log", b"caf\xe9.py", b"\xed\xa0\x80.md", b"train_gpt\x80.py", b"sub\xfe"], k=2)
    for raw in names:
        path = os.path.join(os.fsencode(folder), raw)
        if raw.endswith(b"\xfe"):
            os.mkdir(path)
            path = os.path.join(path, b"train_gpt.py")
        source = _pick(folder, rng, rng.choice(["script", "log"]))
        with open(path, "wb") as handle:
            handle.write(source.read_bytes())
    return f"files named {names}"


def name_newline(folder: Path, rng: random.Random, ctx: Context) -> str:
    names = rng.sample(["train\nseed1.log", "evil\r\n.py", "README\n.md", "x\x1b[31m.log", "tab\t.json", " lead.py"], k=2)
    for name in names:
        (folder / name).write_bytes(_pick(folder, rng, rng.choice(["script", "log"])).read_bytes())
    moved = _pick(folder, rng, "script")
    if moved.name == "train_gpt.py" and rng.random() < 0.5:
        moved.rename(folder / "train_gpt\n.py")
        names.append("train_gpt.py -> train_gpt\\n.py")
    return f"names {names!r}"


def symlink_outside(folder: Path, rng: random.Random, ctx: Context) -> str:
    secret = ctx.outside / "secret.txt"
    if not secret.exists():
        secret.write_text("outside-the-folder\n")
    target = rng.choice([secret, ctx.outside, Path("/etc/passwd"), Path("/dev/zero"), Path("/proc/self/environ")])
    victim = _pick(folder, rng, rng.choice(["script", "log", "json", "readme"]))
    victim.unlink()
    victim.symlink_to(target)
    (folder / "outside_link").symlink_to(ctx.outside)
    return f"{victim.name} -> {target}, outside_link -> the parent"


def symlink_dangling(folder: Path, rng: random.Random, ctx: Context) -> str:
    victim = _pick(folder, rng, rng.choice(["script", "log", "json", "readme"]))
    victim.unlink()
    victim.symlink_to(folder / "does-not-exist")
    loop = folder / "loop.log"
    loop.symlink_to(loop)
    return f"{victim.name} -> nowhere, loop.log -> itself"


def dir_as_file(folder: Path, rng: random.Random, ctx: Context) -> str:
    name = rng.choice(["train_gpt.py", "submission.json", "README.md", "train_seed1337.log"])
    path = folder / name
    if path.exists():
        path.unlink()
    path.mkdir()
    (path / "inner.py").write_text("x = 1\n")
    return f"{name} is a folder"


def special_file(folder: Path, rng: random.Random, ctx: Context) -> str:
    """A FIFO where a file is expected (reading it would block forever)."""
    name = rng.choice(["train_gpt.py", "submission.json", "train_seed1337.log", "README.md"])
    path = folder / name
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    return f"{name} is a FIFO"


def unreadable(folder: Path, rng: random.Random, ctx: Context) -> str:
    path = _pick(folder, rng, rng.choice(["script", "log", "json", "readme"]))
    path.chmod(0)
    sub = folder / "logs_locked"
    sub.mkdir()
    (sub / "train_seed9.log").write_bytes(_log_text(folder))
    sub.chmod(0)
    note = " (as root: still readable)" if os.geteuid() == 0 else ""
    return f"{path.name} and logs_locked/ chmod 000{note}"


def py_deep(folder: Path, rng: random.Random, ctx: Context) -> str:
    """A script with pathological nesting or one huge line (parsers recurse)."""
    path = folder / "train_gpt.py"
    if path.is_dir():
        shutil.rmtree(path)
    depth = rng.choice([100, 1000, 50_000])
    text = rng.choice([
        "x = " + "(" * depth + "1" + ")" * depth + "\n",
        "x = " + "[" * depth + "]" * depth + "\n",
        "x = " + " + ".join(["1"] * depth * 2) + "\n",
        "".join("    " * i + "if x:\n" for i in range(min(depth, 200))) + "    " * min(depth, 200) + "pass\n",
        "x = " + "-" * depth + "1\n",
        "def f():\n    return " + "f(" * depth + ")" * depth + "\n",
        "x = '" + "a" * (depth * 100) + "'\n",
    ])
    path.write_text(text)
    return f"train_gpt.py: nested {depth} deep ({text[:12]!r}…)"


KINDS: dict[str, Callable[[Path, random.Random, Context], str]] = {
    fn.__name__: fn
    for fn in (flip_py, flip_log, flip_json, flip_readme, truncate, garbage_files, random_bytes, huge_sparse_log,
               huge_repeated_log, one_line_log, json_wrong_types, json_deep, json_not_object, json_duplicate_keys,
               empty_folder, name_non_utf8, name_newline, symlink_outside, symlink_dangling, dir_as_file,
               special_file, unreadable, py_deep)
}


# --- snapshots -----------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[bytes, tuple]:
    """Every entry below ``root`` (names as bytes, links not followed): type, mode, size, mtime, digest."""
    out: dict[bytes, tuple] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        for name in [b".", *dirnames, *filenames] if dirpath == base else [*dirnames, *filenames]:
            path = os.path.normpath(os.path.join(dirpath, name))
            info = os.lstat(path)
            digest: str | None = None
            if stat.S_ISREG(info.st_mode):
                try:
                    with open(path, "rb") as handle:
                        digest = hashlib.file_digest(handle, "sha256").hexdigest()
                except OSError:
                    digest = None
            elif stat.S_ISLNK(info.st_mode):
                digest = os.readlink(path).hex()
            out[os.path.relpath(path, base)] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_size,
                                                info.st_mtime_ns, digest)
    return out


def changes(before: dict[bytes, tuple], after: dict[bytes, tuple]) -> list[str]:
    out = [f"{os.fsdecode(k)!r}: removed" for k in before.keys() - after.keys()]
    out += [f"{os.fsdecode(k)!r}: created" for k in after.keys() - before.keys()]
    out += [f"{os.fsdecode(k)!r}: {before[k]} -> {after[k]}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(out)


# --- running one case ----------------------------------------------------------------------------

@dataclass
class Answer:
    """What the command line did with one folder."""

    code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    cpu: float = 0.0


Runner = Callable[[Path, str, float], Answer]


def run_subprocess(folder: Path, fmt: str, timeout: float) -> Answer:
    """``python -m auditor check FOLDER --debug --format FMT``, killed (its process group) after ``timeout``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditor", "check", os.fsencode(folder), "--debug", "--isolated", "--format", fmt],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder.parent, env=env, start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Answer(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out, cpu)


@dataclass
class Case:
    folder: str
    kind: str
    what: str
    fmt: str
    answer: Answer | None = None
    problems: list[str] = field(default_factory=list)  # crash / PG907 / bad out / timeout / written
    detail: list[str] = field(default_factory=list)


PROBLEMS = ("crash", "PG907", "bad out", "timeout", "written")


def judge(case: Case, answer: Answer) -> None:
    """Fill ``case.problems`` from what the auditor answered."""
    case.answer = answer
    if answer.timed_out:
        case.problems.append("timeout")
        return
    if "Traceback" in answer.stderr or answer.code not in EXIT_CODES:
        case.problems.append("crash")
        case.detail += answer.stderr.strip().splitlines()[-6:] or [f"exit code {answer.code}"]
        return
    if case.fmt in ("json", "sarif"):
        try:
            document = json.loads(answer.stdout)
        except ValueError as exc:
            case.problems.append("bad out")
            case.detail.append(f"{case.fmt} output does not parse: {exc}; stderr: {answer.stderr.strip()[-300:]}")
            return
        if case.fmt == "json":
            findings = [f for s in document.get("submissions", []) for f in s.get("findings", [])]
            crashed = [f for f in findings if f.get("code") == "PG907"]
        else:
            results = [r for run in document.get("runs", []) for r in run.get("results", [])]
            crashed = [r for r in results if r.get("ruleId") == "PG907"]
        if crashed:
            case.problems.append("PG907")
            case.detail += [json.dumps(c.get("message"))[:400] for c in crashed[:3]]
    elif "PG907" in answer.stdout:
        case.problems.append("PG907")
        case.detail += [line for line in answer.stdout.splitlines() if "PG907" in line][:3]


def fmt_for(index: int) -> str:
    return "sarif" if index % 3 == 2 else "markdown" if index % 5 == 4 else "json"


def run_case(source: Path, kind: str, rng: random.Random, work: Path, index: int, runner: Runner,
             timeout: float, ctx_sizes: dict | None = None) -> Case:
    """Copy ``source`` under ``work``, break it with ``kind``, audit it, compare snapshots, clean up."""
    case_dir = work / f"case{index}"
    case_dir.mkdir()
    outside = case_dir / "outside"
    outside.mkdir()
    folder = case_dir / source.name
    shutil.copytree(source, folder, symlinks=True)
    ctx = Context(outside=outside, **(ctx_sizes or {}))
    case = Case(source.name, kind, "", fmt_for(index))
    try:
        case.what = KINDS[kind](folder, rng, ctx)
        before = snapshot(case_dir)
        judge(case, runner(folder, case.fmt, timeout))
        written = changes(before, snapshot(case_dir))
        if written:
            case.problems.append("written")
            case.detail += written[:5]
    finally:
        remove(case_dir)
    return case


def remove(path: Path) -> None:
    """Remove a case folder, unreadable parts included."""
    for dirpath, dirnames, _ in os.walk(os.fsencode(path)):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o755)
    shutil.rmtree(path)


# --- folders -------------------------------------------------------------------------------------

def bundled_folders() -> list[Path]:
    fixtures = REPO_ROOT / "fixtures"
    return sorted([*(fixtures / "examples").iterdir(), *(fixtures / "records").iterdir()])


def pr_folders(repo_path: str, labels: Path, prs: list[int] | None, sample: int, seed: int,
               work: Path) -> tuple[list[Path], list[Path]]:
    """Every labeled PR's records folders written under ``work`` (all, and the ones to mutate)."""
    from auditor.files import FileStoreError
    from auditor.gitrepo import GitRepo, GitTreeStore

    rows = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    if prs:
        rows = [r for r in rows if r["pr"] in set(prs)]
    chosen = {r["pr"] for r in (rows if prs else random.Random(seed).sample(rows, min(sample, len(rows))))}
    every, mutated = [], []
    with GitRepo(repo_path) as repo:
        for row in sorted(rows, key=lambda r: r["pr"]):
            for i, prefix in enumerate(row["record_dirs"]):
                store = GitTreeStore(repo, row["head_sha"], prefix)
                target = work / f"pr{row['pr']}_{i}" / prefix.rstrip("/").rsplit("/", 1)[-1]
                for f in store.list_files():
                    try:
                        data = store.read(f.rel)
                    except FileStoreError:  # a blob the clone lacks (a large file): left out
                        print(f"  #{row['pr']}: {f.rel} is not in the clone, left out", file=sys.stderr)
                        continue
                    path = target / f.rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                target.mkdir(parents=True, exist_ok=True)
                every.append(target)
                if row["pr"] in chosen:
                    mutated.append(target)
    return every, mutated


# --- the report ----------------------------------------------------------------------------------

def table(cases: list[Case]) -> list[str]:
    kinds = list(dict.fromkeys(c.kind for c in cases))
    lines = [f"{'kind':<20}{'cases':>6}" + "".join(f"{p:>9}" for p in PROBLEMS) + f"{'exit 0/1/2':>12}{'cpu s':>8}"]
    for kind in [*kinds, "total"]:
        rows = cases if kind == "total" else [c for c in cases if c.kind == kind]
        counts = [sum(p in c.problems for c in rows) for p in PROBLEMS]
        exits = [sum(c.answer is not None and c.answer.code == e and not c.answer.timed_out for c in rows) for e in EXIT_CODES]
        cpu = sum(c.answer.cpu for c in rows if c.answer is not None)
        lines.append(f"{kind:<20}{len(rows):>6}" + "".join(f"{n:>9}" for n in counts)
                     + f"{'/'.join(map(str, exits)):>12}{cpu:>8.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--cases", type=int, default=2, help="cases of each kind per folder")
    parser.add_argument("--kinds", help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one audit may take")
    parser.add_argument("--repo", help="clone of openai/parameter-golf with the PR heads (with --labels)")
    parser.add_argument("--labels", type=Path, help="labeled PRs (JSONL): whose records folders to take")
    parser.add_argument("--prs", help="only these labeled PR numbers, comma-separated")
    parser.add_argument("--sample", type=int, default=15, help="without --prs: how many labeled PRs to break")
    parser.add_argument("--no-bundled", action="store_true", help="leave out the bundled fixtures")
    args = parser.parse_args(argv)
    if bool(args.repo) != bool(args.labels):
        parser.error("--repo and --labels go together")
    kinds = [k.strip() for k in (args.kinds or ",".join(KINDS)).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kind(s): {', '.join(unknown)}")

    start = time.perf_counter()
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="pgolf-fuzz-") as tmp:
        work = Path(tmp)
        originals = [] if args.no_bundled else bundled_folders()
        mutated = list(originals)
        if args.repo:
            every, chosen = pr_folders(args.repo, args.labels, [int(p) for p in args.prs.split(",")] if args.prs else None,
                                       args.sample, args.seed, work / "heads")
            originals += every
            mutated += chosen
        print(f"{len(originals)} folders audited as they are, {len(mutated)} broken in {len(kinds)} ways, "
              f"{args.cases} case(s) each; seed {args.seed}; euid {os.geteuid()}", flush=True)
        index = 0
        for folder in originals:
            case = Case(folder.name, "original", "as it is", fmt_for(index))
            before = snapshot(folder)
            judge(case, run_subprocess(folder, case.fmt, args.timeout))
            written = changes(before, snapshot(folder))
            if written:
                case.problems.append("written")
                case.detail += written[:5]
            cases.append(case)
            index += 1
        for folder in mutated:
            for kind in kinds:
                for n in range(args.cases):
                    rng = random.Random(f"{args.seed}/{folder.name}/{kind}/{n}")
                    cases.append(run_case(folder, kind, rng, work, index, run_subprocess, args.timeout))
                    index += 1
                    if cases[-1].problems:
                        print(f"  {kind} on {folder.name}: {', '.join(cases[-1].problems)}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - start

    print()
    print("\n".join(table(cases)))
    failed = [c for c in cases if c.problems]
    print()
    print(f"{len(cases)} audits, {len(failed)} with a problem; wall time {wall:.0f} s")
    for c in failed:
        print(f"- {c.kind} on {c.folder} ({c.what}; --format {c.fmt}): {', '.join(c.problems)}")
        for line in c.detail[:8]:
            print(f"    {line[:300]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

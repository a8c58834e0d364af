"""Bad input never produces a traceback: each case is a PG9xx finding or a one-line usage error.

Covers PG901 (syntax error, Python 2), PG902 (non-UTF-8, binary), PG903 (empty, too large),
PG904 (decompression bomb), PG905 (unreadable), and checks the audited folder is unchanged.
"""

from __future__ import annotations

import hashlib
import os

from auditor.engine import AuditOptions, audit
from auditor.report.json import JsonReporter

from .conftest import FIXTURES, run_cli


def _codes(path) -> list[str]:
    return sorted(f.code for f in audit([path]).findings)


def _one(tmp_path, name: str, data: bytes) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "train_gpt.py").write_bytes(data)
    return str(folder)


def test_syntax_error(tmp_path):
    report = audit([_one(tmp_path, "s", b"def f(:\n  pass\n")])
    (finding,) = report.findings
    assert finding.code == "PG901" and "does not parse" in finding.message


def test_python2(tmp_path):
    (finding,) = audit([_one(tmp_path, "p2", b"import sys\nprint 'hello', sys.argv\n")]).findings
    assert finding.code == "PG901" and "Python 2" in finding.message


def test_not_utf8(tmp_path):
    (finding,) = audit([_one(tmp_path, "latin", b"name = 'caf\xe9'\n")]).findings
    assert finding.code == "PG902" and "0xe9" in finding.message


def test_binary(tmp_path):
    (finding,) = audit([_one(tmp_path, "bin", os.urandom(64) + b"\x00\x00")]).findings
    assert finding.code == "PG902"


def test_empty(tmp_path):
    (finding,) = audit([_one(tmp_path, "empty", b"")]).findings
    assert finding.code == "PG903" and "empty" in finding.message


def test_twenty_megabytes(tmp_path):
    big = b"x = 1\n" * (20_000_000 // 6)
    (finding,) = audit([_one(tmp_path, "big", big)]).findings
    assert finding.code == "PG903" and "limit" in finding.message


def test_big_binary_log_is_read_without_crashing(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "train_seed1.log").write_bytes(b"\x00" + os.urandom(1 << 20))
    codes = _codes(folder)
    assert "PG902" in codes


def test_bomb():
    assert _codes(FIXTURES / "wrappers" / "bomb") == ["PG904"]


def test_missing_path_is_one_line_and_exit_2(tmp_path):
    result = run_cli("check", tmp_path / "does-not-exist")
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0 and "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_file_is_pg905(tmp_path):
    """A path that is not a regular file (a FIFO) cannot be read (PG905)."""
    fifo = tmp_path / "train_gpt.py"
    os.mkfifo(fifo)
    (finding,) = audit([fifo]).findings
    assert finding.code == "PG905" and "not a regular file" in finding.message


def test_file_that_vanishes_is_pg905(tmp_path, monkeypatch):
    from auditor import discover as discover_module

    folder = tmp_path / "gone"
    folder.mkdir()
    (folder / "train_gpt.py").write_text("x = 1\n")
    original = discover_module._read_python

    def vanish(bundle):
        (folder / "train_gpt.py").unlink()
        original(bundle)

    monkeypatch.setattr(discover_module, "_read_python", vanish)
    codes = [f.code for f in audit([folder]).findings]
    assert codes == ["PG905"]


def _tree_digest(root) -> dict[str, tuple[str, int]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = (hashlib.sha256(handle.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return out


def test_audited_folders_are_never_written(tmp_path):
    roots = [FIXTURES / "examples", FIXTURES / "wrappers"]
    before = [_tree_digest(r) for r in roots]
    for fmt in ("console", "json", "sarif", "markdown", "github"):
        run_cli("check", *roots, "-f", fmt, "-o", tmp_path / f"out.{fmt}")
    audit(roots, AuditOptions())
    assert [_tree_digest(r) for r in roots] == before


def test_file_names_that_are_not_utf8_keep_every_format_valid(tmp_path):
    import json

    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "train_gpt.py").write_text("x = 1\n")
    (tmp_path / "names").joinpath(os.fsdecode(b"caf\xe9.py")).write_bytes(b"y = 2\n")
    (tmp_path / "names").joinpath(os.fsdecode(b"train_\xff.log")).write_bytes(b"step:1/2 val_loss:2.0\n")
    for fmt in ("json", "sarif", "markdown", "github", "console"):
        out = tmp_path / f"out.{fmt}"
        result = run_cli("check", "--format", fmt, "-o", out, folder)
        assert result.code in (0, 1), result.stderr
        text = out.read_text(encoding="utf-8")  # strict: the file is valid UTF-8
        if fmt in ("json", "sarif"):
            json.loads(text)
    assert "caf\\\\xe9.py" in (tmp_path / "out.json").read_text()


def test_symbolic_links_are_reported_and_never_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2-secret-token\n")
    folder = tmp_path / "links"
    folder.mkdir()
    (folder / "train_gpt.py").write_text("x = 1\n")
    (folder / "README.md").symlink_to(secret)
    (folder / "train_seed1.log").symlink_to(secret)
    (folder / "outside").symlink_to(tmp_path)
    report = audit([folder])
    skipped = sorted(f.location.path.rsplit("/", 1)[-1] for f in report.findings if f.code == "PG905")
    assert skipped == ["README.md", "outside", "train_seed1.log"]
    assert report.submissions[0].verdict.value != "clean"
    assert "hunter2" not in JsonReporter().render(report)


def test_a_huge_log_is_read_up_to_a_cap(tmp_path):
    from auditor.files import MAX_LOG_BYTES

    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "train_gpt.py").write_text("x = 1\n")
    with open(folder / "train_seed1.log", "wb") as handle:  # sparse: no disk used, no newline
        handle.truncate(MAX_LOG_BYTES * 4)
    capped = [f for f in audit([folder]).findings if f.code == "PG905"]
    assert capped and f"only its first {MAX_LOG_BYTES:,} bytes are read" in capped[0].message


def test_a_folder_where_a_file_is_expected_is_pg905(tmp_path):
    """``train_gpt.py/`` or ``train_seed1.log/`` as a folder: reported, not descended into, not clean."""
    folder = tmp_path / "dirs"
    (folder / "train_gpt.py").mkdir(parents=True)
    (folder / "train_gpt.py" / "inner.py").write_text("import os\n")
    (folder / "train_seed1.log").mkdir()
    (folder / "submission.json").write_text('{"val_bpb": 1.2}\n')
    report = audit([folder])
    found = sorted((f.location.path.rsplit("/", 1)[-1], f.message.split(":")[0])
                   for f in report.findings if f.code == "PG905")
    assert found == [("train_gpt.py", "a folder where a file is expected"),
                     ("train_seed1.log", "a folder where a file is expected")]
    assert not any("inner.py" in f.location.path for f in report.findings)
    assert run_cli("check", "-q", folder).code == 2


DEEP = {
    "brackets": lambda n: "x = " + "(" * n + "1" + ")" * n + "\n",
    "lists": lambda n: "x = " + "[" * n + "]" * n + "\n",
    "calls": lambda n: "def f():\n    return " + "f(" * n + ")" * n + "\n",
    "unary": lambda n: "x = " + "-" * n + "1\n",
    "not": lambda n: "x = " + "not " * n + "1\n",
    "attributes": lambda n: "x = a" + ".b" * n + "\n",
    "sums": lambda n: "x = " + "+".join(["1"] * n) + "\n",
    "elif": lambda n: "if a:\n    pass\n" + "elif a:\n    pass\n" * n,
    "and": lambda n: "x = " + " and ".join(["a"] * n) + "\n",
    "and after a syntax error": lambda n: "x = = 1\ny = " + " or ".join(["a"] * n) + "\n",
}


def test_deep_nesting_is_pg901_not_a_crash(tmp_path):
    """libcst's native parser overflowed the stack (SIGSEGV, no report at all) on a few thousand
    nested brackets or operators; Python's parser refuses them, and so does the audit."""
    for name, make in DEEP.items():
        findings = audit([_one(tmp_path, name.replace(" ", "_"), make(50_000).encode())]).findings
        assert [f.code for f in findings] == ["PG901"], (name, findings)
        assert "line" in findings[0].message or "nested" in findings[0].message or "chain" in findings[0].message


def test_nesting_python_accepts_is_analysed(tmp_path):
    """Deeper than libcst takes on an 8 MB stack (brackets near 1,250, ``and`` near 6,800) but within
    what Python accepts: parsed (on the parser's own deep stack) and audited."""
    for name, text in {"and": DEEP["and"](4_000), "unary": DEEP["unary"](2_500), "brackets": DEEP["brackets"](150)}.items():
        assert audit([_one(tmp_path, name, text.encode())]).findings == [], name


def test_a_newline_or_escape_in_a_file_name_stays_on_its_line(tmp_path):
    """A name is the submitter's: ``train_gpt\\n::error …\\n.py`` must not print a line of its own
    (GitHub reads ``::command::`` lines of a job's output), nor an ESC colour the terminal."""
    folder = tmp_path / "2026-03-17_Names"
    folder.mkdir()
    (folder / "train_gpt\n::error file=a.py::pwned\n.py").write_text("def f(:\n")
    (folder / "x\x1b[31m.py").write_text("def g(:\n")
    for fmt in ("console", "markdown", "github"):
        result = run_cli("check", folder, "-f", fmt, "-q", "--color", "never") if fmt == "console" else \
            run_cli("check", folder, "-f", fmt, "-q")
        lines = result.stdout.splitlines()
        assert not any(line.startswith("::error file=a.py") for line in lines), fmt
        assert "\x1b" not in result.stdout, fmt
        assert "pwned" in result.stdout, fmt


def test_a_name_that_is_not_even_surrogate_escaped_utf8_has_a_fingerprint(tmp_path):
    """``\\xed\\xa0\\x80`` (an encoded surrogate) in a file name: the fingerprint hashed the
    message as strict UTF-8 and raised UnicodeEncodeError (found by benchmarks/fuzz.py)."""
    from auditor.findings import Location
    from auditor.problems import tool_finding

    finding = tool_finding("PG905", "x", Location(os.fsdecode(b"d/\xed\xa0\x80.md")))
    assert len(finding.fingerprint) == 32

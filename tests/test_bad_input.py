"""Bad input never produces a traceback: each case is a PG9xx finding or a one-line usage error.

Covers PG901 (syntax error, Python 2), PG902 (non-UTF-8, binary), PG903 (empty, too large),
PG904 (decompression bomb), PG905 (unreadable), and checks the audited folder is unchanged.
"""

from __future__ import annotations

import hashlib
import os

from auditor.engine import AuditOptions, audit

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

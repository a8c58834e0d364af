"""Detections rest on what the code computes: every invalid case of every static rule is still
reported after renaming its locals and parameters, after minifying it and after moving the
flagged function into a helper module, and no valid case gains an error when minified (the
rewrites of ``benchmarks/rewrites.py``, which the corpus benchmark ``benchmarks/metamorphic.py``
applies to real pull requests)."""

from __future__ import annotations

import pytest

from auditor import registry
from auditor.engine import AuditOptions, audit
from auditor.findings import Severity, Status
from benchmarks import rewrites

from ..conftest import FIXTURES, materialize

CASES = [
    pytest.param(rule, case, id=f"{rule.CODE}-invalid-{i}")
    for rule in registry.by_kind("static")
    for i, case in enumerate(rule.INVALID)
    if case.code is not None
]

VALID = [
    pytest.param(rule, case, id=f"{rule.CODE}-valid-{i}")
    for rule in registry.by_kind("static")
    for i, case in enumerate(rule.VALID)
    if case.code is not None
]


def _own(rule, folder, monkeypatch):
    monkeypatch.chdir(folder.parent)
    report = audit([folder.name], AuditOptions(select=[rule.CODE]))
    return [f for s in report.submissions for f in s.findings if f.code == rule.CODE]


def _rewrite(folder, rewrite) -> None:
    files = {p.name: p.read_text() for p in folder.glob("*.py")}
    for rel, text in rewrite(files).items():
        (folder / rel).write_text(text)


@pytest.mark.parametrize("rewrite", [rewrites.rename_locals, rewrites.minify], ids=["renaming", "minifying"])
@pytest.mark.parametrize(("rule", "case"), CASES)
def test_invalid_case_survives(rule, case, rewrite, tmp_path, monkeypatch):
    original = materialize(case, tmp_path / "original")
    severities = {f.severity for f in _own(rule, original, monkeypatch) if f.status is case.status}
    folder = materialize(case, tmp_path / "case")
    _rewrite(folder, lambda files: {rel: rewrites.on_payload(t, rewrite) for rel, t in files.items()})
    own = _own(rule, folder, monkeypatch)
    # the same finding, not only some finding: an error stays an error, a warning a warning
    assert {f.severity for f in own if f.status is case.status} >= severities, [(f.status.value, f.severity.value, f.message) for f in own]


@pytest.mark.parametrize(("rule", "case"), VALID)
def test_valid_case_gains_no_error_when_minified(rule, case, tmp_path, monkeypatch):
    def errors(folder):
        return [f for f in _own(rule, folder, monkeypatch) if f.status is Status.ACTIVE and f.severity is Severity.ERROR]

    before = errors(materialize(case, tmp_path / "original"))
    folder = materialize(case, tmp_path / "case")
    _rewrite(folder, lambda files: {rel: rewrites.on_payload(t, rewrites.minify) for rel, t in files.items()})
    after = errors(folder)
    assert len(after) <= len(before), [f.message for f in after]


@pytest.mark.parametrize(("rule", "case"), CASES)
def test_invalid_case_survives_renaming_its_settings(rule, case, tmp_path, monkeypatch):
    original = materialize(case, tmp_path / "original")
    severities = {f.severity for f in _own(rule, original, monkeypatch) if f.status is case.status}
    folder = materialize(case, tmp_path / "case")
    _rewrite(folder, rewrites.rename_settings)
    own = _own(rule, folder, monkeypatch)
    assert {f.severity for f in own if f.status is case.status} >= severities, [(f.status.value, f.severity.value, f.message) for f in own]


@pytest.mark.parametrize(("rule", "case"), CASES)
def test_invalid_case_survives_moving_the_function(rule, case, tmp_path, monkeypatch):
    folder = materialize(case, tmp_path / "case")
    before = _own(rule, folder, monkeypatch)
    flagged = {
        f.evidence.get("function", "").split(".")[0]
        for f in before
        if f.status is case.status and f.location.path.rsplit("/", 1)[-1] == "train_gpt.py"
    }
    flagged.discard("<module>")
    if not flagged:
        pytest.skip("the finding is at module level or already in a helper module: there is no function to move")
    files = {p.name: p.read_text() for p in folder.glob("*.py")}
    for i, name in enumerate(sorted(flagged)):
        moved = rewrites.move_function(files, "train_gpt.py", name, helper=f"aux_mod{i}")
        assert moved is not None, name
        files = moved
    for rel, text in files.items():
        (folder / rel).write_text(text)
    own = _own(rule, folder, monkeypatch)
    assert any(f.status is case.status for f in own), [(f.status.value, f.message) for f in own]


def test_wrapped_blend_is_found_in_its_payload(tmp_path, monkeypatch):
    """The one-ahead slice of a validation chunk, hashed with the previous token, inside an
    lzma wrapper and with every local renamed: found, located in the decoded payload."""
    text = (FIXTURES / "static" / "PG101" / "blend_answers_slot.py").read_text()
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(rewrites.wrap(rewrites.rename_locals(text)))
    monkeypatch.chdir(tmp_path)
    report = audit(["sub"], AuditOptions(select=["PG101"]))
    errors = [f for f in report.findings if f.code == "PG101" and f.severity.value == "error"]
    assert errors and all(f.location.decoded_from is not None for f in errors)


def test_rewrites_keep_the_ast():
    text = (FIXTURES / "static" / "PG101" / "blend_answers_slot.py").read_text()
    same = rewrites.effective_ast(text)
    for rewritten in (rewrites.minify(text), rewrites.expand(rewrites.minify(text)), rewrites.wrap(text),
                      rewrites.toggle_wrapper(rewrites.wrap(text))):
        compile(rewritten, "x.py", "exec")
        assert rewrites.effective_ast(rewritten) == same
    import ast

    names = {n.id for n in ast.walk(ast.parse(rewrites.rename_locals(text))) if isinstance(n, ast.Name)}
    assert not names & {"answers", "chunk", "ans", "prev"} and {"slot", "blend", "SIZE"} <= names


def test_settings_rename_follows_the_setting_and_leaves_libraries_alone():
    files = {
        "train_gpt.py": (
            "import os\n"
            "class Hyperparameters:\n"
            "    data_path = os.environ.get('DATA_PATH', './data')\n"
            "    val_files = os.path.join(data_path, 'fineweb_val_*.bin')\n"
            "    seed = 1337\n"
            "args = Hyperparameters()\n"
            "print(f'val_files:{args.val_files} seed:{args.seed}', os.path.sep)\n"
        ),
        "train.log": "val_files:./data/fineweb_val_*.bin seed:1337\nthe seed of the run\n",
    }
    out = rewrites.rename_settings(files)
    code = out["train_gpt.py"]
    assert "val_files" not in code.replace("val_files:", "") and "data_path" not in code and "os.path.join" in code
    assert "os.path.sep" in code and "fineweb_val_*.bin" in code
    log = out["train.log"]
    assert "val_files" not in log and "seed:" not in log and "the seed of the run" in log

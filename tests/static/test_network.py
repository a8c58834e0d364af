"""PG109: a download that runs only when the data files are missing is data preparation (a
warning); one that runs whatever is on disk is an error."""

from __future__ import annotations

from auditor.engine import AuditOptions, audit
from auditor.findings import Severity

PREPARE = """
import os
def ensure_data(root):
    shard = os.path.join(root, "fineweb_train_000000.bin")
    if os.path.exists(shard):
        return
    print("downloading shards")
    from huggingface_hub import snapshot_download
    snapshot_download(repo_id="someone/fineweb_sp1024", repo_type="dataset", local_dir=root)
ensure_data("./data")
"""

ALWAYS = """
import os
def fetch(root):
    from huggingface_hub import hf_hub_download
    return hf_hub_download("someone/extra-weights", "model.pt", local_dir=root)
fetch("./data")
"""


def _severities(tmp_path, monkeypatch, code: str) -> list[Severity]:
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    report = audit(["case"], AuditOptions(select=["PG109"]))
    return [f.severity for s in report.submissions for f in s.findings]


def test_a_download_after_an_early_return_on_the_files_being_there_is_a_warning(tmp_path, monkeypatch):
    assert _severities(tmp_path, monkeypatch, PREPARE) == [Severity.WARNING]


def test_an_unconditional_download_is_an_error(tmp_path, monkeypatch):
    assert _severities(tmp_path, monkeypatch, ALWAYS) == [Severity.ERROR]

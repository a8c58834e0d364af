"""PG109: a download that runs only when the data files are missing is data preparation, and one
that runs only when a module cannot be imported is package setup (warnings); one that runs
whatever is on disk and installed is an error."""

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


SETUP_AFTER_TRY = """
import importlib, subprocess, sys
def ensure_kernels():
    try:
        importlib.import_module("fast_kernels._C")
        return True
    except (ImportError, ModuleNotFoundError):
        print("kernels missing, installing")
    subprocess.check_call(["curl", "-sS", "https://example.com/get-pip.py", "-o", "get-pip.py"])
    subprocess.check_call([sys.executable, "get-pip.py"])
    return False
ensure_kernels()
"""

SETUP_IN_HANDLER = """
import urllib.request
def load_codec():
    try:
        import fastcodec
    except ImportError:
        urllib.request.urlretrieve("https://example.com/fastcodec.whl", "fastcodec.whl")
        fastcodec = None
    return fastcodec
load_codec()
"""

AFTER_A_TRY_THAT_GOES_ON = """
import importlib, subprocess
def fetch_weights():
    try:
        importlib.import_module("fast_kernels._C")
    except ImportError:
        print("no kernels")
    subprocess.check_call(["curl", "-sS", "https://example.com/w.pt", "-o", "w.pt"])
fetch_weights()
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


def test_a_download_after_a_try_that_returns_once_the_import_succeeds_is_a_warning(tmp_path, monkeypatch):
    assert _severities(tmp_path, monkeypatch, SETUP_AFTER_TRY) == [Severity.WARNING]


def test_a_download_in_an_import_error_handler_is_a_warning(tmp_path, monkeypatch):
    assert _severities(tmp_path, monkeypatch, SETUP_IN_HANDLER) == [Severity.WARNING]


def test_a_download_after_a_try_that_goes_on_either_way_is_an_error(tmp_path, monkeypatch):
    # the import's outcome does not decide whether the download runs
    assert _severities(tmp_path, monkeypatch, AFTER_A_TRY_THAT_GOES_ON) == [Severity.ERROR]

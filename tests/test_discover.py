"""Discovery: which files make a submission, which code is part of it, how paths are shown."""

from __future__ import annotations

import pytest

from auditor.bundle import FileKind
from auditor.discover import discover
from auditor.errors import UsageError
from auditor.source import Role


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_records_folder(in_tmp):
    _write(in_tmp / "rec", {
        "train_gpt.py": "import ngram_tilt\nprint(1)\n",
        "ngram_tilt.py": "X = 'kernels/fused.cpp'\n",
        "kernels/fused.cpp": "int f() { return 1; }\n",
        "prepare_data.py": "print('prep')\n",
        "unused.cu": "__global__ void k() {}\n",
        "submission.json": "{}",
        "train_seed42.log": "seed:42\n",
        "logs/run.txt": "x\n",
        "README.md": "# r\n",
        "requirements.txt": "brotli\n",
    })
    (bundle,) = discover(["rec"])
    assert bundle.path == "rec"
    assert bundle.main_script.rel == "train_gpt.py"
    kinds = {f.rel: f.kind for f in bundle.files}
    assert kinds["kernels/fused.cpp"] is FileKind.NATIVE
    assert kinds["logs/run.txt"] is FileKind.LOG and kinds["train_seed42.log"] is FileKind.LOG
    assert kinds["submission.json"] is FileKind.SUBMISSION_JSON
    assert kinds["requirements.txt"] is FileKind.REQUIREMENTS and kinds["README.md"] is FileKind.README
    referenced = {f.rel for f in bundle.code_files}
    assert referenced == {"train_gpt.py", "ngram_tilt.py", "kernels/fused.cpp"}
    roles = {s.path: s.role for s in bundle.sources}
    assert roles == {"rec/train_gpt.py": Role.MAIN, "rec/ngram_tilt.py": Role.MODULE, "rec/prepare_data.py": Role.AUXILIARY}


def test_exec_shim_links_the_decoded_module(in_tmp):
    _write(in_tmp / "rec", {
        "train_gpt.py": 'exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())\n',
        "train_gpt_decode.py": "print('real code')\n",
    })
    (bundle,) = discover(["rec"])
    assert {f.rel for f in bundle.code_files} == {"train_gpt.py", "train_gpt_decode.py"}


def test_wrapper_payload_is_a_source_of_the_main_script(in_tmp, tmp_path):
    import base64
    import zlib

    blob = base64.b64encode(zlib.compress(b"import helper\n")).decode()
    _write(in_tmp / "rec", {
        "train_gpt.py": f"import zlib, base64\nexec(zlib.decompress(base64.b64decode({blob!r})))\n",
        "helper.py": "Y = 2\n",
    })
    (bundle,) = discover(["rec"])
    decoded = [s for s in bundle.sources if s.is_decoded]
    assert len(decoded) == 1 and decoded[0].role is Role.MAIN
    assert bundle.main_source is decoded[0]
    assert bundle.file("helper.py").referenced  # imported by the decoded payload


def test_track_folder_holds_many_submissions(in_tmp):
    _write(in_tmp / "records" / "track_10min_16mb", {
        "2026-03-17_A/train_gpt.py": "x = 1\n",
        "2026-03-18_B/submission.json": "{}",
        "2026-03-18_B/train.log": "x\n",
    })
    bundles = discover(["records"])
    assert [b.path for b in bundles] == ["records/track_10min_16mb/2026-03-17_A", "records/track_10min_16mb/2026-03-18_B"]


def test_single_file_and_several_files(in_tmp):
    _write(in_tmp / "rec", {"train_gpt.py": "x = 1\n", "train_seed1.log": "a\n", "other.py": "y = 2\n"})
    (single,) = discover(["rec/train_gpt.py"])
    assert single.single_file and single.path == "rec/train_gpt.py"
    assert [f.rel for f in single.files] == ["train_gpt.py"]
    (pair,) = discover(["rec/train_gpt.py", "rec/train_seed1.log"])
    assert not pair.single_file and sorted(f.rel for f in pair.files) == ["train_gpt.py", "train_seed1.log"]


def test_missing_path_is_a_usage_error(in_tmp):
    with pytest.raises(UsageError, match="no such file"):
        discover(["nope"])


def test_main_script_choice(in_tmp):
    _write(in_tmp / "a", {"train_gpt_v2.py": "x=1\n", "train_gpt.py": "x=2\n", "submission.json": "{}"})
    _write(in_tmp / "b", {"train_gpt_v2.py": "x=1\n", "submission.json": "{}"})
    _write(in_tmp / "c", {"model.py": "x=1\n", "submission.json": "{}"})
    a, = discover(["a"])
    b, = discover(["b"])
    c, = discover(["c"])
    assert a.main_script.rel == "train_gpt.py"
    assert b.main_script.rel == "train_gpt_v2.py"
    assert c.main_script.rel == "model.py"


def test_relative_imports_and_packages_are_linked(in_tmp):
    _write(in_tmp / "rec", {
        "train_gpt.py": "from pkg.train import main\nmain()\n",
        "pkg/__init__.py": "",
        "pkg/train.py": "from .model import GPT\nfrom . import util\n",
        "pkg/model.py": "GPT = 1\n",
        "pkg/util.py": "X = 1\n",
        "pkg/unused.py": "Y = 1\n",
        "submission.json": "{}",
    })
    (bundle,) = discover(["rec"])
    assert {f.rel for f in bundle.code_files} == {
        "train_gpt.py", "pkg/__init__.py", "pkg/train.py", "pkg/model.py", "pkg/util.py",
    }


def test_imports_anywhere_in_the_code_link_their_modules(in_tmp):
    # optional imports in try blocks, lazy imports in functions, imports by a string, and a
    # module in a folder the script puts on sys.path all make the helper part of the code
    _write(in_tmp / "rec", {
        "train_gpt.py": (
            "import sys, os, importlib\n"
            "sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'lib'))\n"
            "try:\n    from fast_ngram import tilt\nexcept ImportError:\n    tilt = None\n"
            "def kernels():\n    import fused_ops\n    return importlib.import_module('dyn_helper')\n"
            "def late():\n    return __import__('other_helper')\n"
            "import in_lib\n"
        ),
        "fast_ngram.py": "X = 1\n",
        "fused_ops.py": "X = 1\n",
        "dyn_helper.py": "X = 1\n",
        "other_helper.py": "X = 1\n",
        "lib/in_lib.py": "X = 1\n",
        "tools/unused.py": "X = 1\n",
        "submission.json": "{}",
    })
    (bundle,) = discover(["rec"])
    assert {f.rel for f in bundle.code_files} == {
        "train_gpt.py", "fast_ngram.py", "fused_ops.py", "dyn_helper.py", "other_helper.py", "lib/in_lib.py",
    }


def test_an_ambiguous_or_standard_module_name_links_nothing(in_tmp):
    _write(in_tmp / "rec", {
        "train_gpt.py": "import helper\nimport json\n",
        "a/helper.py": "X = 1\n",
        "b/helper.py": "X = 1\n",
        "c/json.py": "X = 1\n",
        "submission.json": "{}",
    })
    (bundle,) = discover(["rec"])
    assert {f.rel for f in bundle.code_files} == {"train_gpt.py"}

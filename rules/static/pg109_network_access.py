"""PG109 network-access."""

from __future__ import annotations

import re
from collections.abc import Iterable

import libcst as cst

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity, Status
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule
from auditor.static.index import walk
from auditor.static.names import callee_name, dotted

#: Calls that reach the network (prefix match on the qualified name).
NETWORK_CALLS = (
    "urllib.request.urlopen",
    "urllib.request.urlretrieve",
    "urllib.urlopen",
    "requests.",
    "httpx.",
    "aiohttp.",
    "http.client.",
    "socket.socket",
    "socket.create_connection",
    "huggingface_hub.",
    "datasets.load_dataset",
    "torch.hub.",
    "wget.download",
    "ftplib.",
    "smtplib.",
)
#: Command-line programs that download when run through subprocess or os.system.
NETWORK_PROGRAMS = ("curl", "wget", "git clone", "huggingface-cli", "aws s3", "gsutil", "rsync", "scp")
SHELL_CALLS = ("subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
               "subprocess.check_output", "os.system", "os.popen")


class NetworkAccess(StaticRule):
    """
    ## What it does
    Finds calls that reach the network: HTTP clients (`urllib`, `requests`, `httpx`),
    sockets, model and dataset hubs (`huggingface_hub`, `datasets.load_dataset`,
    `torch.hub`), and shell commands that download (`curl`, `wget`, `git clone`) run through
    `subprocess` or `os.system`.

    ## Why is this bad?
    The artifact must be self-contained: "No external downloads, training dataset access, or
    network calls are allowed during evaluation." A download at eval time can bring in
    weights, statistics or the validation text itself, none of it paid for in the 16 MB.

    ## Example
    ```python
    from huggingface_hub import hf_hub_download
    weights = hf_hub_download("someone/extra-weights", "model.pt")
    ```

    ## Use instead
    Put everything the evaluation needs into the artifact (code + compressed model, at most
    16,000,000 bytes). Data preparation that downloads the challenge's own shards belongs in
    a separate script that is not run at evaluation time.

    A download that runs only when a file is missing (`if not os.path.exists(shard):`, the
    rest of a function after `if os.path.exists(cache): return`) is data preparation: a
    warning, since with the data in place it never runs. A package installed at run time
    (`subprocess.check_call([sys.executable, "-m", "pip", "install", ...])`) is a warning too,
    as is any network access that runs only when a module cannot be imported (in an `except
    ImportError` handler, or after a `try` that returns once the import succeeds): package
    setup, which never runs where the package is installed.

    ## Known problems
    Apart from the file-missing guard, the check does not tell the evaluation path from
    data preparation done before training; a download in a helper of the main script that
    only prepares the dataset is reported too, with this rule's medium confidence. Scripts
    of the folder that the main script never uses are not checked, and a download switched
    off by its environment defaults is reported `inactive`.

    ## References
    - README, "Restrictions on evaluation": no external downloads or network calls.
    """

    CODE = "PG109"
    NAME = "network-access"
    SEVERITY = Severity.ERROR
    CONFIDENCE = Confidence.MEDIUM
    SOURCES = ("README",)
    TAGS = ("network",)
    VALID = (
        Valid(code="import os\npath = os.path.join('data', 'fineweb_val_000000.bin')\n"),
        Valid(code="import subprocess\nsubprocess.run(['pip', 'list'])\n", note="pip, but no install"),
        Valid(code="import subprocess\nsubprocess.run(['lrzip', '-d', 'model.lrz'])\n", note="a local binary"),
    )
    INVALID = (
        Invalid(code="import urllib.request as ur\nblob = ur.urlopen('https://example.com/x').read()\n", lines=(2,)),
        Invalid(code="import subprocess, sys\nsubprocess.check_call([sys.executable, '-m', 'pip', 'install', 'brotli'])\n",
                lines=(2,), note="a package fetched from the index at run time"),
        Invalid(
            code=(
                "import os\n"
                "def ensure_data(root):\n"
                "    shard = os.path.join(root, 'fineweb_train_000000.bin')\n"
                "    if not os.path.exists(shard):\n"
                "        from huggingface_hub import snapshot_download\n"
                "        snapshot_download(repo_id='someone/fineweb_sp1024', repo_type='dataset', local_dir=root)\n"
                "ensure_data('./data')\n"
            ),
            lines=(6,),
            note="a download only when the shards are missing: data preparation, a warning",
        ),
        Invalid(
            code=(
                "import importlib, subprocess, sys\n"
                "def ensure_kernels():\n"
                "    try:\n"
                "        importlib.import_module('fast_kernels._C')\n"
                "        return True\n"
                "    except ImportError:\n"
                "        print('installing kernels')\n"
                "    subprocess.check_call(['curl', '-sS', 'https://example.com/get-pip.py', '-o', 'get-pip.py'])\n"
                "    return False\n"
                "ensure_kernels()\n"
            ),
            lines=(8,),
            note="a download only when a module cannot be imported: package setup, a warning",
        ),
        Invalid(code="from huggingface_hub import hf_hub_download as get\nw = get('a/b', 'c.pt')\n", lines=(2,)),
        Invalid(code="import subprocess\nsubprocess.run('curl -O https://x/y.bin', shell=True)\n", lines=(2,)),
        Invalid(
            code=(
                "import os, urllib.request\n"
                "if int(os.environ.get('FETCH_EXTRA', '0')):\n"
                "    urllib.request.urlretrieve('https://x/extra.bin', 'extra.bin')\n"
            ),
            lines=(3,),
            status=Status.INACTIVE,
        ),
    )

    def check(self, evidence: Evidence, source: PythonSource) -> Iterable[Finding]:
        index = self.index(source)
        for scope in index.scopes:
            for call in scope.calls:
                name = call.qualified
                if not name:
                    continue
                what = None
                if any(name == p or (p.endswith(".") and name.startswith(p)) for p in NETWORK_CALLS):
                    what = name
                elif name in SHELL_CALLS:
                    text = index.code(call.node, 400)
                    for program in NETWORK_PROGRAMS:
                        if f"'{program}" in text or f'"{program}' in text:
                            what = program
                            break
                    else:
                        if _installs(call.node):
                            what = "pip install"
                if what is None:
                    continue
                setup = _setup(index, call.stmt, what)
                if setup is not None:  # runs only to prepare what a prepared machine has: a warning
                    message, runs_when, confidence = setup
                    yield self.report(source, call.node, call.stmt, message,
                                      evidence={"call": name, "reaches": what} | runs_when,
                                      key=name, severity=Severity.WARNING, confidence=confidence)
                    continue
                yield self.report(
                    source,
                    call.node,
                    call.stmt,
                    f"network access through {what}: the evaluation must not download anything",
                    evidence={"call": name, "reaches": what},
                    key=name,
                )


#: Calls that test whether a file is there.
_PRESENCE = frozenset({"exists", "isfile", "isdir", "glob", "is_file", "is_dir"})


def _installs(call: cst.Call) -> bool:
    """``subprocess.check_call([sys.executable, "-m", "pip", "install", "brotli"])``: a package
    fetched from the package index at run time."""
    words = [n.evaluated_value for n in walk(call) if isinstance(n, cst.SimpleString)]
    text = " ".join(w for w in words if isinstance(w, str))
    return bool(re.search(r"\bpip3?\b(\s+-\S+)*\s+install\b", text))


def _only_when_missing(index, stmt) -> str:
    """The file whose absence the statement's guards require (``if not os.path.exists(p):``,
    ``if not exists(a) or not glob(b):``, the rest of a function after ``if
    os.path.exists(cache): return``), else ""."""
    for guard in stmt.guards:
        missing = _missing(index, guard.test, guard.polarity)
        if missing:
            return missing
    return ""


def _setup(index, stmt, what: str) -> tuple[str, dict[str, str], Confidence] | None:
    """(message, evidence, confidence) when the network access only sets up the machine: a
    download behind a file-missing guard (data preparation), one behind a failed import or any
    ``pip install`` (package setup); None when it runs whatever is on disk and installed."""
    missing = _only_when_missing(index, stmt)
    unimportable = "" if missing else _only_when_import_fails(index, stmt)
    if unimportable:
        return (f"network access through {what}, only when `{unimportable}` cannot be imported: package setup, "
                "which must not run at evaluation (the environment must have the package installed)",
                {"runs_when_import_fails": unimportable}, Confidence.MEDIUM)
    if what == "pip install" and not missing:
        return ("a package is installed from the network at run time (pip install); the evaluation "
                "environment has its packages installed, and a run must not reach the network", {}, Confidence.MEDIUM)
    if missing:
        return (f"network access through {what}, only when {missing} is missing: data preparation, "
                "which must not run at evaluation (the files must be in place)",
                {"runs_when_missing": missing}, Confidence.LOW)
    return None


_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


def _only_when_import_fails(index, stmt) -> str:
    """The module whose failed import the statement's running requires, else "": it sits in an
    ``except ImportError`` handler of a ``try`` that imports the module, or follows (in its
    function's body) such a ``try`` whose body returns once the import succeeds (``try:
    import_module(m); return True`` / ``except ImportError: print(...)``, then the install)."""
    func = stmt.scope.node
    if not isinstance(func, cst.FunctionDef) or not isinstance(func.body, cst.IndentedBlock):
        return ""
    target = stmt.node
    failed = ""
    for item in func.body.body:
        inside = any(n is target for n in walk(item))
        if isinstance(item, cst.Try):
            module = _imported(index, item.body)
            catching = [h for h in item.handlers if _catches_import_error(h)]
            if module and catching:
                if inside and any(n is target for h in catching for n in walk(h)):
                    return module
                if not inside and _returns(item.body) and not any(_returns(h.body) for h in catching):
                    failed = failed or module
        if inside:
            return failed
    return ""


def _catches_import_error(handler: cst.ExceptHandler) -> bool:
    kinds = handler.type
    names = [e.value for e in kinds.elements] if isinstance(kinds, cst.Tuple) else [kinds] if kinds is not None else []
    return any((dotted(n) or "").rsplit(".", 1)[-1] in _IMPORT_ERRORS for n in names)


def _imported(index, block: cst.BaseSuite) -> str:
    """The module a block imports (an import statement or ``import_module``/``__import__``), else ""."""
    for node in walk(block):
        if isinstance(node, cst.Import) and node.names:
            return dotted(node.names[0].name) or ""
        if isinstance(node, cst.ImportFrom) and node.module is not None:
            return dotted(node.module) or ""
        if callee_name(node) in ("import_module", "__import__") and node.args:
            value = node.args[0].value
            return value.evaluated_value if isinstance(value, cst.SimpleString) and isinstance(value.evaluated_value, str) else index.code(value, 60)
    return ""


def _returns(block: cst.BaseSuite) -> bool:
    """The block ends with a ``return``."""
    last = block.body[-1] if block.body else None
    if isinstance(last, cst.SimpleStatementLine):
        return any(isinstance(s, cst.Return) for s in last.body)
    return isinstance(last, cst.Return)


def _missing(index, test: cst.BaseExpression, holds: bool) -> str:
    """The file whose absence ``test`` (required to be ``holds``) implies, else ""."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _missing(index, test.expression, not holds)
    if isinstance(test, cst.BooleanOperation):
        parts = [test.left, test.right]
        # ``a or b`` holding (or ``a and b`` failing) needs every part to imply an absence;
        # ``a and b`` holding (or ``a or b`` failing) needs one
        every = isinstance(test.operator, cst.Or) == holds
        found = [_missing(index, part, holds) for part in parts]
        return (found[0] if all(found) else "") if every else next((f for f in found if f), "")
    if isinstance(test, cst.Call) and not holds:
        if callee_name(test) in _PRESENCE:
            return index.code(test.args[0].value if test.args else test, 80)
    return ""

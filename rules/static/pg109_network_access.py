"""PG109 network-access."""

from __future__ import annotations

from collections.abc import Iterable

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Severity, Status
from auditor.rule import Invalid, Valid
from auditor.source import PythonSource
from auditor.static.base import StaticRule

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

    ## Known problems
    The check does not tell the evaluation path from data preparation done before training;
    a download in a helper of the main script that only prepares the dataset is reported
    too, with this rule's medium confidence. Scripts of the folder that the main script
    never uses are not checked, and a download switched off by its environment defaults is
    reported `inactive`.

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
        Valid(code="import subprocess\nsubprocess.run(['lrzip', '-d', 'model.lrz'])\n", note="a local binary"),
    )
    INVALID = (
        Invalid(code="import urllib.request as ur\nblob = ur.urlopen('https://example.com/x').read()\n", lines=(2,)),
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
                if what is None:
                    continue
                yield self.report(
                    source,
                    call.node,
                    call.stmt,
                    f"network access through {what}: the evaluation must not download anything",
                    evidence={"call": name, "reaches": what},
                    key=name,
                )

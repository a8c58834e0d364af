"""PG308 records-folder-format."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Sequence

from auditor.evidence import Evidence
from auditor.findings import Confidence, Finding, Location, Severity
from auditor.records import samples as S
from auditor.records.analysis import FOLDER_NAME, TRACKS, records_relative
from auditor.rule import BundleRule, Invalid, Valid
from auditor.source import Role

#: Packages of the evaluation environment (the repository's requirements.txt) and their
#: import names; anything else a script imports should be listed in requirements.txt.
ENVIRONMENT = frozenset(
    {"numpy", "tqdm", "torch", "huggingface_hub", "kernels", "setuptools", "typing_extensions", "datasets",
     "tiktoken", "sentencepiece", "triton", "pkg_resources", "_distutils_hack",
     # FlashAttention is installed on the evaluation machines outside pip (accepted records import
     # it without a requirements.txt; #1855's says "must be installed separately")
     "flash_attn", "flash_attn_interface", "flash_attn_3"}
)


def third_party_imports(tree: ast.Module, local: set[str]) -> dict[str, int]:
    """Modules imported at the top level of a script (outside ``try`` blocks, which usually
    hold optional fallbacks) that are neither stdlib, the environment's packages nor files of
    the folder: ``{name: first line}``."""
    found: dict[str, int] = {}
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.If, ast.With)):
            pending.extend(node.body)
            pending.extend(getattr(node, "orelse", []))
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ENVIRONMENT or top in local or top == "__future__":
                continue
            found.setdefault(top, node.lineno)
    return found


class RecordsFolderFormat(BundleRule):
    """
    ## What it does
    Checks the shape of a records submission: a folder named `YYYY-MM-DD_description`
    directly under `records/track_10min_16mb` or `records/track_non_record_16mb`, holding
    `README.md`, `submission.json`, at least one training log and `train_gpt.py`, plus a
    `requirements.txt` when the script imports packages the evaluation environment does not
    have. In a pull request (`pgolf-audit pr`), it also checks that the PR adds one folder.

    ## Why is this bad?
    The README asks for a PR that "only adds a new folder to the appropriate /records
    subfolder" with these files. Maintainers called folders without submission.json or logs
    "not leaderboard-ready" (#561) and asked for "a single clean submission folder" (#1143);
    a misnamed folder was renamed before merging (R-FOLDER-NAME).

    ## Example
    `records/my_run/train_gpt.py` with no README.md, submission.json or log.

    ## Use instead
    `records/track_10min_16mb/2026-04-27_ShortDescription/` with README.md,
    submission.json, `train_seed*.log`, `train_gpt.py` and `requirements.txt`.

    ## References
    - README, "Submission Process".
    - R-SUBMIT-FILES, R-FOLDER-NAME, R-TRACKS; PR #561, #1143.
    """

    CODE = "PG308"
    NAME = "records-folder-format"
    SEVERITY = Severity.WARNING
    CONFIDENCE = Confidence.HIGH
    SOURCES = ("README", "R-SUBMIT-FILES", "R-FOLDER-NAME", "R-TRACKS", "#561")
    TAGS = ("format",)
    VALID = (
        Valid(files={"data/README.md": "shards go here\n"}
              | {f"records/track_10min_16mb/2026-04-01_Sample/{k}": v
                 for k, v in S.folder({"train_seed42.log": S.baseline_log(42)}, {"val_bpb": 1.2247}).items()},
              note="a checkout of the challenge (data/ beside records/)"),
    )
    INVALID = (
        Invalid(files={"data/README.md": "shards go here\n"}
                | {f"records/my_run/{k}": v
                   for k, v in S.folder({"train_seed42.log": S.baseline_log(42)}, {"val_bpb": 1.2247}).items()},
                note="no track folder, no date in the name"),
        Invalid(files={"data/README.md": "shards go here\n"}
                | {f"records/track_10min_16mb/2026-04-01_Sample/{k}": v for k, v in S.folder(
                    {"train_seed1.log": S.baseline_log(1)}, {"val_bpb": 1.2247, "track": "non-record-16mb"}).items()},
                note="declared non-record, filed under the record track"),
        Invalid(files={"records/track_10min_16mb/my_run/train_gpt.py": S.SCRIPT,
                       "records/track_10min_16mb/my_run/train.log": S.baseline_log(1)}),
        Invalid(files=S.folder({"train_seed42.log": S.baseline_log(42)}, {"val_bpb": 1.2247},
                               script=S.SCRIPT + "import zstandard\n")),
    )

    def check(self, evidence: Evidence) -> Iterable[Finding]:
        bundle = evidence.bundle
        if bundle.single_file:
            return
        root = Location(bundle.path)
        rel = records_relative(bundle)
        if rel is not None:
            below = rel[1:]
            name = below[-1] if below else ""
            if len(below) != 2 or below[0] not in TRACKS:
                yield self.finding(
                    f"the folder is records/{'/'.join(below)}: a submission belongs directly under "
                    "records/track_10min_16mb or records/track_non_record_16mb",
                    root, evidence={"path": "/".join(rel), "tracks": list(TRACKS)}, key="track",
                )
            if len(below) == 2 and below[0] == "track_10min_16mb" and evidence.records.track == "track_non_record_16mb":
                yield self.finding(
                    "submission.json declares a non-record submission, but the folder is under "
                    "records/track_10min_16mb: it belongs in records/track_non_record_16mb (the "
                    "record track's budgets are not applied to it)",
                    root, evidence={"path": "/".join(rel), "declared": evidence.records.track_source}, key="track",
                )
            if name and not FOLDER_NAME.match(name):
                yield self.finding(
                    f"the folder name '{name}' does not follow YYYY-MM-DD_description", root,
                    evidence={"name": name}, key="name",
                )
        top = {f.rel for f in bundle.files if "/" not in f.rel}
        lower = {r.lower() for r in top}
        missing = []
        if "readme.md" not in lower:
            missing.append("README.md")
        if not bundle.submission_jsons:
            missing.append("submission.json")
        if not bundle.logs:
            missing.append("a training log")
        if "train_gpt.py" not in top:
            missing.append("train_gpt.py")
        # a folder of code alone, outside records/, is a script being checked, not a submission
        is_submission = rel is not None or bundle.pr is not None or bool(bundle.logs or bundle.submission_jsons)
        if missing and is_submission:
            yield self.finding(
                f"the folder lacks {', '.join(missing)}", root, evidence={"missing": missing, "files": sorted(top)},
                key="files",
            )
        if bundle.requirements is None:
            local = {f.rel.rsplit("/", 1)[-1].removesuffix(".py") for f in bundle.files if f.rel.endswith(".py")}
            local |= {f.rel.split("/", 1)[0] for f in bundle.files if "/" in f.rel}
            for source in bundle.sources:
                if source.role is Role.AUXILIARY:
                    continue
                tree = source.ast_tree
                if tree is None:
                    continue
                imports = third_party_imports(tree, local)
                if imports:
                    names = ", ".join(sorted(imports))
                    yield self.finding(
                        f"the code imports {names}, which the evaluation environment does not install, and there is "
                        "no requirements.txt",
                        Location(source.path, min(imports.values()), decoded_from=source.origin),
                        evidence={"imports": imports}, key=f"requirements:{source.path}",
                    )
                    break
        one_folder = self.one_folder_per_pull_request(bundle.path, bundle.pr_folders)
        if one_folder is not None:
            yield one_folder

    @classmethod
    def one_folder_per_pull_request(cls, folder: str, pr_folders: Sequence[str]) -> Finding | None:
        """The pull-request part of the check, on its own: ``folder`` came in a PR that adds
        ``pr_folders``. (``triage`` applies it to folder audits it caches, which do not depend on
        the PR a folder came in.)"""
        if len(pr_folders) <= 1:
            return None
        return cls.finding(
            f"the pull request adds {len(pr_folders)} folders; a submission PR adds one",
            Location(folder), evidence={"folders": list(pr_folders)}, key="one-folder",
        )

"""``pgolf-audit pr N --repo DIR``: audit what a pull request adds, read from a clone.

The clone (bare or not) must hold the PR's head (``refs/pull/N/head``, or a remote-tracking
copy such as ``refs/remotes/origin/pr/N``). The records folders the PR adds relative to the
commit it branched from are read at the head commit straight from git — nothing is checked
out — and every report names that commit.
"""

from __future__ import annotations

import argparse

from auditor.bundle import Bundle
from auditor.commands.check import add_audit_arguments, add_output_arguments, emit, options_from
from auditor.commands.progress import audit_with_progress
from auditor.discover import build_bundle
from auditor.engine import AuditOptions
from auditor.errors import UsageError
from auditor.gitrepo import GitRepo, GitTreeStore
from auditor.pulls import PullFolders, PullIndex, main_ref, pull_heads
from auditor.records.analysis import analyse
from auditor.results import Report

NAME = "pr"
HELP = "audit the records folders a pull request adds (read from a clone at the PR's head commit)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("numbers", nargs="+", type=int, metavar="N", help="pull request number(s)")
    add_repo_arguments(parser)
    add_audit_arguments(parser)
    add_output_arguments(parser)


def add_repo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=".", metavar="DIR", help="clone of openai/parameter-golf with the PR heads")
    parser.add_argument("--base", metavar="REF", help="the main branch to diff against (default: main, then origin/main)")
    parser.add_argument(
        "--baseline-pr", type=int, metavar="N",
        help="significance (PG309) against the per-seed scores in the logs of PR N (the previous record)",
    )


def apply_baseline_pr(args: argparse.Namespace, options: AuditOptions, repo: GitRepo, index: PullIndex,
                      heads: dict[int, str]) -> None:
    """Put the per-seed scores of ``--baseline-pr`` into the significance context."""
    number = getattr(args, "baseline_pr", None)
    if number is None:
        return
    head = heads.get(number)
    if head is None:
        raise UsageError("--baseline-pr: " + missing_head(number, repo))
    found = index.folders_of(number, head)
    scores = [r.score.bpb for b in pull_bundles(repo, found) for r in analyse(b).rows if r.score is not None and r.evidence]
    if not scores:
        raise UsageError(f"--baseline-pr {number}: no per-seed score in its logs ({found.problem or 'no scored log'})")
    significance = dict(options.significance)
    significance.update(baseline=scores, baseline_value=None, source=f"the logs of PR #{number} at {head[:12]}")
    options.significance = significance


def pull_bundles(repo: GitRepo, found: PullFolders) -> list[Bundle]:
    """One bundle per records folder a PR adds, read at its head commit."""
    bundles = []
    assert found.head is not None
    for folder in found.folders:
        bundle = build_bundle(GitTreeStore(repo, found.head, folder.path, entries=folder.entries))
        bundle.head_sha, bundle.pr = found.head, found.number
        bundle.pr_folders = tuple(f.path for f in found.folders)
        bundles.append(bundle)
    return bundles


def missing_head(number: int, repo: GitRepo) -> str:
    return (
        f"PR #{number}: no head ref in {repo.path} (refs/pull/{number}/head or refs/remotes/<remote>/pr/{number}); "
        f"fetch it with: git fetch origin pull/{number}/head:refs/pull/{number}/head"
    )


def audit_pulls(args: argparse.Namespace, options: AuditOptions) -> Report:
    """Audit the records folders that the pull requests ``args.numbers`` add in ``args.repo``.

    A PR without a head ref or without a records folder is listed in the report's
    ``not_audited`` (the command exits with 2); when none of them has anything to audit that is
    a usage error.
    """
    with GitRepo(args.repo) as repo:
        main = main_ref(repo, args.base)
        heads = pull_heads(repo)
        index = PullIndex(repo, main)
        apply_baseline_pr(args, options, repo, index, heads)
        bundles: list[Bundle] = []
        problems: list[str] = []
        for number in args.numbers:
            head = heads.get(number)
            if head is None:
                problems.append(missing_head(number, repo))
                continue
            found = index.folders_of(number, head)
            if not found.folders:
                problems.append(f"PR #{number} at {head[:12]}: {found.problem}")
                continue
            bundles.extend(pull_bundles(repo, found))
        if not bundles:
            raise UsageError("; ".join(problems) or "nothing to audit")
        report = audit_with_progress(bundles, options, quiet=getattr(args, "quiet", False))
        report.not_audited = problems
        return report


def run(args: argparse.Namespace) -> int:
    return emit(audit_pulls(args, options_from(args)), args)

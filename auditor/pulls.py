"""Pull requests of openai/parameter-golf in a local clone: their heads, and what they add.

A clone made with ``git fetch origin '+refs/pull/*/head:refs/pull/*/head'`` (or a mirror)
holds every pull request's head commit. Common remote-tracking spellings are accepted too
(``refs/remotes/origin/pr/N``, ``refs/remotes/origin/pull/N/head``).

A PR's records folders are the folders it adds under ``records/`` relative to the commit it
was branched from. For an open PR that is the merge base of its head and main. A PR merged
with a merge commit has its head inside main's history, so the merge base would be the head
itself and the diff empty; there the base is the merge base of the head and the first parent
of the merge commit that brought it in (the state of main just before the merge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from auditor.gitrepo import GitError, GitRepo, TreeEntry

#: Refs that name a pull request's head commit.
_PR_REF = re.compile(r"^refs/(?:remotes/[^/]+/)?(?:pull|pr|pulls)/(\d+)(?:/head)?$")
#: Candidates for the main branch, in order of preference.
MAIN_CANDIDATES = ("refs/heads/main", "refs/remotes/origin/main", "refs/remotes/upstream/main", "refs/heads/master")
RECORDS = "records"


def pull_heads(repo: GitRepo) -> dict[int, str]:
    """Every pull request number with a head commit in the clone, and that commit."""
    out = repo.run("for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", "refs/")
    heads: dict[int, tuple[int, str]] = {}
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[1] != "commit":
            continue
        sha, _, ref = parts
        match = _PR_REF.match(ref)
        if not match:
            continue
        number = int(match.group(1))
        # refs/pull/N/head wins over remote-tracking copies of it
        rank = 0 if ref.startswith("refs/pull/") else 1
        if number not in heads or rank < heads[number][0]:
            heads[number] = (rank, sha)
    return {n: sha for n, (_, sha) in sorted(heads.items())}


def main_ref(repo: GitRepo, preferred: str | None = None) -> str:
    """The full commit id of the main branch (or of ``preferred``)."""
    candidates = (preferred,) if preferred else MAIN_CANDIDATES
    for ref in candidates:
        try:
            sha = repo.resolve(ref)
        except GitError:
            continue
        if sha:
            return sha
    wanted = preferred or "main"
    raise GitError(f"no {wanted} branch in {repo.path} (tried {', '.join(candidates)})")


@dataclass
class Folder:
    """A records folder a pull request adds: its path and files at the head commit."""

    path: str
    entries: list[TreeEntry]

    @property
    def blobs(self) -> list[tuple[str, str]]:
        return sorted((e.path, e.blob) for e in self.entries)


@dataclass
class PullFolders:
    """What one pull request adds under ``records/``, or why that could not be told."""

    number: int
    head: str | None
    base: str | None = None
    folders: list[Folder] = field(default_factory=list)
    #: Added files that sit outside any records folder (shown in the triage row).
    other_added: int = 0
    problem: str = ""  # why no folder could be audited (no head, no records folder …)


class PullIndex:
    """Finds what pull requests add, with main's first-parent history read once."""

    def __init__(self, repo: GitRepo, main: str) -> None:
        self.repo = repo
        self.main = main
        self._first_parent: list[str] | None = None

    def first_parent(self) -> list[str]:
        """Main's first-parent chain, oldest first."""
        if self._first_parent is None:
            out = self.repo.run("rev-list", "--first-parent", "--reverse", self.main)
            self._first_parent = out.split()
        return self._first_parent

    def _is_ancestor(self, commit: str, of: str) -> bool:
        try:
            self.repo.run("merge-base", "--is-ancestor", commit, of)
        except GitError:
            return False
        return True

    def base_of(self, head: str) -> str | None:
        """The commit the PR branched from (see the module docstring); None without one."""
        if not self._is_ancestor(head, self.main):
            try:
                return self.repo.run("merge-base", self.main, head).strip() or None
            except GitError:
                return None  # no common history
        chain = self.first_parent()
        lo, hi = 0, len(chain) - 1  # the oldest first-parent commit that contains head
        while lo < hi:
            mid = (lo + hi) // 2
            if self._is_ancestor(head, chain[mid]):
                hi = mid
            else:
                lo = mid + 1
        merge = chain[lo]
        parents = self.repo.run("rev-list", "--parents", "-n", "1", merge).split()[1:]
        if merge == head or not parents:
            # fast-forwarded onto main: the commit before it on main is the best base known
            head_parents = self.repo.run("rev-list", "--parents", "-n", "1", head).split()[1:]
            return head_parents[0] if head_parents else None
        try:
            return self.repo.run("merge-base", parents[0], head).strip() or None
        except GitError:
            return None

    def folders_of(self, number: int, head: str | None) -> PullFolders:
        """The records folders a PR adds, read at its head."""
        result = PullFolders(number, head)
        if not head:
            result.problem = "head commit missing from the clone"
            return result
        try:
            self.repo.resolve(head)
        except GitError:
            result.problem = f"head commit {head[:12]} missing from the clone"
            return result
        base = self.base_of(head)
        result.base = base
        if base is None:
            result.problem = "no common history with main"
            return result
        try:
            added = self._added_files(base, head)
        except GitError as exc:
            result.problem = f"cannot diff against the base: {exc}"
            return result
        in_records = [p for p in added if p.startswith(RECORDS + "/")]
        result.other_added = len(added) - len(in_records)
        if not in_records:
            result.problem = "adds no files under records/"
            return result
        for folder in group_folders(in_records):
            try:
                if folder.count("/") >= 2 and self.repo.run("ls-tree", "--name-only", base, "--", folder).strip():
                    continue  # the folder existed before: the PR edits it, it does not add it
                entries = self.repo.ls_tree(head, folder)
            except GitError as exc:
                result.problem = f"cannot list {folder}: {exc}"
                continue
            if folder.count("/") < 2:  # files loose in records/ or a track folder: only those
                wanted = {p for p in in_records if p.rsplit("/", 1)[0] == folder}
                entries = [e for e in entries if e.path in wanted]
            if entries:
                result.folders.append(Folder(folder, entries))
        if not result.folders and not result.problem:
            result.problem = "adds no new records folder (only edits existing ones)"
        return result

    def _added_files(self, base: str, head: str) -> list[str]:
        out = self.repo.run("diff-tree", "-r", "-z", "--no-commit-id", "--name-only", "--diff-filter=A", base, head)
        return [p for p in out.split("\0") if p]


def group_folders(paths: list[str]) -> list[str]:
    """The submission folders of added files.

    Files are grouped by ``records/<track>/<name>``; a group's folder is the deepest directory
    common to its files (a folder nested one level too deep by mistake is still found with its
    files at its top). Files loose in ``records/`` or in a track folder form a group of their
    own directory.
    """
    groups: dict[str, list[list[str]]] = {}
    for path in paths:
        parts = path.split("/")[:-1]
        key = "/".join(parts[:3])
        groups.setdefault(key, []).append(parts)
    folders = []
    for key, members in groups.items():
        if key.count("/") < 2:
            folders.append(key)
            continue
        common = members[0]
        for parts in members[1:]:
            n = 0
            while n < min(len(common), len(parts)) and common[n] == parts[n]:
                n += 1
            common = common[:n]
        folders.append("/".join(common))
    return sorted(folders)

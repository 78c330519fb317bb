"""Earlier versions of contract files from git history, for offline compatibility checks."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """git failed: not a repository, unknown ref, or git missing."""


def git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def toplevel(path: Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel").strip())


def require_ref(repo: Path, ref: str) -> None:
    """Raise GitError, saying what to do, when `ref` names no commit of this clone."""
    try:
        git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        raise GitError(
            f"unknown git ref {ref!r}: give a commit, branch or tag this clone has "
            "(in CI, fetch enough history, e.g. fetch-depth: 0)"
        ) from None


def changed_since(repo: Path, ref: str, folder: str) -> list[str]:
    """.avsc files under `folder` changed or added since `ref`, committed or not (repo-relative)."""
    require_ref(repo, ref)
    diffed = git(repo, "diff", "--name-only", "--diff-filter=ACMR", ref, "--", folder).split()
    untracked = git(repo, "ls-files", "--others", "--exclude-standard", "--", folder).split()
    return sorted({p for p in diffed + untracked if p.endswith(".avsc")})


def versions_at_or_before(repo: Path, ref: str, path: str) -> list[tuple[str, str]]:
    """Distinct contents of `path` in the history of `ref`, oldest first, as (commit, text).

    Follows renames, so a moved contract keeps its history.
    """
    log = git(repo, "log", "--follow", "--format=%H", "--name-only", ref, "--", path)
    entries: list[tuple[str, str]] = []
    lines = [line for line in log.splitlines() if line.strip()]
    i = 0
    while i < len(lines) - 1:
        commit, name = lines[i], lines[i + 1]
        i += 2
        try:
            text = git(repo, "show", f"{commit}:{name}")
        except GitError:
            continue  # deleted in that commit
        entries.append((commit[:12], text))
    out: list[tuple[str, str]] = []
    for commit, text in reversed(entries):
        if not out or out[-1][1] != text:
            out.append((commit, text))
    return out

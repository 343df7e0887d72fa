"""A git revision's tree, extracted read-only into a directory (`git archive`)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from gitops.errors import GitopsError


class GitError(GitopsError):
    """git refused: not a repository, or an unknown revision."""


def resolve(root: Path, ref: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise GitError(
            f"{ref!r} is not a commit in {root}: fetch it (git fetch origin) or name another --base"
        )
    return done.stdout.strip()


def _inside_tree(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
    """tarfile's safe "data" filter, skipping (not failing on) links that leave the tree."""
    try:
        return tarfile.data_filter(member, path)
    except tarfile.FilterError:
        return None


def extract(root: Path, ref: str, destination: Path) -> str:
    """Write the tree of `ref` into `destination`; returns the commit id."""
    commit = resolve(root, ref)
    done = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=root, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise GitError(f"git archive {commit} failed: {done.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(destination, filter=_inside_tree)  # noqa: S202 - filtered above
    return commit


def tracked_files(root: Path) -> list[Path]:
    """Every file git tracks in `root`'s repository (`git ls-files`)."""
    done = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if done.returncode != 0:
        raise GitError(f"{root} is not a git repository: {done.stderr.decode(errors='replace')}")
    return [root / name for name in done.stdout.decode().split("\0") if name]

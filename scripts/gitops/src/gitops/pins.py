"""Whether the environments' overlays on a git revision pin built images, not placeholders.

The repository starts with placeholder digests; the main pipeline pins dev's and the promotion
pins prod's. Until both are on the branch Argo CD follows, an Application would roll out pods
that never pull, so the bootstrap creates the Applications only once this says so.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from gitops.errors import GitopsError
from gitops.imagerefs import is_placeholder

# What pins each environment's images first, and what to do about it.
FIRST_PIN = {
    "dev": "the main trigger's build pins it once it passes (Cloud Build → History)",
    "prod": "once dev is pinned, run the promote trigger and merge the PR it opens",
}


class PinError(GitopsError):
    """The revision cannot be read: a remote that does not answer, or a missing overlay."""


@dataclass(frozen=True)
class Pins:
    """An overlay's images at a revision: `name@digest` each, and those still placeholders."""

    overlay: str
    images: tuple[str, ...]
    placeholders: tuple[str, ...]


def fetch(root: Path, remote: str, branch: str) -> str:
    """The commit `branch` points at on `remote`, fetched into `root`'s repository."""
    done = subprocess.run(
        ["git", "fetch", "--quiet", "--no-write-fetch-head", remote, branch],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        raise PinError(
            f"git fetch {remote} {branch} failed: {done.stderr.strip()}; check the remote "
            "(git remote -v) and your access to it"
        )
    return _git(root, "rev-parse", "--verify", f"refs/remotes/{remote}/{branch}^{{commit}}")


def pins(root: Path, revision: str, overlay: str) -> Pins:
    """The images `overlay`'s kustomization pins at `revision`."""
    path = f"{overlay}/kustomization.yaml"
    try:
        document = yaml.safe_load(_git(root, "show", f"{revision}:{path}")) or {}
    except yaml.YAMLError as error:
        raise PinError(f"{path} at {revision} is not YAML: {error}") from error
    images, placeholders = [], []
    for entry in document.get("images") or []:
        name, digest = str(entry.get("name", "?")), str(entry.get("digest", ""))
        images.append(f"{name}@{digest}")
        if not digest or is_placeholder(digest):
            placeholders.append(name)
    return Pins(overlay, tuple(images), tuple(placeholders))


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise PinError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()

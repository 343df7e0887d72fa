"""The release an environment's Application syncs: `spec.source.targetRevision`, a commit.

Prod follows no branch. The promotion commits dev's digests into overlays/prod, then points
prod's Application at that commit, so a change to a base reaches prod only through a promotion
PR, together with the images it was tested with in dev.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from gitops.errors import GitopsError
from gitops.kustomization_images import round_trip_yaml

# A full commit id: a branch or tag can move, and a short id can become ambiguous.
COMMIT = re.compile(r"[0-9a-f]{40}")


class ReleaseError(GitopsError):
    """No Application syncs the overlay, or the revision is not a commit id."""


@dataclass(frozen=True)
class Release:
    application: Path
    previous: str
    revision: str


def set_release(argocd: Path, overlay: str, revision: str) -> Release:
    """Point the Application in `argocd` that syncs `overlay` (e.g. overlays/prod) at the commit
    `revision`; returns the file written and the revision it held before."""
    if not COMMIT.fullmatch(revision):
        raise ReleaseError(
            f"{revision!r} is not a full commit id: give the 40 hex digits of the commit that "
            "holds the promoted digests (git rev-parse HEAD)"
        )
    yaml = round_trip_yaml()
    for path in sorted(argocd.glob("*.yaml")):
        try:
            document = yaml.load(path.read_text(encoding="utf-8"))
        except YAMLError as error:
            raise ReleaseError(f"{path} is not YAML: {error}") from error
        if not isinstance(document, CommentedMap) or document.get("kind") != "Application":
            continue
        source = (document.get("spec") or {}).get("source")
        if not isinstance(source, CommentedMap) or source.get("path") != overlay:
            continue
        previous = str(source.get("targetRevision", "HEAD"))
        source["targetRevision"] = revision
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        path.write_text(buffer.getvalue(), encoding="utf-8")
        return Release(path, previous, revision)
    raise ReleaseError(
        f"no Application in {argocd} syncs {overlay}: check the overlay's name, or the "
        "Application's spec.source.path"
    )

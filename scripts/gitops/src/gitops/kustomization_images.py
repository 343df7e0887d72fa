"""`kustomize edit set image` on an overlay's kustomization.yaml, keeping comments and order."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from gitops.errors import GitopsError
from gitops.imagerefs import (
    ImageReferenceError,
    check_digest,
    check_name,
    check_tag,
    is_placeholder,
)
from gitops.targets import KUSTOMIZATION_FILES


class KustomizationError(GitopsError):
    """The kustomization cannot be edited as asked."""


@dataclass(frozen=True)
class ImageChange:
    """One `images:` entry to set: `name[=new_name][:tag][@digest]`."""

    name: str
    new_name: str | None = None
    tag: str | None = None
    digest: str | None = None


def parse_change(spec: str) -> ImageChange:
    """Parse `name=newName:tag@digest` (every part after name optional), as kustomize does."""
    name, equals, rest = spec.partition("=")
    if not equals:
        rest = name
    ref, at, digest = rest.partition("@")
    tag = None
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        ref, tag = ref[:colon], ref[colon + 1 :]
    if not equals:
        name = ref
    if at and not digest:
        raise ImageReferenceError(f"{spec!r} ends with '@' but has no digest")
    if not equals and tag is None and not at:
        raise ImageReferenceError(
            f"{spec!r} changes nothing: give a tag (name:tag), a digest (name@sha256:...) or a "
            "new name (name=registry/path/name:tag)"
        )
    return ImageChange(
        name=check_name(name),
        new_name=check_name(ref) if equals else None,
        tag=check_tag(tag) if tag is not None else None,
        digest=check_digest(digest) if at else None,
    )


def round_trip_yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, order and quoting survive
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def kustomization_file(overlay: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (overlay / name).is_file():
            return overlay / name
    raise KustomizationError(f"{overlay} has no kustomization.yaml")


def _load(path: Path) -> tuple[YAML, CommentedMap]:
    yaml = round_trip_yaml()
    document = yaml.load(path.read_text(encoding="utf-8"))
    if not isinstance(document, CommentedMap):
        raise KustomizationError(f"{path} is not a kustomization (a YAML mapping)")
    return yaml, document


def _images(document: CommentedMap, path: Path) -> CommentedSeq:
    if "images" not in document:
        document["images"] = CommentedSeq()
    images = document["images"]
    if not isinstance(images, CommentedSeq):
        raise KustomizationError(f"{path}: images: is not a list")
    return images


def apply_change(images: CommentedSeq, change: ImageChange) -> None:
    """Set one entry the way `kustomize edit set image` does; new entries keep names sorted."""
    entry: Any = next(
        (i for i in images if isinstance(i, dict) and i.get("name") == change.name), None
    )
    if entry is None:
        entry = CommentedMap(name=change.name)
        position = sum(
            1 for i in images if isinstance(i, dict) and str(i.get("name")) < change.name
        )
        images.insert(position, entry)
    if change.new_name is not None:
        entry["newName"] = change.new_name
    if change.tag is not None:
        entry["newTag"] = change.tag
        if change.digest is None:
            entry.pop("digest", None)
    if change.digest is not None:
        entry["digest"] = change.digest
        if change.tag is None:
            entry.pop("newTag", None)


def _write(yaml: YAML, document: CommentedMap, path: Path) -> None:
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    path.write_text(buffer.getvalue(), encoding="utf-8")


def set_images(overlay: Path, changes: list[ImageChange]) -> Path:
    """Apply `changes` to the overlay's kustomization; returns the file written."""
    path = kustomization_file(overlay)
    yaml, document = _load(path)
    images = _images(document, path)
    for change in changes:
        apply_change(images, change)
    _write(yaml, document, path)
    return path


def promotions(source: Path) -> list[ImageChange]:
    """The image pins of `source` as changes: every image must be pinned by digest."""
    path = kustomization_file(source)
    _, document = _load(path)
    changes = []
    for entry in _images(document, path):
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not digest:
            raise KustomizationError(
                f"{path}: image {name or '?'} has no digest; pin it first "
                f"(gitops set-image {source} {name or 'name'}@sha256:...)"
            )
        if is_placeholder(str(digest)):
            raise KustomizationError(
                f"{path}: image {name} still has the placeholder digest {digest}: nothing was "
                "built for it yet; promote once the main pipeline has pinned it"
            )
        new_name = entry.get("newName")
        changes.append(
            ImageChange(
                name=check_name(name),
                new_name=check_name(str(new_name)) if new_name else None,
                digest=check_digest(str(digest)),
            )
        )
    if not changes:
        raise KustomizationError(f"{path} pins no images: nothing to promote")
    return changes


def promote(source: Path, destination: Path) -> tuple[Path, list[ImageChange]]:
    """Copy `source`'s image digests (and names) into `destination`'s kustomization."""
    changes = promotions(source)
    return set_images(destination, changes), changes

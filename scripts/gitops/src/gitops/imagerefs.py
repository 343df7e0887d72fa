"""Container image references (`registry/path:tag@sha256:digest`), parsed and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gitops.errors import GitopsError

# The grammar of github.com/distribution/reference, reduced to what a manifest may hold.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*(?::[0-9]+)?)"
_NAME = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# The digests an overlay holds before any pipeline has pinned an image: zeros, numbered.
_PLACEHOLDER_DIGEST = re.compile(r"sha256:0{48}[0-9a-f]{16}")


class ImageReferenceError(GitopsError, ValueError):
    """A malformed image name, tag or digest."""


@dataclass(frozen=True)
class ImageRef:
    name: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def check_name(name: str) -> str:
    if len(name) > 255 or not _NAME.match(name):
        raise ImageReferenceError(
            f"{name!r} is not an image name: use lower-case path components separated by '/', "
            "optionally after a registry host, e.g. asia-northeast3-docker.pkg.dev/project/repo/app"
        )
    return name


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise ImageReferenceError(
            f"{tag!r} is not an image tag: up to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )
    return tag


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest):
        raise ImageReferenceError(
            f"{digest!r} is not an image digest: expected sha256: followed by 64 lower-case "
            "hex digits (as printed by `docker buildx imagetools inspect` or Cloud Build)"
        )
    return digest


def is_placeholder(digest: str) -> bool:
    """A digest the repository holds until a pipeline pins a built image; it names none."""
    return bool(_PLACEHOLDER_DIGEST.fullmatch(digest))


def parse_image(reference: str) -> ImageRef:
    """Split `reference` into name, tag and digest, refusing anything malformed."""
    text = reference.strip()
    if not text:
        raise ImageReferenceError("an empty image reference: name the image, e.g. app:1.2.3")
    name_and_tag, at, digest = text.partition("@")
    name, tag = name_and_tag, None
    last = name_and_tag.rfind(":")
    if last > name_and_tag.rfind("/"):
        name, tag = name_and_tag[:last], name_and_tag[last + 1 :]
    return ImageRef(
        name=check_name(name),
        tag=check_tag(tag) if tag is not None else None,
        digest=check_digest(digest) if at else None,
    )

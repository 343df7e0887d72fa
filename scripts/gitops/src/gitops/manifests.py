"""Kubernetes objects as plain data: parsing rendered YAML and naming each object."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gitops.errors import GitopsError

try:  # libyaml makes parsing a large render several times faster
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class ManifestError(GitopsError):
    """A manifest is not YAML, or a document in it is not a Kubernetes object."""


@dataclass(frozen=True)
class Resource:
    """One Kubernetes object and where it came from."""

    body: Mapping[str, Any]
    origin: str

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def metadata(self) -> Mapping[str, Any]:
        return mapping(self.body.get("metadata"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "")

    @property
    def annotations(self) -> Mapping[str, Any]:
        return mapping(self.metadata.get("annotations"))

    @property
    def ref(self) -> str:
        """`Kind namespace/name`, the way a reader looks an object up."""
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity across renders: group, kind, namespace, name."""
        return (self.group, self.kind, self.namespace, self.name)


def mapping(value: object) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: manifests are untrusted input."""
    return value if isinstance(value, Mapping) else {}


def sequence(value: object) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def parse(text: str, origin: str) -> list[Resource]:
    """Every non-empty document of `text` as a Resource; refuses documents that are not objects."""
    return list(_documents(text, origin))


def _documents(text: str, origin: str) -> Iterator[Resource]:
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as error:
        raise ManifestError(f"{origin}: not valid YAML: {error}") from error
    for index, document in enumerate(documents):
        if document is None:
            continue
        if not isinstance(document, dict) or "kind" not in document:
            raise ManifestError(
                f"{origin}: document {index + 1} is not a Kubernetes object "
                "(a mapping with apiVersion and kind)"
            )
        if str(document.get("kind", "")).endswith("List") and "items" in document:
            for item in sequence(document.get("items")):
                yield Resource(mapping(item), origin)
            continue
        yield Resource(document, origin)

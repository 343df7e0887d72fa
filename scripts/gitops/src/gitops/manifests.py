"""Kubernetes objects as plain data: parsing rendered YAML and naming each object."""

from __future__ import annotations

import re
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


# Limits that keep a hostile manifest from exhausting memory or time: YAML aliases can describe
# an exponentially large tree in a few kilobytes ("billion laughs"), and every object and finding
# costs memory and report space.
MAX_EXPANDED_NODES = 1_000_000
MAX_OBJECTS = 20_000
ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s\[\]{},]")
_DOCUMENT_START = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)


@dataclass(frozen=True)
class Resource:
    """One Kubernetes object and where it came from."""

    body: Mapping[str, Any]
    origin: str
    # The file the object is written in (repository path) and the line its document starts on.
    file: str = ""
    line: int = 0

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
        return scalar_text(self.metadata.get("name"))

    @property
    def namespace(self) -> str:
        return scalar_text(self.metadata.get("namespace"))

    @property
    def annotations(self) -> Mapping[str, Any]:
        return mapping(self.metadata.get("annotations"))

    @property
    def ref(self) -> str:
        """`Kind namespace/name`, the way a reader looks an object up; never blank."""
        name = self.name or "(no name)"
        where = f"{self.namespace}/{name}" if self.namespace else name
        return f"{self.kind or '(no kind)'} {where}"

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity across renders: group, kind, namespace, name."""
        return (self.group, self.kind, self.namespace, self.name)


def mapping(value: object) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one: manifests are untrusted input."""
    return value if isinstance(value, Mapping) else {}


def scalar_text(value: object) -> str:
    """A name as Kubernetes reads it: YAML 1.1 turns `y`, `on`, `1` into bool or int, which the
    API server would refuse as a name; show what was written, not Python's `True`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def sequence(value: object) -> list[Any]:
    """`value` if it is a list, else an empty one."""
    return value if isinstance(value, list) else []


def parse(text: str, origin: str, file: str = "") -> list[Resource]:
    """Every non-empty document of `text` as a Resource; refuses documents that are not objects.

    `file` names where the text is written, to give each object its line; rendered text carries
    kustomize's origin annotation instead, which `with_origins` reads.
    """
    if _ANCHOR.search(text):
        _check_aliases(text, origin)
    resources = list(_documents(text, origin, file))
    if len(resources) > MAX_OBJECTS:
        raise ManifestError(
            f"{origin}: {len(resources)} objects, more than the {MAX_OBJECTS} one run checks; "
            "split the target"
        )
    return resources


def _check_aliases(text: str, origin: str) -> None:
    """Refuse YAML whose aliases expand to more than MAX_EXPANDED_NODES nodes."""
    try:
        roots = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.YAMLError as error:
        raise ManifestError(f"{origin}: not valid YAML: {error}") from error
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once; the constructor refuses it anyway
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        sizes[id(node)] = total
        return total

    expanded = sum(size(root) for root in roots if root is not None)
    if expanded > MAX_EXPANDED_NODES:
        raise ManifestError(
            f"{origin}: YAML aliases expand to {expanded} nodes, more than the "
            f"{MAX_EXPANDED_NODES} allowed; write the objects out instead of aliasing them"
        )


def _starts(text: str) -> list[int]:
    """The 1-based line each document of `text` starts on: its first line that is neither blank
    nor a comment (a licence header is not the object)."""
    lines = [1]
    for marker in _DOCUMENT_START.finditer(text):
        line = text.count("\n", 0, marker.start()) + 2
        if marker.start() == 0:
            lines[0] = line
        else:
            lines.append(line)
    written = text.splitlines()
    for index, line in enumerate(lines):
        while line <= len(written) and (
            not written[line - 1].strip() or written[line - 1].lstrip().startswith("#")
        ):
            line += 1
        lines[index] = line
    return lines


def _documents(text: str, origin: str, file: str) -> Iterator[Resource]:
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as error:
        raise ManifestError(f"{origin}: not valid YAML: {error}") from error
    except RecursionError as error:
        raise ManifestError(f"{origin}: YAML nested too deeply to check") from error
    starts = _starts(text) if file else []
    # load_all drops nothing, but a stream may begin without `---`; line numbers are best effort.
    offset = len(starts) - len(documents) if len(starts) >= len(documents) else 0
    for index, document in enumerate(documents):
        if document is None:
            continue
        line = starts[index + offset] if file and index + offset < len(starts) else 0
        if not isinstance(document, dict) or "kind" not in document:
            where = f"{file}:{line}" if line else f"{origin}: document {index + 1}"
            raise ManifestError(
                f"{where} is not a Kubernetes object (a mapping with apiVersion and kind)"
            )
        if str(document.get("kind", "")).endswith("List") and "items" in document:
            for item in sequence(document.get("items")):
                yield Resource(mapping(item), origin, file, line)
            continue
        yield Resource(document, origin, file, line)

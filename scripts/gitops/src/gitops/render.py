"""Rendering targets with `kustomize build`, in parallel, into parsed objects.

kustomize runs with a timeout and without the network: a remote base is refused before the
build unless it is pinned to a commit and the caller allows remote bases.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from gitops.manifests import ORIGIN_ANNOTATION, ManifestError, Resource, mapping, parse, sequence
from gitops.targets import KUSTOMIZATION_FILES, Target

# Seconds one `kustomize build` may take; a render of this repository takes well under one.
KUSTOMIZE_TIMEOUT = 60.0
# Bytes of rendered YAML or of a manifest file one target may produce.
MAX_RENDER_BYTES = 64 * 1024 * 1024
# Where kustomize fetches a remote base from: a URL, a git forge path, or a go-getter address.
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@|git::|github\.com/|gitlab\.com/)", re.I)
_PINNED = re.compile(r"[?&]ref=[0-9a-f]{40}(?:&|$)")
# Proxies nobody listens on: kustomize's git and HTTP fetches fail at once instead of waiting.
_OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ALLOW_PROTOCOL": "file",
}


@dataclass(frozen=True)
class Rendered:
    """A target's rendered YAML and objects, or why it did not render."""

    target: Target
    text: str
    resources: tuple[Resource, ...]
    error: str | None = None


class UnreadableManifest(ManifestError):
    """A manifest file cannot be read as text: missing, a symlink loop, not UTF-8, too large."""


def is_kustomize_config(resource: Resource) -> bool:
    """kustomize's own configuration (a Kustomization, Component, transformer or local config):
    kustomize reads it and the cluster never sees it, so it is judged through the render."""
    return (
        resource.api_version == "builtin"
        or resource.group.startswith("kustomize.config.k8s.io")
        or str(resource.annotations.get("config.kubernetes.io/local-config")) == "true"
    )


def read_manifest(path: Path) -> str:
    """A manifest file's text; raises UnreadableManifest saying what is wrong with it."""
    try:
        size = path.stat().st_size
        if size > MAX_RENDER_BYTES:
            raise UnreadableManifest(
                f"{path}: {size} bytes, more than the {MAX_RENDER_BYTES} allowed"
            )
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableManifest(
            f"{path}: not UTF-8 (byte {error.object[error.start]:#04x} at offset {error.start}); "
            "save the file as UTF-8"
        ) from error
    except OSError as error:
        raise UnreadableManifest(f"{path}: cannot be read: {error.strerror or error}") from error


def _kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            try:
                loaded = yaml.safe_load(read_manifest(path))
            except yaml.YAMLError:
                return {}  # kustomize reports the syntax error itself
            return dict(loaded) if isinstance(loaded, dict) else {}
    return {}


def _is_patch_file(path: Path) -> bool:
    """Whether the kustomization beside `path` applies it as a patch rather than a resource."""
    body = _kustomization(path.parent)
    named = [str(entry) for entry in sequence(body.get("patchesStrategicMerge"))]
    for key in ("patches", "patchesJson6902"):
        named += [str(mapping(entry).get("path", "")) for entry in sequence(body.get(key))]
    # Compared as written: resolving could meet a symlink loop in a hostile kustomization.
    return any(os.path.normpath(path.parent / name) == os.path.normpath(path) for name in named)


def remote_bases(directory: Path, seen: set[Path] | None = None) -> Iterator[str]:
    """Every remote resource, base or component the kustomization at `directory` reaches."""
    seen = set() if seen is None else seen
    resolved = directory.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    body = _kustomization(resolved)
    for key in ("resources", "bases", "components"):
        for entry in sequence(body.get(key)):
            reference = str(entry)
            if _REMOTE.match(reference):
                yield reference
            elif (resolved / reference).is_dir():
                yield from remote_bases(resolved / reference, seen)


def _refusal(target: Target, allow_remote: bool) -> str | None:
    for reference in remote_bases(target.path):
        if not allow_remote:
            return (
                f"remote base {reference}: validation does not reach the network; vendor the "
                "base, or pin it with ?ref=<commit> and pass --allow-remote-bases"
            )
        if not _PINNED.search(reference):
            return f"remote base {reference} is not pinned: add ?ref=<40-hex commit>"
    return None


def _origin_file(annotation: object, wrapper: Path, root: Path) -> str:
    origin = mapping(yaml.safe_load(str(annotation))) if annotation else {}
    path = origin.get("path") or origin.get("configuredIn")
    if not path or origin.get("repo"):
        return ""
    absolute = (wrapper / str(path)).resolve()
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()


class _Lines:
    """Where each object starts in the files kustomize read, found by kind and name."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._files: dict[str, list[tuple[str, str, int]]] = {}

    def line(self, file: str, resource: Resource) -> int:
        if file not in self._files:
            try:
                text = read_manifest(self._root / file)
                self._files[file] = [(r.kind, r.name, r.line) for r in parse(text, file, file=file)]
            except (ManifestError, OSError):
                self._files[file] = []
        entries = self._files[file]
        for kind, name, line in entries:
            if kind == resource.kind and name and resource.name.endswith(name):
                return line
        return next((line for kind, _, line in entries if kind == resource.kind), 0)


def _with_origins(resources: Iterable[Resource], wrapper: Path, root: Path) -> list[Resource]:
    """Resources with the file and line kustomize's origin annotation names, annotation removed."""
    lines = _Lines(root)
    out = []
    for resource in resources:
        annotations = dict(resource.annotations)
        origin = annotations.pop(ORIGIN_ANNOTATION, None)
        if origin is None:
            out.append(resource)
            continue
        metadata = dict(resource.metadata)
        if annotations:
            metadata["annotations"] = annotations
        else:
            metadata.pop("annotations", None)
        body = {**resource.body, "metadata": metadata}
        file = _origin_file(origin, wrapper, root)
        stripped = replace(resource, body=body, file=file)
        out.append(replace(stripped, line=lines.line(file, stripped) if file else 0))
    return out


def _build(target: Target, kustomize: str, scratch: Path | None) -> tuple[str, Path | None]:
    """kustomize's output for `target`, through a wrapper that adds origin annotations."""
    wrapper = None
    path = target.path
    if scratch is not None:
        wrapper = Path(tempfile.mkdtemp(prefix="origin-", dir=scratch))
        relative = os.path.relpath(target.path.resolve(), wrapper)
        # A Component can only be pulled in as a component, never as a resource.
        field = (
            "components" if _kustomization(target.path).get("kind") == "Component" else "resources"
        )
        (wrapper / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"buildMetadata: [originAnnotations]\n{field}:\n- {relative}\n",
            encoding="utf-8",
        )
        path = wrapper
    done = subprocess.run(
        [kustomize, "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=KUSTOMIZE_TIMEOUT,
        env={**os.environ, **_OFFLINE},
    )
    if done.returncode != 0:
        message = done.stderr.strip() or "kustomize build failed"
        if wrapper is not None:
            message = message.replace(str(wrapper), str(target.path))
        raise ManifestError(message)
    if len(done.stdout) > MAX_RENDER_BYTES:
        raise ManifestError(f"renders more than {MAX_RENDER_BYTES} bytes")
    return done.stdout, wrapper


def render_one(
    target: Target,
    kustomize: str,
    *,
    origins: Path | None = None,
    root: Path | None = None,
    allow_remote: bool = False,
) -> Rendered:
    """One target's objects. With `origins` (a scratch directory) and `root`, each object gets
    the repository file and line it comes from."""
    if target.is_file:
        # A file the user named that cannot be read is a usage error, not a finding.
        text = read_manifest(target.path)
        try:
            resources = parse(text, target.name, file=target.name)
        except ManifestError as error:
            return Rendered(target, "", (), error=str(error))
        if _is_patch_file(target.path):
            resources = []  # a patch is judged applied, in the render of its kustomization
        return Rendered(
            target,
            text,
            tuple(r for r in resources if not is_kustomize_config(r) and "$patch" not in r.body),
        )
    try:
        refusal = _refusal(target, allow_remote)
        if refusal is not None:
            return Rendered(target, "", (), error=refusal)
        try:
            text, wrapper = _build(target, kustomize, origins)
        except subprocess.TimeoutExpired:
            return Rendered(
                target, "", (), error=f"kustomize build took more than {KUSTOMIZE_TIMEOUT:.0f} s"
            )
        resources = parse(text, target.name)
        if wrapper is not None and root is not None:
            resources = _with_origins(resources, wrapper, root.resolve())
        return Rendered(target, text, tuple(resources))
    except ManifestError as error:
        return Rendered(target, "", (), error=str(error))


def default_jobs() -> int:
    """Two kustomize processes per core: each spends part of its life starting and reading files."""
    return 2 * (os.cpu_count() or 1)


def render_all(
    targets: Iterable[Target], kustomize: str, jobs: int | None = None
) -> list[Rendered]:
    """Every target rendered, in the order given; kustomize runs in parallel processes."""
    with ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool:
        return list(pool.map(lambda target: render_one(target, kustomize), targets))

"""Rendering targets with `kustomize build`, in parallel, into parsed objects."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from gitops.manifests import ManifestError, Resource, parse
from gitops.targets import Target


@dataclass(frozen=True)
class Rendered:
    """A target's rendered YAML and objects, or why it did not render."""

    target: Target
    text: str
    resources: tuple[Resource, ...]
    error: str | None = None


def render_one(target: Target, kustomize: str) -> Rendered:
    if target.is_file:
        text = target.path.read_text(encoding="utf-8")
    else:
        done = subprocess.run(
            [kustomize, "build", str(target.path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return Rendered(target, "", (), error=done.stderr.strip() or "kustomize build failed")
        text = done.stdout
    try:
        return Rendered(target, text, tuple(parse(text, target.name)))
    except ManifestError as error:
        return Rendered(target, text, (), error=str(error))


def default_jobs() -> int:
    """Two kustomize processes per core: each spends part of its life starting and reading files."""
    return 2 * (os.cpu_count() or 1)


def render_all(
    targets: Iterable[Target], kustomize: str, jobs: int | None = None
) -> list[Rendered]:
    """Every target rendered, in the order given; kustomize runs in parallel processes."""
    with ThreadPoolExecutor(max_workers=jobs or default_jobs()) as pool:
        return list(pool.map(lambda target: render_one(target, kustomize), targets))

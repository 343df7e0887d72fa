"""Render targets built with the pinned kustomize, as plain objects with lookups.

Targets are discovered as the tooling discovers them: each directory under overlays/ holding a
kustomization.yaml is an environment, and apps/argocd renders Argo CD's objects.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / "bin" / "kustomize"


@dataclass(frozen=True)
class Rendering:
    """The objects one target renders to, with lookups that say what is missing."""

    target: str
    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        for o in self.of_kind(kind):
            meta = o["metadata"]
            if meta["name"] == name and namespace in (None, meta.get("namespace")):
                return o
        present = sorted(o["metadata"]["name"] for o in self.of_kind(kind))
        raise LookupError(f"{self.target} renders no {kind} {name!r}; it has {present}")

    def environment(self) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", "platform-environment", "agent-platform")[
            "data"
        ]
        return data


def environment_names() -> list[str]:
    return sorted(p.parent.name for p in (ROOT / "overlays").glob("*/kustomization.yaml"))


def render(path: Path) -> Rendering:
    if not KUSTOMIZE.exists():
        pytest.fail(f"{KUSTOMIZE} is missing: `make tools` installs the pinned kustomize")
    built = subprocess.run(
        [str(KUSTOMIZE), "build", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if built.returncode != 0:
        pytest.fail(f"kustomize build {path.relative_to(ROOT)} failed:\n{built.stderr}")
    objects = tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)
    return Rendering(str(path.relative_to(ROOT)), objects)

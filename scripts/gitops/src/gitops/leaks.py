"""Secret scanning of rendered objects with gitleaks: its maintained rules plus the repository's.

Each object is written as one line of JSON, so a gitleaks line number names the object. The
scan reads each target's `kustomize build` output, which is what Argo CD applies: a secret that
appears only once a target is rendered is found too.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from gitops.errors import GitopsError
from gitops.manifests import Resource

CONFIG = ".gitleaks.toml"
TIMEOUT = 120.0


class SecretScanError(GitopsError):
    """gitleaks is missing, misconfigured or failed."""


def write_objects(path: Path, resources: Sequence[Resource]) -> None:
    """`resources` as a YAML stream of one-line JSON documents: line 2·i+1 holds object i."""
    lines = []
    for resource in resources:
        lines.append(json.dumps(resource.body, default=str, separators=(",", ":")))
    path.write_text("\n---\n".join(lines) + "\n", encoding="utf-8")


def object_at(line: int) -> int:
    """The index of the object on `line` of a file `write_objects` wrote."""
    return (line - 1) // 2


def scan(gitleaks: str, directory: Path, root: Path) -> list[Mapping[str, object]]:
    """gitleaks' findings (secrets redacted) for every file under `directory`."""
    config = root / CONFIG
    command = [
        gitleaks,
        "dir",
        str(directory),
        "--no-banner",
        "--report-format",
        "json",
        "--report-path",
        "-",
        "--exit-code",
        "0",
        "--redact",
        "--log-level",
        "error",
    ]
    if config.is_file():
        command += ["--config", str(config)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise SecretScanError(f"gitleaks took more than {TIMEOUT:.0f} s") from error
    if done.returncode != 0:
        raise SecretScanError(
            f"gitleaks failed: {done.stderr.strip()[:500]}; check {CONFIG} or run `make tools`"
        )
    try:
        found = json.loads(done.stdout or "[]")
    except ValueError as error:
        raise SecretScanError(
            f"gitleaks printed something other than JSON: {done.stdout[:200]}"
        ) from error
    return [item for item in found if isinstance(item, dict)]

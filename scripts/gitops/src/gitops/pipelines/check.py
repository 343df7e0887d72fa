"""`gitops pipelines check`: find the build files, triggers and Dockerfiles and check them.

Build files are `cloudbuild.yaml` and `pipelines/*.yaml`; triggers are
`pipelines/triggers/*.yaml`; step scripts are `pipelines/scripts/*.sh`; Dockerfiles are
`apps/*/Dockerfile` and `pipelines/**/Dockerfile`. Explicit paths may be given instead; a YAML
file with `steps` is a build file, any other YAML file a trigger.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from gitops.errors import GitopsError
from gitops.pipelines.cloudbuild import (
    Finding,
    check_build,
    check_script,
    check_trigger,
    is_build_document,
)
from gitops.pipelines.dockerfiles import check_dockerfile


@dataclass(frozen=True)
class PipelineFiles:
    builds: list[Path]
    triggers: list[Path]
    scripts: list[Path]
    dockerfiles: list[Path]

    def count(self) -> int:
        return len(self.builds) + len(self.triggers) + len(self.scripts) + len(self.dockerfiles)


_BUILD_CONTEXT = re.compile(r"--build-context[= ]([A-Za-z0-9_.-]+)=(\S+)")


class UnreadableFileError(GitopsError):
    """A file to check could not be read or is not YAML."""


def discover(root: Path) -> PipelineFiles:
    """The files `gitops pipelines check` looks at when given none."""
    builds = [root / "cloudbuild.yaml", *sorted((root / "pipelines").glob("*.yaml"))]
    return PipelineFiles(
        builds=[path for path in builds if path.is_file()],
        triggers=sorted((root / "pipelines" / "triggers").glob("*.yaml")),
        scripts=sorted((root / "pipelines" / "scripts").glob("*.sh")),
        dockerfiles=sorted(
            [*(root / "apps").glob("*/Dockerfile"), *(root / "pipelines").rglob("Dockerfile")]
        ),
    )


def classify(paths: Iterable[Path]) -> PipelineFiles:
    """Sort explicitly named files into build files, triggers and Dockerfiles by content."""
    files = PipelineFiles([], [], [], [])
    for path in paths:
        if path.name.endswith("Dockerfile") or path.suffix == ".Dockerfile":
            files.dockerfiles.append(path)
        elif path.suffix == ".sh":
            files.scripts.append(path)
        elif is_build_document(_load_yaml(path)):
            files.builds.append(path)
        else:
            files.triggers.append(path)
    return files


def check_files(root: Path, files: PipelineFiles) -> list[Finding]:
    """All findings for the given files; triggers resolve their build file under `root`."""
    findings: list[Finding] = []
    builds: dict[str, Mapping[str, Any]] = {}
    for path in files.builds:
        doc = _load_yaml(path)
        builds[_relative(path, root)] = doc
        findings.extend(check_build(doc, _relative(path, root)))
    for path in discover(root).builds:
        builds.setdefault(_relative(path, root), _load_yaml(path))
    for path in files.triggers:
        findings.extend(check_trigger(_load_yaml(path), _relative(path, root), builds))
    for path in files.scripts:
        findings.extend(check_script(path.read_text(encoding="utf-8"), _relative(path, root)))
    contexts = named_build_contexts(discover(root).scripts)
    for path in files.dockerfiles:
        text = path.read_text(encoding="utf-8")
        findings.extend(check_dockerfile(text, _relative(path, root), contexts))
    return findings


def named_build_contexts(scripts: Iterable[Path]) -> frozenset[str]:
    """The names the pipeline scripts give local directories with `--build-context NAME=DIR`."""
    return frozenset(
        match.group(1)
        for script in scripts
        for match in _BUILD_CONTEXT.finditer(script.read_text(encoding="utf-8"))
        if "://" not in match.group(2) and not match.group(2).startswith("docker-image")
    )


def run(root: Path, paths: Sequence[Path], out: TextIO) -> int:
    """Print the findings; 0 when clean, 1 with findings, 2 when a file cannot be read."""
    try:
        files = classify(paths) if paths else discover(root)
        findings = check_files(root, files)
    except UnreadableFileError as error:
        print(f"error: {error}", file=out)
        return 2
    for finding in findings:
        print(finding, file=out)
    checked = files.count()
    print(f"{checked} pipeline files checked, {len(findings)} findings", file=out)
    return 1 if findings else 0


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise UnreadableFileError(f"{path}: {error}") from error
    if not isinstance(doc, dict):
        raise UnreadableFileError(f"{path}: expected a YAML mapping at the top level")
    return doc


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()

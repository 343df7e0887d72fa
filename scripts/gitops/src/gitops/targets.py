"""What gets rendered: every environment overlay (discovered), the components, or named paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops.config import Config
from gitops.errors import GitopsError

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class TargetError(GitopsError):
    """A path named on the command line is neither a kustomization nor a manifest file."""


@dataclass(frozen=True)
class Target:
    """A kustomization directory to build, or a manifest file to read as is."""

    name: str
    path: Path
    is_environment: bool = False

    @property
    def is_file(self) -> bool:
        return self.path.is_file()


def is_kustomization(directory: Path) -> bool:
    return any((directory / name).is_file() for name in KUSTOMIZATION_FILES)


def discover(config: Config) -> list[Target]:
    """Every overlay holding a kustomization (an environment), then the configured components."""
    overlays = config.root / config.overlays
    found = [
        Target(directory.name, directory, is_environment=True)
        for directory in sorted(overlays.iterdir() if overlays.is_dir() else [])
        if directory.is_dir() and is_kustomization(directory)
    ]
    for component in config.components:
        directory = config.root / component
        if not is_kustomization(directory):
            raise TargetError(
                f"gitops.yaml lists component {component}, but {directory} has no "
                "kustomization.yaml: fix the path or remove it from components"
            )
        found.append(Target(component, directory))
    return found


def from_paths(config: Config, paths: list[Path]) -> list[Target]:
    """Targets for paths a user names: kustomization directories or manifest files."""
    overlays = (config.root / config.overlays).resolve()
    found: list[Target] = []
    for path in paths:
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop (Python < 3.13)
            reason = getattr(error, "strerror", None) or str(error)
            raise TargetError(f"{path} cannot be read: {reason}") from error
        if resolved.is_file() and resolved.name in KUSTOMIZATION_FILES:
            # The kustomization's objects are what it builds, not the file itself.
            resolved = resolved.parent
            path = path.parent
        try:
            name = str(resolved.relative_to(config.root.resolve()))
        except ValueError:
            name = str(path)
        if resolved.is_dir() and is_kustomization(resolved):
            environment = resolved.parent == overlays
            found.append(Target(resolved.name if environment else name, resolved, environment))
        elif resolved.is_file():
            found.append(Target(name, resolved))
        else:
            raise TargetError(
                f"{path} is neither a directory with a kustomization.yaml nor a manifest file"
            )
    # A directory and its kustomization.yaml, or a path named twice, are one target.
    unique = {target.path: target for target in reversed(found)}
    return [target for target in found if unique[target.path] is target]

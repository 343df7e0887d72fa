"""gitops.yaml: the tooling's settings, checked against a JSON schema on load."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gitops.errors import GitopsError
from gitops.policy import Settings

CONFIG_FILE = "gitops.yaml"


class ConfigError(GitopsError):
    """gitops.yaml is missing, not YAML, or does not match its schema."""


@dataclass(frozen=True)
class Suppression:
    rule: str
    target: str
    reason: str
    resource: str = "*"


@dataclass(frozen=True)
class Config:
    root: Path
    kubernetes_version: str = "1.34"
    overlays: str = "overlays"
    components: tuple[str, ...] = ()
    crd_schemas: str = "schemas/crds"
    policy: Settings = field(default_factory=Settings)
    suppressions: tuple[Suppression, ...] = ()


def config_schema() -> dict[str, Any]:
    text = resources.files("gitops").joinpath("config.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def parse_config(root: Path, data: object, origin: str = CONFIG_FILE) -> Config:
    """A Config from the parsed YAML, or a ConfigError naming the offending field."""
    validator = jsonschema.Draft202012Validator(config_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors
        )
        raise ConfigError(f"{origin} does not match its schema: {details}")
    assert isinstance(data, dict)
    defaults = Settings()
    return Config(
        root=root,
        kubernetes_version=data["kubernetesVersion"],
        overlays=data.get("overlays", "overlays"),
        components=tuple(data.get("components", ())),
        crd_schemas=data.get("crdSchemas", "schemas/crds"),
        policy=Settings(
            digest_environments=frozenset(
                data.get("digestPinnedEnvironments", defaults.digest_environments)
            ),
            gvisor_environments=frozenset(
                data.get("gvisorEnvironments", defaults.gvisor_environments)
            ),
            sandbox_namespace=data.get("sandboxNamespace", defaults.sandbox_namespace),
        ),
        suppressions=tuple(
            Suppression(
                rule=item["rule"],
                target=item["target"],
                reason=item["reason"],
                resource=item.get("resource", "*"),
            )
            for item in data.get("suppressions", ())
        ),
    )


def load_config(root: Path) -> Config:
    """The repository's gitops.yaml."""
    path = root / CONFIG_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ConfigError(
            f"{path} is missing: the repository root needs a {CONFIG_FILE}"
        ) from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    return parse_config(root, data, str(path))


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding gitops.yaml."""
    for directory in (start.resolve(), *start.resolve().parents):
        if (directory / CONFIG_FILE).is_file():
            return directory
    raise ConfigError(
        f"no {CONFIG_FILE} in {start.resolve()} or above: run gitops from inside the repository"
    )


def root_given(root: str | None) -> Path:
    """The repository root `--root` names, else the nearest one above the working directory."""
    return Path(root).resolve() if root else find_root(Path.cwd())

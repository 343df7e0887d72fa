"""Schema validation: kubeconform, offline, over Kubernetes and the repository's CRD schemas."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jsonschema

from gitops.errors import GitopsError

# kubeconform's template for the CRD layout this repository keeps.
CRD_LAYOUT = "{{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"
_CRD_FILE = re.compile(r"^[a-z0-9]+_v[0-9]+(?:(?:alpha|beta)[0-9]+)?\.json$")
# kubeconform's wrapper around the validator's message, which names the schema file.
_PREAMBLE = re.compile(r"^.*?jsonschema validation failed with '[^']*' - ")
_CACHE_FORMAT = "2"  # bump when the rewriting below changes


class SchemaSetupError(GitopsError):
    """The Kubernetes schemas for the configured version are not available."""


def _package_schemas(kubernetes_version: str) -> Path:
    base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    directory = Path(str(base)) / f"v{kubernetes_version}.0-local-strict"
    if not directory.is_dir():
        raise SchemaSetupError(
            f"the kubernetes-validate package has no strict schemas for Kubernetes "
            f"{kubernetes_version}: update it in scripts/gitops/pyproject.toml or change "
            "kubernetesVersion in gitops.yaml"
        )
    return directory


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitops"


# A reference into the package's shared definitions file, or within it.
_DEFINITION_REF = re.compile(r'"\$ref": "(?:/api/_definitions\.json)?#/\$defs/([^"]+)"')


def _standalone(
    schema: dict[str, Any], definitions: dict[str, Any], needs: dict[str, set[str]]
) -> str:
    """`schema` with the definitions it reaches copied in, and no reference leaving the file."""
    schema.pop("$id", None)
    pending = set(_DEFINITION_REF.findall(json.dumps(schema)))
    reached: set[str] = set()
    while pending:
        name = pending.pop()
        reached.add(name)
        pending |= needs[name] - reached
    schema["$defs"] = {name: definitions[name] for name in sorted(reached)}
    return json.dumps(schema).replace('"/api/_definitions.json#/$defs/', '"#/$defs/')


def kubernetes_schemas(kubernetes_version: str) -> Path:
    """Standalone copies of the package's strict schemas, made once per version and cached.

    The package's schemas carry an `$id` on kubernetes.io and refer to one shared
    `/api/_definitions.json`, which kubeconform would try to fetch over the network, and which
    is 1.5 MB to parse for every kind. Each copy instead holds just the definitions it needs, so
    validation never leaves the machine and compiles a kind's schema in milliseconds.
    """
    source = _package_schemas(kubernetes_version)
    target = (
        _cache_home()
        / f"k8s-{kubernetes_version}-kv{version('kubernetes-validate')}-f{_CACHE_FORMAT}"
    )
    if (target / "pod-v1.json").is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home, as in some CI sandboxes
        target = Path(tempfile.gettempdir()) / "gitops-cache" / target.name
        if (target / "pod-v1.json").is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target.parent))
    try:
        definitions = json.loads((source / "_definitions.json").read_text(encoding="utf-8"))[
            "$defs"
        ]
        needs = {
            name: set(_DEFINITION_REF.findall(json.dumps(d))) for name, d in definitions.items()
        }
        for path in source.glob("*.json"):
            if path.name == "_definitions.json":
                continue
            schema = json.loads(path.read_text(encoding="utf-8"))
            (staging / path.name).write_text(
                _standalone(schema, definitions, needs), encoding="utf-8"
            )
        try:
            staging.rename(target)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def schema_locations(kubernetes_dir: Path, crd_dir: Path) -> list[str]:
    return [
        f"{kubernetes_dir}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
        f"{crd_dir}/{CRD_LAYOUT}",
    ]


@dataclass(frozen=True)
class SchemaProblem:
    """One object kubeconform refused: invalid, or without a schema."""

    filename: str
    kind: str
    name: str
    api_version: str
    missing: bool
    message: str


def kubeconform_command(
    kubeconform: str, locations: Sequence[str], files: Sequence[Path], jobs: int
) -> list[str]:
    command = [kubeconform, "-strict", "-output", "json", "-n", str(jobs)]
    for location in locations:
        command += ["-schema-location", location]
    return [*command, *map(str, files)]


def parse_kubeconform(output: str) -> list[SchemaProblem]:
    """kubeconform's JSON report as problems; refuses output it cannot read."""
    try:
        report = json.loads(output)
    except ValueError as error:
        raise SchemaSetupError(
            f"kubeconform printed something other than JSON: {output[:500]}"
        ) from error
    problems = []
    for item in report.get("resources") or []:
        status = item.get("status")
        if status not in {"statusInvalid", "statusError"}:
            continue
        message = _PREAMBLE.sub("", str(item.get("msg", "")))
        if not message:
            details = item.get("validationErrors") or []
            message = "; ".join(f"{d.get('path') or '/'}: {d.get('msg')}" for d in details)
        problems.append(
            SchemaProblem(
                filename=str(item.get("filename", "")),
                kind=str(item.get("kind", "")),
                name=str(item.get("name", "")),
                api_version=str(item.get("version", "")),
                missing="could not find schema" in message,
                message=message,
            )
        )
    return problems


class Kubeconform:
    """One kubeconform process over many files, started now and collected later."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def problems(self) -> list[SchemaProblem]:
        stdout, stderr = self._process.communicate()
        if self._process.returncode not in {0, 1}:
            raise SchemaSetupError(f"kubeconform failed: {stderr.strip() or stdout.strip()}")
        return parse_kubeconform(stdout)


@dataclass(frozen=True)
class BrokenSchema:
    path: Path
    message: str


def check_crd_schemas(crd_dir: Path) -> Iterator[BrokenSchema]:
    """Each CRD schema file that is not JSON, not a valid schema, or not in the layout."""
    if not crd_dir.is_dir():
        return
    for path in sorted(crd_dir.rglob("*")):
        if path.is_dir():
            continue
        relative = path.relative_to(crd_dir)
        if len(relative.parts) != 2 or not _CRD_FILE.match(relative.name):
            yield BrokenSchema(
                path, "not in the layout <group>/<lower-case kind>_<version>.json kubeconform reads"
            )
            continue
        try:
            schema: Any = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(schema, dict):
                yield BrokenSchema(path, "not a JSON schema: the top level must be an object")
                continue
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except ValueError as error:
            yield BrokenSchema(path, f"not JSON: {error}")
        except jsonschema.SchemaError as error:
            yield BrokenSchema(path, f"not a valid JSON schema: {error.message}")

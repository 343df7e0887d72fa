"""The CRD schemas kubeconform reads: valid, present for every non-core kind the repository
renders, and strict about unknown fields."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from manifests.rendering import ROOT, Rendering

SCHEMAS = ROOT / "schemas" / "crds"
CORE_GROUPS = {
    "",
    "apps",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
}


def schema_path(o: dict[str, Any]) -> Path:
    api_version: str = o["apiVersion"]
    kind: str = o["kind"]
    group, _, version = api_version.rpartition("/")
    return SCHEMAS / group / f"{kind.lower()}_{version}.json"


def custom_objects(renderings: list[Rendering]) -> list[dict[str, Any]]:
    return [
        o
        for rendering in renderings
        for o in rendering.objects
        if o["apiVersion"].rpartition("/")[0] not in CORE_GROUPS
    ]


def test_every_crd_schema_is_a_valid_json_schema() -> None:
    paths = sorted(SCHEMAS.rglob("*.json"))
    assert paths
    for path in paths:
        schema = json.loads(path.read_text())
        jsonschema.validators.validator_for(schema).check_schema(schema)
        assert schema["additionalProperties"] is False, path.name


def test_every_custom_kind_rendered_has_a_schema_it_satisfies(
    environments: dict[str, Rendering], argocd: Rendering
) -> None:
    objects = custom_objects([*environments.values(), argocd])
    assert {o["kind"] for o in objects} >= {"Application", "AppProject", "BackendConfig"}
    for o in objects:
        path = schema_path(o)
        assert path.exists(), f"no schema for {o['apiVersion']} {o['kind']} at {path}"
        jsonschema.validate(o, json.loads(path.read_text()))


def test_crd_schemas_reject_unknown_fields_in_spec(
    environments: dict[str, Rendering], argocd: Rendering
) -> None:
    seen = set()
    for o in custom_objects([*environments.values(), argocd]):
        if o["kind"] in seen:
            continue
        seen.add(o["kind"])
        mistyped = copy.deepcopy(o)
        mistyped["spec"]["unknownField"] = True
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(mistyped, json.loads(schema_path(o).read_text()))

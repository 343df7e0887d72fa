"""Objects the cluster tests put on the control plane: rendered Kustomize targets, and CRDs made
from the repository's kubeconform schemas (schemas/crds/<group>/<kind>_<version>.json)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

# What a CRD's structural schema may say; validation beyond it is kubeconform's job.
_KEPT = frozenset(
    {
        "type", "description", "enum", "minimum", "maximum", "minLength", "maxLength",
        "pattern", "minItems", "maxItems", "multipleOf", "minProperties", "maxProperties",
        "nullable", "title",
    }
)  # fmt: skip
_FORMATS = frozenset({"int32", "int64", "float", "double", "byte", "date", "date-time", "uri"})


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema node as a CRD's structural OpenAPI v3 schema."""
    branches = schema.get("anyOf") or schema.get("oneOf")
    if "type" not in schema and branches:
        types = {b.get("type") for b in branches}
        if types <= {"integer", "string"}:
            return {"x-kubernetes-int-or-string": True}
        return {"x-kubernetes-preserve-unknown-fields": True}
    out = {k: v for k, v in schema.items() if k in _KEPT}
    if isinstance(out.get("type"), list):
        kinds = [t for t in out["type"] if t != "null"]
        out["type"] = kinds[0]
        out["nullable"] = len(kinds) < len(schema["type"])
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if schema.get("format") in _FORMATS:
        out["format"] = schema["format"]
    if "properties" in schema:
        out["type"] = "object"
        out["properties"] = {k: structural(v) for k, v in schema["properties"].items()}
        if schema.get("required"):
            out["required"] = list(schema["required"])
    elif isinstance(schema.get("additionalProperties"), dict):
        out["type"] = "object"
        out["additionalProperties"] = structural(schema["additionalProperties"])
    elif out.get("type") == "object":
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in schema:
        out["type"] = "array"
        out["items"] = structural(schema["items"])
    if "type" not in out:
        return {"x-kubernetes-preserve-unknown-fields": True}
    return out


def _plural(kind: str) -> str:
    lower = kind.lower()
    if lower.endswith(("s", "x", "ch", "sh")):
        return f"{lower}es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return f"{lower[:-1]}ies"
    return f"{lower}s"


def crd_manifests(schemas: Path) -> list[dict[str, Any]]:
    """One CustomResourceDefinition per group and kind, with a version per schema file."""
    versions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(schemas.glob("*/*.json")):
        schema = yaml.safe_load(path.read_text())
        group = path.parent.name
        version = path.stem.rpartition("_")[2]
        kinds = ((schema.get("properties") or {}).get("kind") or {}).get("enum") or []
        kind = kinds[0] if kinds else path.stem.rpartition("_")[0]
        body = {
            k: v
            for k, v in schema.items()
            if k not in ("apiVersion", "kind", "metadata", "$schema")
        }
        properties = {
            k: v
            for k, v in (schema.get("properties") or {}).items()
            if k not in ("apiVersion", "kind", "metadata")
        }
        body["properties"] = properties
        body["required"] = [r for r in schema.get("required") or [] if r in properties]
        versions[(group, kind)].append(
            {
                "name": version,
                "served": True,
                "storage": False,
                "schema": {"openAPIV3Schema": structural(body)},
            }
        )
    crds = []
    for (group, kind), served in sorted(versions.items()):
        served[0]["storage"] = True
        plural = _plural(kind)
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": served,
                },
            }
        )
    return crds


def json_schema(openapi: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural OpenAPI v3 schema as the JSON Schema kubeconform reads.

    Objects that list their properties admit no others, as the API server prunes them; fields
    the CRD leaves open (`x-kubernetes-preserve-unknown-fields`) stay open.
    """
    out: dict[str, Any] = {
        k: v for k, v in openapi.items() if not k.startswith("x-kubernetes-") and k != "nullable"
    }
    if openapi.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if openapi.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in openapi:
        out["properties"] = {k: json_schema(v) for k, v in openapi["properties"].items()}
        if not openapi.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(openapi.get("additionalProperties"), dict):
        out["additionalProperties"] = json_schema(openapi["additionalProperties"])
    if isinstance(openapi.get("items"), dict):
        out["items"] = json_schema(openapi["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in openapi:
            out[key] = [json_schema(branch) for branch in openapi[key]]
    if "not" in openapi:
        out["not"] = json_schema(openapi["not"])
    return out


def crd_json_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each served version of a CRD as kubeconform's schema file, keyed by its path under
    schemas/crds (`<group>/<lower-case kind>_<version>.json`)."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    schemas = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = json_schema(version["schema"]["openAPIV3Schema"])
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        properties["kind"] = {"type": "string", "enum": [kind]}
        properties["metadata"] = {"type": "object"}
        schemas[f"{group}/{kind.lower()}_{version['name']}.json"] = {
            "$schema": "http://json-schema.org/draft-07/schema#",
            **schema,
        }
    return schemas

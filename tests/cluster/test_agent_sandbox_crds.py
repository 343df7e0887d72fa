"""kubeconform's schemas of the agent-sandbox kinds are the module's CRDs (`make agent-sandbox`),
converted, not written by hand: a new controller version shows up here as a diff."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml
from cluster.cluster_objects import crd_json_schemas
from servers.agent_sandbox_controller import crd_files
from servers.control_plane import ROOT

SCHEMAS = ROOT / "schemas/crds"
# The kinds the manifests render; claims and sandboxes are made at run time.
RENDERED = ("sandboxtemplate", "sandboxwarmpool")


@pytest.mark.parametrize("kind", RENDERED)
def test_committed_schema_is_the_module_crds_schema(kind: str) -> None:
    converted: dict[str, dict[str, object]] = {}
    for path in crd_files():
        converted.update(crd_json_schemas(yaml.safe_load(path.read_text())))
    [name] = [n for n in converted if n.split("/")[1].startswith(f"{kind}_")]

    committed = json.loads((SCHEMAS / name).read_text())

    assert committed == converted[name]


def test_a_template_field_unknown_to_the_crd_is_rejected() -> None:
    schema = json.loads(
        (SCHEMAS / "extensions.agents.x-k8s.io/sandboxtemplate_v1beta1.json").read_text()
    )
    template = {
        "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
        "kind": "SandboxTemplate",
        "metadata": {"name": "t"},
        "spec": {"podTemplate": {"spec": {"containers": []}}, "warmPool": 3},
    }
    with pytest.raises(jsonschema.ValidationError, match="warmPool"):
        jsonschema.validate(template, schema)

"""Schema validation with kubeconform: strict, offline, and a kind without a schema is an error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gitops.cli import main
from gitops.schemas import kubernetes_schemas, parse_kubeconform

WriteFiles = Callable[[dict[str, str]], Path]

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: agent-platform}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
        - name: api
          image: api:1.0
          imagePullPolicy: IfNotPresent
"""


def _report(root: Path, capsys: pytest.CaptureFixture[str], *paths: str) -> dict[str, Any]:
    main(["--root", str(root), "validate", "--format", "json", *paths])
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def _rules(report: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["rule"], []).append(finding)
    return found


def test_the_kubernetes_schemas_never_point_at_the_network() -> None:
    directory = kubernetes_schemas("1.34")
    text = (directory / "deployment-apps-v1.json").read_text()
    assert "kubernetes.io/api" not in text
    assert "_definitions.json" not in text
    assert '"#/$defs/io.k8s.api.core.v1.PodSpec"' in text


def test_a_misspelt_field_is_a_schema_finding(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"app.yaml": DEPLOYMENT.replace("imagePullPolicy", "imagePulPolicy")})
    [invalid] = _rules(_report(root, capsys, str(root / "app.yaml")))["SCHEMA001"]
    assert invalid["resource"] == "Deployment agent-platform/api"
    assert "imagePulPolicy" in invalid["message"]


def test_a_valid_object_has_no_schema_finding(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"app.yaml": DEPLOYMENT})
    rules = _rules(_report(root, capsys, str(root / "app.yaml")))
    assert "SCHEMA001" not in rules
    assert "SCHEMA002" not in rules


def test_a_kind_without_a_schema_is_an_error_that_says_where_the_schema_goes(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: x}\n"
    root = scratch_repo({"widget.yaml": widget})
    report = _report(root, capsys, str(root / "widget.yaml"))
    [missing] = _rules(report)["SCHEMA002"]
    assert missing["severity"] == "error"
    assert "example.com/v1 Widget" in missing["message"]
    assert "schemas/crds/<group>/<kind>_<version>.json" in missing["fix"]
    assert report["clean"] is False


def test_a_crd_schema_in_the_repository_validates_its_kind(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"size": {"type": "integer"}},
            },
        },
    }
    widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {colour: red}\n"
    root = scratch_repo(
        {"schemas/crds/example.com/widget_v1.json": json.dumps(schema), "widget.yaml": widget}
    )
    [invalid] = _rules(_report(root, capsys, str(root / "widget.yaml")))["SCHEMA001"]
    assert "colour" in invalid["message"]


def test_a_broken_crd_schema_file_is_reported(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "schemas/crds/example.com/widget_v1.json": '{"type": "objekt"}',
            "schemas/crds/example.com/Gadget-v1.json": "{}",
            "app.yaml": DEPLOYMENT,
        }
    )
    broken = _rules(_report(root, capsys, str(root / "app.yaml")))["SCHEMA003"]
    messages = {f["resource"]: f["message"] for f in broken}
    assert "not a valid JSON schema" in messages["schemas/crds/example.com/widget_v1.json"]
    assert "layout" in messages["schemas/crds/example.com/Gadget-v1.json"]


def test_unreadable_kubeconform_output_is_a_tool_error_not_a_pass() -> None:
    from gitops.schemas import SchemaSetupError

    with pytest.raises(SchemaSetupError, match="other than JSON"):
        parse_kubeconform("panic: runtime error")

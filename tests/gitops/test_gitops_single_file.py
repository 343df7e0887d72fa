"""A lone manifest file: judged by every rule its objects allow, the rest named as skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]


LONE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.example.com/web:latest"}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api, namespace: apps}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 1
  maxReplicas: 3
"""


def test_a_lone_file_is_judged_across_its_objects(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"app.yaml": LONE})
    code = main(["--root", str(root), "validate", "--format", "json", str(root / "app.yaml")])
    report = json.loads(capsys.readouterr().out)
    rules = {(f["rule"], f["resource"]) for f in report["findings"]}
    assert ("IMG002", "Deployment apps/web") in rules
    assert ("REF001", "Service apps/web") in rules
    assert ("REF002", "HorizontalPodAutoscaler apps/api") in rules
    lines = {f["rule"]: f["line"] for f in report["findings"]}
    assert lines["REF001"] == 11
    assert "IMG003" in report["skipped"]["app.yaml"]
    assert code == 1


def test_a_clean_lone_file_says_what_was_skipped_not_ok(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps}\n"})
    code = main(["--root", str(root), "validate", str(root / "ns.yaml")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ns.yaml: no findings"
    assert lines[1].startswith("  skipped ")
    assert "IMG003" in lines[1]
    assert code == 0


def test_a_name_yaml_reads_as_a_boolean_is_labelled_as_written(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: on, namespace: a}\n"}
    )
    main(["--root", str(root), "validate", "--format", "json", str(root / "cm.yaml")])
    report = json.loads(capsys.readouterr().out)
    assert all(f["resource"] != "ConfigMap a/True" for f in report["findings"])


SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers:
        - name: web
          image: registry.example.com/web:1.0
          envFrom: [{configMapRef: {name: web-settings}}]
"""


def test_one_object_per_file_is_not_blamed_for_its_neighbours(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"app/service.yaml": SERVICE, "app/deployment.yaml": DEPLOYMENT})
    for name in ("service.yaml", "deployment.yaml"):
        main(["--root", str(root), "validate", "--format", "json", str(root / "app" / name)])
        report = json.loads(capsys.readouterr().out)
        assert not {f["rule"] for f in report["findings"]} & {"REF001", "REF005", "REF006"}


def test_a_kustomization_file_is_judged_by_what_it_builds(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "app/service.yaml": SERVICE,
            "app/kustomization.yaml": "resources: [service.yaml]\n",
        }
    )
    code = main(
        ["--root", str(root), "validate", "--format", "json", str(root / "app/kustomization.yaml")]
    )
    report = json.loads(capsys.readouterr().out)
    assert report["targets"] == ["app"]
    # Rendered as a whole, the Service's missing pods are a finding; the file is no object.
    assert {(f["rule"], f["resource"]) for f in report["findings"]} == {
        ("REF001", "Service apps/web")
    }
    assert code == 1


def test_an_object_without_a_namespace_is_labelled_without_a_slash(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = DEPLOYMENT.replace(", namespace: apps", "")
    root = scratch_repo(
        {"app/deployment.yaml": pod, "app/kustomization.yaml": "resources: [deployment.yaml]\n"}
    )
    main(["--root", str(root), "validate", "--format", "json", str(root / "app")])
    messages = [f["message"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "ConfigMap web-settings is not here" in messages
    assert all("/" not in f.split(" is not here")[0] for f in messages if "is not here" in f)


def test_a_directory_named_twice_is_one_target(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {"app/service.yaml": SERVICE, "app/kustomization.yaml": "resources: [service.yaml]\n"}
    )
    app = str(root / "app")
    main(["--root", str(root), "validate", "--format", "json", app, f"{app}/kustomization.yaml"])
    report = json.loads(capsys.readouterr().out)
    assert report["targets"] == ["app"]
    assert len(report["findings"]) == 1


def test_a_reference_to_a_name_yaml_reads_as_a_boolean_finds_its_object(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = DEPLOYMENT.replace("web-settings", "on")
    configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: on, namespace: apps}\n"
    root = scratch_repo({"app.yaml": f"{pod}---\n{configmap}"})
    main(["--root", str(root), "validate", "--format", "json", str(root / "app.yaml")])
    messages = [f["message"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert not [m for m in messages if "ConfigMap" in m and "is not here" in m]

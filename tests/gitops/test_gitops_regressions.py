"""The three failures of the first, hand-made deployment, each caught by `gitops validate`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: agent-platform
resources:
  - workload.yaml
"""

# From the first deployment: Docker-in-Docker per agent, refused by Autopilot.
DOCKER_IN_DOCKER = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ai-agent-api
spec:
  selector: {matchLabels: {app: ai-agent-api}}
  template:
    metadata: {labels: {app: ai-agent-api}}
    spec:
      containers:
        - name: api-server
          image: gcr.io/ai-agent-platform-469401/api-server:v1.2
          securityContext:
            privileged: true
          volumeMounts:
            - name: docker-socket
              mountPath: /var/run/docker.sock
      volumes:
        - name: docker-socket
          hostPath:
            path: /var/run/docker.sock
"""

# From the first deployment: an image built on an Arm laptop, pinned to Arm nodes.
ARM64_IMAGE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ai-agent-api
spec:
  selector: {matchLabels: {app: ai-agent-api}}
  template:
    metadata: {labels: {app: ai-agent-api}}
    spec:
      nodeSelector:
        kubernetes.io/arch: arm64
      containers:
        - name: api-server
          image: gcr.io/ai-agent-platform-469401/api-server:v1.3-arm64
"""

# From the first deployment: Firestore answered 403, the KSA was never bound to a GSA.
FIRESTORE_WITHOUT_IDENTITY = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ai-agent-ksa
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ai-agent-api
spec:
  selector: {matchLabels: {app: ai-agent-api}}
  template:
    metadata: {labels: {app: ai-agent-api}}
    spec:
      serviceAccountName: ai-agent-ksa
      containers:
        - name: api-server
          image: gcr.io/ai-agent-platform-469401/api-server:v1.3-amd64
          env:
            - name: GOOGLE_CLOUD_PROJECT
              value: ai-agent-platform-469401
"""


def _validate(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = main(["--root", str(root), "validate", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _findings(report: dict[str, object], rule: str) -> list[dict[str, str]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return [f for f in findings if f["rule"] == rule]


def test_privileged_docker_socket_pod_is_refused_before_merge(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION,
            "overlays/dev/workload.yaml": DOCKER_IN_DOCKER,
        }
    )
    code, report = _validate(root, capsys)
    assert code == 1
    [privileged] = _findings(report, "AP001")
    assert privileged["resource"] == "Deployment agent-platform/ai-agent-api"
    host_path = _findings(report, "AP003")
    assert any("/var/run/docker.sock" in f["message"] for f in host_path)
    assert "docker.sock" in host_path[0]["fix"]


def test_arm64_image_and_node_pin_on_amd64_clusters_are_refused(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION,
            "overlays/dev/workload.yaml": ARM64_IMAGE,
        }
    )
    code, report = _validate(root, capsys)
    assert code == 1
    [pin] = _findings(report, "ARCH002")
    assert "arm64" in pin["message"]
    [image] = _findings(report, "ARCH003")
    assert "v1.3-arm64" in image["message"]


def test_firestore_client_without_an_annotated_service_account_is_refused(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION,
            "overlays/dev/workload.yaml": FIRESTORE_WITHOUT_IDENTITY,
        }
    )
    code, report = _validate(root, capsys)
    assert code == 1
    [identity] = _findings(report, "WI001")
    assert "ai-agent-ksa has no iam.gke.io/gcp-service-account" in identity["message"]
    assert "roles/iam.workloadIdentityUser" in identity["fix"]

"""The dashboard tells an operator how GKE's own objects are doing, through the health checks
argocd-cm gives the controller."""

from __future__ import annotations

import json
from typing import Any

import pytest
from argocd.gke import PLATFORM_NAMESPACE, play_gke
from servers.argocd import ArgoCD, synced_and_healthy

pytestmark = pytest.mark.cluster

DEV = "agent-platform-dev"


def health_of(application: dict[str, Any], kind: str) -> dict[str, Any]:
    for resource in (application.get("status") or {}).get("resources") or []:
        if resource["kind"] == kind:
            health: dict[str, Any] = resource.get("health") or {}
            return health
    return {}


def test_a_certificate_google_gave_up_on_degrades_dev_with_the_reason(
    bootstrapped: ArgoCD,
) -> None:
    failed = {
        "certificateStatus": "Provisioning",
        "domainStatus": [
            {"domain": "dev.agent-platform.example.com", "status": "FailedNotVisible"}
        ],
    }
    bootstrapped.plane.kubectl(
        "patch", "managedcertificate.networking.gke.io", "agent-platform",
        "-n", PLATFORM_NAMESPACE, "--type=merge", "-p", json.dumps({"status": failed}),
    )  # fmt: skip
    try:
        seen = bootstrapped.wait_until(
            DEV,
            lambda app: (app.get("status") or {}).get("health", {}).get("status") == "Degraded",
            what="dev Degraded",
        )
    finally:
        play_gke(bootstrapped.plane)
    certificate = health_of(seen, "ManagedCertificate")
    assert certificate["status"] == "Degraded"
    assert "dev.agent-platform.example.com: FailedNotVisible" in certificate["message"]
    bootstrapped.wait_until(DEV, synced_and_healthy, what="dev Healthy again")


def test_the_backend_config_says_what_guards_the_environment(bootstrapped: ArgoCD) -> None:
    backend = health_of(bootstrapped.application(DEV), "BackendConfig")
    assert backend == {"status": "Healthy", "message": "timeout 3600s"}

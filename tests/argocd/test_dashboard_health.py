"""The dashboard is useful to an operator: GKE's own objects report health through the checks
argocd-cm gives the controller, and Argo CD's API (what the dashboard reads) links each
Application and workload to its environment's platform and logs."""

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


def test_each_application_links_to_its_platform_and_logs(bootstrapped: ArgoCD) -> None:
    for name, host, project in (
        (DEV, "dev.agent-platform.example.com", "ai-agent-platform-dev-469401"),
        ("agent-platform-prod", "agent-platform.example.com", "ai-agent-platform-469401"),
    ):
        links = {
            link["title"]: link["url"]
            for link in bootstrapped.get(f"/api/v1/applications/{name}/links")["items"]
        }
        assert links["Platform"] == f"https://{host}"
        assert links["Logs"].startswith("https://console.cloud.google.com/logs/query;")
        assert links["Logs"].endswith(f"?project={project}")


def test_the_api_deployment_links_to_its_logs(bootstrapped: ArgoCD) -> None:
    query = (
        "?name=agent-platform&namespace=agent-platform&resourceName=agent-platform"
        "&version=v1&kind=Deployment&group=apps"
    )
    links = bootstrapped.get(f"/api/v1/applications/{DEV}/resource/links{query}")["items"]
    (logs,) = (link["url"] for link in links if link["title"] == "Logs")
    assert "namespace_name%3D%22agent-platform%22" in logs
    assert "app_kubernetes_io%2Fname%3D%22agent-platform%22" in logs
    assert logs.endswith("?project=ai-agent-platform-dev-469401")

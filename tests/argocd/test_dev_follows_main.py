"""Dev follows main: what is merged reaches the cluster without anyone acting, what is removed
from the overlay leaves it, and what the cluster owns (the HPA's replicas) is never a diff."""

from __future__ import annotations

from typing import Any

import pytest
from argocd.gke import PLATFORM_NAMESPACE, play_gke
from servers.argocd import ArgoCD, describe, synced_and_healthy

pytestmark = pytest.mark.cluster

DEV = "agent-platform-dev"
REGISTRY = "asia-northeast3-docker.pkg.dev/ai-agent-platform-469401/agent-platform"


def deployment(argocd: ArgoCD) -> dict[str, Any]:
    return argocd.plane.get_json("deployment", "agent-platform", "-n", PLATFORM_NAMESPACE)


def synced_at(revision: str) -> Any:
    def holds(application: dict[str, Any]) -> bool:
        sync = (application.get("status") or {}).get("sync") or {}
        return sync.get("revision") == revision and synced_and_healthy(application)

    return holds


def pin_api_image(argocd: ArgoCD, digest: str) -> str:
    """What the main pipeline does after a build: pin dev to the image and push to main."""
    argocd.repository.gitops(
        "set-image", "dev", f"agent-platform={REGISTRY}/agent-platform@{digest}"
    )
    return argocd.repository.push(f"Pin dev to agent-platform@{digest}")


def test_a_pinned_image_reaches_dev_without_anyone_acting(bootstrapped: ArgoCD) -> None:
    digest = "sha256:" + "a1" * 32
    revision = pin_api_image(bootstrapped, digest)

    bootstrapped.wait_until(DEV, synced_at(revision), what=f"dev Synced at {revision}")
    image = deployment(bootstrapped)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{REGISTRY}/agent-platform@{digest}"


def test_the_hpa_replica_count_is_never_a_diff(bootstrapped: ArgoCD) -> None:
    play_gke(bootstrapped.plane, replicas=3)
    revision = pin_api_image(bootstrapped, "sha256:" + "b2" * 32)

    application = bootstrapped.wait_until(DEV, synced_at(revision), what="dev Synced")
    assert deployment(bootstrapped)["spec"]["replicas"] == 3, describe(application)


def test_an_object_removed_from_the_overlay_leaves_the_cluster(bootstrapped: ArgoCD) -> None:
    assert bootstrapped.plane.exists("podmonitoring", "agent-platform", PLATFORM_NAMESPACE)
    kustomization = bootstrapped.repository.work / "overlays" / "dev" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        + """patches:
  - patch: |-
      $patch: delete
      apiVersion: monitoring.googleapis.com/v1
      kind: PodMonitoring
      metadata:
        name: agent-platform
        namespace: agent-platform
"""
    )
    revision = bootstrapped.repository.push("Stop scraping dev's API")

    bootstrapped.wait_until(DEV, synced_at(revision), what="dev Synced without PodMonitoring")
    assert not bootstrapped.plane.exists("podmonitoring", "agent-platform", PLATFORM_NAMESPACE)

"""The bootstrap hands over to Argo CD: from the root Application alone, Argo CD creates the
projects, then the Applications, and dev comes up Synced and Healthy."""

from __future__ import annotations

import pytest
from servers.argocd import ARGOCD_NAMESPACE, ArgoCD

pytestmark = pytest.mark.cluster


def test_root_application_creates_projects_before_applications(bootstrapped: ArgoCD) -> None:
    plane = bootstrapped.plane
    project = plane.get_json("appproject", "agent-platform", "-n", ARGOCD_NAMESPACE)
    created = project["metadata"]["creationTimestamp"]
    for name in ("agent-platform-dev", "agent-platform-prod"):
        application = bootstrapped.application(name)
        assert created < application["metadata"]["creationTimestamp"], name
    assert bootstrapped.status("agent-platform-root") == ("Synced", "Healthy")


def test_dev_runs_what_its_overlay_renders(bootstrapped: ArgoCD) -> None:
    assert bootstrapped.status("agent-platform-dev") == ("Synced", "Healthy")
    pods = bootstrapped.plane.get_json("pods", "-n", "agent-platform")["items"]
    assert pods, "dev's Deployment made no pods"
    assert all(p["status"]["phase"] == "Running" for p in pods)

"""The runs the platform starts in agent-runs are its own: Argo CD neither counts a run's Job,
pod or token Secret as drift nor flags them as orphans, while it still flags a stray object."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_platform.executors.base import Launch
from agent_platform.executors.job_spec import build_job, build_token_secret
from servers.argocd import ArgoCD, synced_and_healthy
from servers.waiting import wait_for

pytestmark = pytest.mark.cluster

DEV = "agent-platform-dev"
RUNS = "agent-runs"
PLATFORM_NAMESPACE = "agent-platform"


def orphan_warning(application: dict[str, Any]) -> str:
    conditions = (application.get("status") or {}).get("conditions") or []
    return next((c["message"] for c in conditions if c["type"] == "OrphanedResourceWarning"), "")


def start_run(argocd: ArgoCD, run_id: str) -> None:
    """What the platform's Kubernetes executor does, as the platform's ServiceAccount."""
    plane = argocd.plane
    identity = plane.service_account_kubeconfig("agent-platform", "agent-platform")
    template = plane.get_json("podtemplate", "agent-runner", "-n", RUNS)
    launch = Launch(
        run_id=run_id,
        agent_id="agent-1",
        owner_id="owner-1",
        run_token="run-token-for-the-test",
        timeout_seconds=600,
        platform_url="http://agent-platform.agent-platform.svc.cluster.local",
    )
    job = build_job(
        template,
        launch,
        template_name="agent-runner",
        ttl_seconds_after_finished=3600,
        deadline_margin_seconds=60,
    )
    created = json.loads(
        plane.kubectl(
            "create", "-n", RUNS, "-o", "json", "-f", "-",
            kubeconfig=identity, stdin=json.dumps(job),
        ).stdout
    )  # fmt: skip
    secret = build_token_secret(launch, created)
    plane.kubectl("create", "-n", RUNS, "-f", "-", kubeconfig=identity, stdin=json.dumps(secret))


def test_a_runs_objects_are_neither_drift_nor_orphans(bootstrapped: ArgoCD) -> None:
    plane = bootstrapped.plane
    start_run(bootstrapped, "argocd-run-1")
    wait_for(
        lambda: "Running" in plane.kubectl(
            "get", "pods", "-n", RUNS, "-l", "job-name=run-argocd-run-1",
            "-o", "jsonpath={.items[*].status.phase}",
        ).stdout,
        timeout=60,
        what="the run's pod to run",
    )  # fmt: skip
    # A ConfigMap made by hand in the destination namespace is an orphan: proof that Argo CD
    # looks for orphans, and counts the run as none.
    plane.kubectl("create", "configmap", "made-by-hand", "-n", PLATFORM_NAMESPACE)
    try:
        seen = bootstrapped.wait_until(
            DEV,
            lambda app: bool(orphan_warning(app)) and synced_and_healthy(app),
            what="the orphan warning for the ConfigMap alone",
        )
    finally:
        plane.kubectl("delete", "configmap", "made-by-hand", "-n", PLATFORM_NAMESPACE)

    assert orphan_warning(seen) == "Application has 1 orphaned resources"
    tracked = {(r["kind"], r["name"]) for r in seen["status"]["resources"]}
    assert not {k for k, _ in tracked} & {"Job", "Pod", "Secret"}
    bootstrapped.wait_until(DEV, lambda app: not orphan_warning(app), what="no orphans left")

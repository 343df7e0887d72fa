"""Prod syncs automatically only inside its sync window, and by hand at any time; and only the
release its Application names, which a promotion moves.

Dev and prod share the local API server, so this module, last in file order, first removes dev
from git: the root Application prunes it and dev's finalizer deletes what it deployed. The
windows are computed from the test's clock and committed to the project, as an operator would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from argocd.gke import PLATFORM_NAMESPACE
from servers.argocd import ARGOCD_NAMESPACE, ArgoCD, synced
from servers.waiting import wait_for

pytestmark = pytest.mark.cluster

PROD = "agent-platform-prod"
PROJECT = "apps/argocd/appproject-agent-platform.yaml"
REGISTRY = "asia-northeast3-docker.pkg.dev/ai-agent-platform-469401/agent-platform"


def set_window(argocd: ArgoCD, start: datetime, message: str) -> str:
    """Move prod's window to start at `start` (UTC, daily, one hour) and push it."""
    path = argocd.repository.work / PROJECT
    project = yaml.safe_load(path.read_text())
    (window,) = project["spec"]["syncWindows"]
    window.update(schedule=f"{start.minute} {start.hour} * * *", duration="1h", timeZone="UTC")
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    revision = argocd.repository.push(message)
    argocd.wait_until(
        "agent-platform-root",
        lambda app: (
            (app.get("status") or {}).get("sync", {}).get("revision") == revision and synced(app)
        ),
        what="the project's new window applied",
    )
    return revision


def prevented(argocd: ArgoCD) -> int:
    """How often the controller has held prod back for its window (it logs JSON lines)."""
    count = 0
    for line in argocd.log("argocd-application-controller").splitlines():
        if "Sync prevented by sync window" in line:
            entry = json.loads(line)
            count += entry.get("application") == PROD
    return count


def revision_and_status(application: dict[str, Any]) -> tuple[str, str]:
    sync = (application.get("status") or {}).get("sync") or {}
    return str(sync.get("revision", "")), str(sync.get("status", ""))


@pytest.fixture(scope="module")
def prod_alone(bootstrapped: ArgoCD) -> ArgoCD:
    kustomization = bootstrapped.repository.work / "apps/argocd/kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("  - application-agent-platform-dev.yaml\n", "")
    )
    bootstrapped.repository.push("Retire dev")
    wait_for(
        lambda: (
            not bootstrapped.plane.exists("application", "agent-platform-dev", ARGOCD_NAMESPACE)
            and not bootstrapped.plane.exists("namespace", PLATFORM_NAMESPACE, "")
        ),
        timeout=180,
        what="dev and its namespaces to be deleted",
    )
    return bootstrapped


def test_prod_stays_out_of_sync_outside_its_window(prod_alone: ArgoCD) -> None:
    before = prevented(prod_alone)
    set_window(prod_alone, datetime.now(UTC) + timedelta(hours=2), "Close prod's window")

    wait_for(lambda: prevented(prod_alone) > before + 1, timeout=60, what="prod held back")
    application = prod_alone.application(PROD)
    assert revision_and_status(application)[1] == "OutOfSync"
    assert "operationState" not in application["status"]
    assert not prod_alone.plane.exists("namespace", PLATFORM_NAMESPACE, "")


def test_an_operator_syncs_prod_by_hand_outside_its_window(prod_alone: ArgoCD) -> None:
    head = prod_alone.repository.head()
    # What `argocd app sync` asks of the controller through Argo CD's API.
    operation = {
        "operation": {
            "initiatedBy": {"username": "operator@example.com"},
            "sync": {"revision": head, "syncStrategy": {"hook": {}}},
        }
    }
    prod_alone.plane.kubectl(
        "patch", "application", PROD, "-n", ARGOCD_NAMESPACE, "--type=merge",
        "-p", json.dumps(operation),
    )  # fmt: skip

    application = prod_alone.wait_until(
        PROD, lambda app: revision_and_status(app) == (head, "Synced"), what="prod synced by hand"
    )
    assert application["status"]["operationState"]["phase"] == "Succeeded"
    assert prod_alone.plane.exists("deployment", "agent-platform", PLATFORM_NAMESPACE)


def test_prod_syncs_a_promotion_inside_its_window(prod_alone: ArgoCD) -> None:
    digest = "sha256:" + "c3" * 32
    path = prod_alone.repository.work / "overlays/prod/kustomization.yaml"
    path.write_text(path.read_text().replace("0" * 63 + "1", digest.removeprefix("sha256:")))
    promotion = prod_alone.repository.push("Promote agent-platform to prod")
    before = prevented(prod_alone)
    wait_for(lambda: prevented(prod_alone) > before + 1, timeout=60, what="prod held back")
    assert prod_alone.status(PROD)[0] == "OutOfSync"

    opened = set_window(prod_alone, datetime.now(UTC) - timedelta(minutes=1), "Open prod's window")

    prod_alone.wait_until(
        PROD, lambda app: revision_and_status(app) == (opened, "Synced"), what="prod synced"
    )
    deployment = prod_alone.plane.get_json("deployment", "agent-platform", "-n", PLATFORM_NAMESPACE)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"{REGISTRY}/agent-platform@{digest}"
    )
    assert promotion != opened


def compared_since(moment: str) -> Any:
    """Prod compared with git after `moment` (Argo CD's reconciledAt, RFC 3339 in UTC)."""

    def holds(application: dict[str, Any]) -> bool:
        return str((application.get("status") or {}).get("reconciledAt", "")) > moment

    return holds


def cost_centre(argocd: ArgoCD) -> str | None:
    deployment = argocd.plane.get_json("deployment", "agent-platform", "-n", PLATFORM_NAMESPACE)
    annotations = deployment["metadata"].get("annotations") or {}
    return annotations.get("agent-platform.dev/cost-centre")


def test_prod_runs_its_release_until_a_promotion_moves_it(prod_alone: ArgoCD) -> None:
    # Inside the window opened above, so only the release can hold prod back.
    release = prod_alone.repository.head()
    prod_alone.repository.gitops("release", "prod", release)
    prod_alone.repository.push(f"Release {release[:12]} to prod")
    prod_alone.wait_until(
        PROD, lambda app: revision_and_status(app) == (release, "Synced"), what="prod at release"
    )

    base = prod_alone.repository.work / "apps/agent-platform/base/kustomization.yaml"
    base.write_text(
        base.read_text() + "commonAnnotations:\n  agent-platform.dev/cost-centre: agents\n"
    )
    merged_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    merged = prod_alone.repository.push("Label the API with its cost centre")

    # Argo CD has the merge (the root Application follows main), and compared prod since.
    prod_alone.wait_until(
        "agent-platform-root",
        lambda app: revision_and_status(app) == (merged, "Synced"),
        what="the merge seen",
    )
    # Compared since, and settled on the release: main's head is not what prod syncs.
    prod_alone.wait_until(
        PROD,
        lambda app: (
            compared_since(merged_at)(app) and revision_and_status(app) == (release, "Synced")
        ),
        what="prod compared after the merge, still at its release",
    )
    assert cost_centre(prod_alone) is None

    prod_alone.repository.gitops("release", "prod", merged)
    prod_alone.repository.push(f"Release {merged[:12]} to prod")

    prod_alone.wait_until(
        PROD, lambda app: revision_and_status(app) == (merged, "Synced"), what="prod promoted"
    )
    assert cost_centre(prod_alone) == "agents"

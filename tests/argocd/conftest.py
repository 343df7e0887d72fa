"""One Argo CD per session, against its own control plane, set up the way the bootstrap leaves a
cluster: Argo CD's CRDs and settings from apps/argocd/install, the GKE add-ons' CRDs, and the
clusters `prod` (Argo CD's own, in-cluster) and `dev` (reached with argocd-k8s-auth and a Google
identity) registered by the Secrets the bootstrap plans, both pointing at the local API server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from cluster.cluster_objects import crd_manifests
from gitops.bootstrap import Environment, Target, steps
from gitops.firestore_indexes import IndexFile
from servers.argocd import ArgoCD, kustomize, running_argocd
from servers.control_plane import ROOT, ControlPlane, running_control_plane, wait_for

# Who Argo CD's Google identity is on the local API server: a ServiceAccount whose token the
# metadata server hands to argocd-k8s-auth in place of a Google access token.
GOOGLE_IDENTITY = ("kube-system", "argocd-google-identity")
PLATFORM_NAMESPACE = "agent-platform"


def environment(name: str) -> Environment:
    """An environment as its overlay states it (overlays/<name>/platform-environment.yaml)."""
    document = yaml.safe_load((ROOT / "overlays" / name / "platform-environment.yaml").read_text())
    data = document["data"]
    return Environment(name, Target(data["GCP_PROJECT"], data["GCP_REGION"]))


def bootstrap_cluster_secrets(plane: ControlPlane) -> list[dict[str, Any]]:
    """The cluster Secrets the bootstrap writes from prod's project, whose Argo CD serves dev
    too; another cluster's endpoint and CA are looked up, here the local API server's."""
    home, dev = environment("prod"), environment("dev")
    endpoint = plane.server.removeprefix("https://")
    authority = base64.b64encode(plane.ca_file.read_bytes()).decode()
    secrets = []
    for step in steps(home, [], indexes=IndexFile((), ()), environments=[dev, home]):
        if not step.key.startswith("argocd-cluster/"):
            continue
        values = {
            lookup.placeholder: endpoint if lookup.placeholder.endswith("-endpoint>") else authority
            for lookup in step.lookups
        }
        document = step.resolved(values).apply[0].document
        assert document is not None
        secrets.append(yaml.safe_load(document))
    return secrets


def general_purpose_node() -> dict[str, Any]:
    """A node without GKE Sandbox's taint, where the API's pods go (the control plane's one
    node takes only sandboxed runs)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "kwok-node-general",
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": "kwok-node-general",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "110"},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def _patch_status(plane: ControlPlane, kind: str, name: str, status: dict[str, Any]) -> None:
    # The GKE CRDs made from the kubeconform schemas have no status subresource.
    where = () if "." in kind else ("--subresource=status",)
    plane.kubectl(
        "patch", kind, name, "-n", PLATFORM_NAMESPACE, *where, "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def play_gke(plane: ControlPlane, *, replicas: int = 1) -> None:
    """What GKE's controllers, which the local control plane lacks, report once an environment
    is up: the load balancer's address on the Ingress, the certificate Active, and the HPA
    holding `replicas` (it writes the Deployment's scale, as the real one does)."""
    name = "agent-platform"
    _patch_status(plane, "ingress", name, {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}})
    _patch_status(
        plane,
        "managedcertificate.networking.gke.io",
        name,
        {"certificateStatus": "Active", "domainStatus": [{"domain": "x", "status": "Active"}]},
    )
    plane.kubectl("scale", "deployment", name, "-n", PLATFORM_NAMESPACE, f"--replicas={replicas}")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    _patch_status(
        plane,
        "horizontalpodautoscaler",
        name,
        {
            "currentReplicas": replicas,
            "desiredReplicas": replicas,
            "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                 "message": "recommended size matches current size", "lastTransitionTime": now},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
                 "message": "the HPA was able to compute the replica count",
                 "lastTransitionTime": now},
            ],
        },
    )  # fmt: skip


def crds() -> list[dict[str, Any]]:
    """The GKE add-ons' CRDs the overlays use (Argo CD's own come from its release)."""
    return [
        crd
        for crd in crd_manifests(ROOT / "schemas" / "crds")
        if crd["spec"]["group"] != "argoproj.io"
    ]


@pytest.fixture(scope="session")
def argocd_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_control_plane(tmp_path_factory.mktemp("argocd-control-plane")) as plane:
        plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(crds()))
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(general_purpose_node()))
        wait_for(
            lambda: "True" in plane.kubectl(
                "get", "node", "kwok-node-general",
                "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
            ).stdout,
            timeout=60,
            what="the general-purpose node to be Ready",
        )  # fmt: skip
        plane.kubectl(
            "taint", "node", "kwok-node-general", "node.kubernetes.io/not-ready:NoSchedule-"
        )
        namespace, name = GOOGLE_IDENTITY
        plane.kubectl("create", "serviceaccount", name, "-n", namespace)
        plane.kubectl(
            "create", "clusterrolebinding", "argocd-manager", "--clusterrole", "cluster-admin",
            f"--serviceaccount={namespace}:{name}",
        )  # fmt: skip
        yield plane


@pytest.fixture(scope="session")
def argocd(
    argocd_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArgoCD]:
    namespace, name = GOOGLE_IDENTITY
    token = argocd_plane.kubectl(
        "create", "token", name, "-n", namespace, "--duration=2h"
    ).stdout.strip()
    with running_argocd(
        argocd_plane,
        tmp_path_factory.mktemp("argocd"),
        bootstrap_cluster_secrets(argocd_plane),
        google_token=token,
    ) as running:
        yield running


def root_objects(argocd: ArgoCD) -> list[dict[str, Any]]:
    """What the bootstrap applies: the root Application and its project, from the repository."""
    rendered = kustomize(argocd.repository.work / "apps" / "argocd")
    return [o for o in rendered if o["metadata"]["name"] == "agent-platform-root"]


def synced_and_healthy(application: dict[str, Any]) -> bool:
    status = application.get("status") or {}
    return ((status.get("sync") or {}).get("status"), (status.get("health") or {}).get("status")) == (
        "Synced",
        "Healthy",
    )


def synced(application: dict[str, Any]) -> bool:
    return ((application.get("status") or {}).get("sync") or {}).get("status") == "Synced"


@pytest.fixture(scope="session")
def bootstrapped(argocd: ArgoCD) -> ArgoCD:
    """Argo CD after the bootstrap's last step, once dev is up: Synced, and Healthy once GKE
    has done its part."""
    argocd.plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(root_objects(argocd)))
    argocd.wait_until("agent-platform-dev", synced, what="dev Synced", timeout=180)
    wait_for(
        lambda: argocd.plane.exists("ingress", "agent-platform", PLATFORM_NAMESPACE),
        timeout=60,
        what="dev's Ingress",
    )
    play_gke(argocd.plane)
    argocd.wait_until("agent-platform-dev", synced_and_healthy, what="dev Synced and Healthy")
    return argocd

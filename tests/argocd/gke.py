"""What GKE does in a real cluster and the local control plane does not: the nodes the API's pods
run on, the add-ons' CRDs, and the status GKE's controllers report on the platform's objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cluster.cluster_objects import crd_manifests
from servers.control_plane import ROOT, ControlPlane, kwok_node

PLATFORM_NAMESPACE = "agent-platform"


def general_purpose_node() -> dict[str, Any]:
    """A node without GKE Sandbox's taint, where the API's pods go (the control plane's one
    node takes only sandboxed runs)."""
    return kwok_node("kwok-node-general")


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

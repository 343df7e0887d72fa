"""One Argo CD per session, against its own control plane, set up the way the bootstrap leaves a
cluster: Argo CD's CRDs and settings from apps/argocd/install, the GKE add-ons' CRDs, and the
clusters `prod` (Argo CD's own, in-cluster) and `dev` (reached with argocd-k8s-auth and a Google
identity, with the access the bootstrap grants there) registered by the Secrets the bootstrap
plans, both pointing at the local API server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from argocd.gke import PLATFORM_NAMESPACE, crds, general_purpose_node, play_gke
from cluster.cluster_setup import GVISOR_RUNTIME_CLASS
from gitops.bootstrap.plan import CloudProject, Environment, Step, steps
from gitops.bootstrap.shell import repository_in
from gitops.firestore_indexes import IndexFile
from servers.argocd import ArgoCD, root_objects, running_argocd, synced, synced_and_healthy
from servers.control_plane import ROOT, ControlPlane, running_control_plane
from servers.waiting import wait_for

# Who Argo CD's Google identity is on the local API server: a ServiceAccount whose token the
# metadata server hands to argocd-k8s-auth in place of a Google access token.
GOOGLE_IDENTITY = ("kube-system", "argocd-google-identity")


def environment(name: str) -> Environment:
    """An environment as its overlay states it (overlays/<name>/platform-environment.yaml)."""
    document = yaml.safe_load((ROOT / "overlays" / name / "platform-environment.yaml").read_text())
    data = document["data"]
    return Environment(name, CloudProject(data["GCP_PROJECT"], data["GCP_REGION"]))


def bootstrap_steps() -> list[Step]:
    """The bootstrap's plan from prod's project, whose Argo CD serves dev too."""
    home, dev = environment("prod"), environment("dev")
    return steps(
        home,
        [],
        indexes=IndexFile((), ()),
        environments=[dev, home],
        repository=repository_in(ROOT),
    )


def bootstrap_cluster_secrets(plane: ControlPlane) -> list[dict[str, Any]]:
    """The cluster Secrets the bootstrap writes; another cluster's endpoint and CA are looked up,
    here the local API server's."""
    endpoint = plane.server.removeprefix("https://")
    authority = base64.b64encode(plane.ca_file.read_bytes()).decode()
    secrets = []
    for step in bootstrap_steps():
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


def grant_remote_access(plane: ControlPlane) -> None:
    """The bootstrap's grant to Argo CD in dev's cluster, run against the local one: its Google
    identity is the ServiceAccount whose token the metadata server hands out."""
    (step,) = (s for s in bootstrap_steps() if s.key == "argocd-access/dev")
    namespace, name = GOOGLE_IDENTITY
    for command in step.apply:
        argv = list(command.argv[1:])
        at = argv.index("--context")
        del argv[at : at + 2]
        if "--user" in argv:
            at = argv.index("--user")
            argv[at : at + 2] = [f"--serviceaccount={namespace}:{name}"]
        if "--kustomize" in argv:
            at = argv.index("--kustomize") + 1
            argv[at] = str(ROOT / argv[at])
        plane.kubectl(*argv)


@pytest.fixture(scope="session")
def argocd_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with running_control_plane(tmp_path_factory.mktemp("argocd-control-plane")) as plane:
        plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(crds()))
        plane.kubectl("apply", "-f", "-", stdin=GVISOR_RUNTIME_CLASS)
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
        grant_remote_access(plane)
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

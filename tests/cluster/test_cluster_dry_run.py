"""Every rendered environment is accepted by a real Kubernetes 1.34 API server: a server-side dry
run through authentication, admission (Pod Security, quotas, defaults) and validation, with the
CRDs the manifests use installed from the repository's own schemas."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster.cluster_objects import crd_manifests
from servers.agent_sandbox_controller import crd_files
from servers.control_plane import ROOT, ControlPlane, kustomize_build
from servers.waiting import wait_for

pytestmark = pytest.mark.cluster

TARGETS = sorted(
    [p.parent for p in (ROOT / "overlays").glob("*/kustomization.yaml")]
    + [p.parent for p in (ROOT / "apps").glob("argocd/kustomization.yaml")]
)


@pytest.fixture(scope="module")
def crds_installed(control_plane: ControlPlane) -> None:
    # The agent-sandbox kinds are served by the module's own CRDs (cluster_setup.py).
    installed = {path.stem.partition("_")[0] for path in crd_files()}
    crds = [c for c in crd_manifests(ROOT / "schemas/crds") if c["spec"]["group"] not in installed]
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(crds))
    names = [crd["metadata"]["name"] for crd in crds]
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names)
    )


def test_every_environment_is_found() -> None:
    assert {p.name for p in TARGETS} >= {"dev", "prod"}


@pytest.mark.parametrize("target", TARGETS, ids=lambda p: str(p.relative_to(ROOT)))
def test_rendered_target_passes_a_server_side_dry_run(
    control_plane: ControlPlane, crds_installed: None, target: Path
) -> None:
    objects = kustomize_build(target)
    rendered = yaml.safe_dump_all(objects)
    # A dry run creates nothing, so the namespaces the objects go to must exist beforehand.
    for namespace in sorted({o["metadata"].get("namespace") for o in objects} - {None}):
        if not control_plane.exists("namespace", namespace, ""):
            control_plane.kubectl("create", "namespace", namespace)
    wait_for(
        lambda: _discoverable(control_plane, objects),
        timeout=60,
        what="every kind to be served",
    )

    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=rendered, check=False
    )

    assert result.returncode == 0, result.stderr
    applied = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(applied) == len(objects), result.stdout


def _discoverable(plane: ControlPlane, objects: list[dict[str, Any]]) -> bool:
    served = plane.kubectl("api-resources", "-o", "name", check=False).stdout.split()
    wanted: dict[str, set[str]] = defaultdict(set)
    for obj in objects:
        group = obj["apiVersion"].rpartition("/")[0]
        if group:
            wanted[group].add(obj["kind"])
    return all(any(name.endswith(f".{group}") for name in served) for group in wanted)


def test_crds_from_the_schemas_keep_their_kinds_and_versions() -> None:
    crds = {c["metadata"]["name"]: c for c in crd_manifests(ROOT / "schemas/crds")}
    backend = crds["backendconfigs.cloud.google.com"]
    assert backend["spec"]["names"]["kind"] == "BackendConfig"
    assert [v["name"] for v in backend["spec"]["versions"]] == ["v1"]
    assert "secretproviderclasses.secrets-store.csi.x-k8s.io" in crds

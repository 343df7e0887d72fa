"""The rendered environments as a real Kubernetes 1.34 API server admits them: every core object
applies, and pods made from the API's Deployment and the runner's PodTemplate pass Pod Security
"restricted", the runs' LimitRange and ResourceQuota, and the RuntimeClass admission."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from manifests.rendering import Rendering
from servers.control_plane import ControlPlane, running_control_plane
from servers.waiting import wait_for

pytestmark = pytest.mark.cluster

# API groups the API server serves by itself; the GKE, Argo CD and CSI kinds need their CRDs and
# are checked against schemas/crds instead.
SERVED_GROUPS = {
    "",
    "apps",
    "autoscaling",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
}
# What GKE Sandbox provides on Autopilot; the API server rejects pods naming a missing class.
GVISOR_RUNTIME_CLASS = {
    "apiVersion": "node.k8s.io/v1",
    "kind": "RuntimeClass",
    "metadata": {"name": "gvisor"},
    "handler": "runsc",
}


def served(rendering: Rendering) -> list[dict[str, Any]]:
    return [o for o in rendering.objects if o["apiVersion"].rpartition("/")[0] in SERVED_GROUPS]


def apply(plane: ControlPlane, objects: list[dict[str, Any]]) -> str:
    result = plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    return result.stderr


@pytest.fixture(scope="module")
def admitted(
    tmp_path_factory: pytest.TempPathFactory, environments: dict[str, Rendering]
) -> Iterator[tuple[ControlPlane, dict[str, str]]]:
    """A control plane holding each environment's objects, applied in turn as Argo CD would
    (namespaces first), with the warnings each apply printed."""
    with running_control_plane(tmp_path_factory.mktemp("admission")) as plane:
        apply(plane, [GVISOR_RUNTIME_CLASS])
        warnings = {}
        for name, rendering in environments.items():
            objects = served(rendering)
            first = [o for o in objects if o["kind"] == "Namespace"]
            rest = [o for o in objects if o["kind"] != "Namespace"]
            warnings[name] = apply(plane, first) + apply(plane, rest)
        wait_for(
            lambda: bool(
                plane.get_json("resourcequota", "agent-runs", "-n", "agent-runs")
                .get("status", {})
                .get("hard")
            ),
            timeout=60,
            what="the runs namespace's ResourceQuota to be counted",
        )
        yield plane, warnings


def pod_from(template: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    """A pod as a Job would make it; a copy, so the session's renderings stay untouched."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **copy.deepcopy(template["metadata"])},
        "spec": copy.deepcopy(template["spec"]),
    }


def dry_run(plane: ControlPlane, pod: dict[str, Any]) -> str:
    result = plane.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod), check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_every_core_object_is_accepted_without_warnings(
    admitted: tuple[ControlPlane, dict[str, str]], environment: Rendering
) -> None:
    plane, warnings = admitted
    name = environment.environment()["ENVIRONMENT"]
    assert "Warning" not in warnings[name], warnings[name]
    for o in served(environment):
        namespace = o["metadata"].get("namespace")
        where = ["-n", namespace] if namespace else []
        assert plane.get_json(o["kind"].lower(), o["metadata"]["name"], *where)


def test_runner_pod_is_admitted_as_restricted_within_quota(
    admitted: tuple[ControlPlane, dict[str, str]], environment: Rendering
) -> None:
    plane, _ = admitted
    template = environment.get("PodTemplate", "agent-runner", "agent-runs")["template"]
    stderr = dry_run(plane, pod_from(template, "agent-runs", "run-admission-check"))
    assert "PodSecurity" not in stderr


def test_api_pod_is_admitted_as_restricted(
    admitted: tuple[ControlPlane, dict[str, str]], environment: Rendering
) -> None:
    plane, _ = admitted
    template = environment.get("Deployment", "agent-platform", "agent-platform")["spec"]["template"]
    stderr = dry_run(plane, pod_from(template, "agent-platform", "api-admission-check"))
    assert "PodSecurity" not in stderr


def test_a_pod_that_may_escalate_privileges_is_refused_in_the_runs_namespace(
    admitted: tuple[ControlPlane, dict[str, str]], environment: Rendering
) -> None:
    plane, _ = admitted
    template = environment.get("PodTemplate", "agent-runner", "agent-runs")["template"]
    pod = pod_from(template, "agent-runs", "escalation-check")
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    result = plane.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(pod), check=False
    )
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr

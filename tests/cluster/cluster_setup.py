"""A control plane prepared the way Argo CD and GKE leave a cluster: the runner base and the
platform's identity and Role applied from the rendered bases, the gVisor RuntimeClass GKE Sandbox
provides, the agent-sandbox controller GKE's Agent Sandbox add-on runs (with its CRDs), and a
sandbox node (kwok) to schedule runs on. The cluster tests and the benchmarks share it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from servers.agent_sandbox_controller import running_agent_sandbox_controller
from servers.control_plane import ROOT, ControlPlane, kustomize_build, running_control_plane
from servers.waiting import wait_for

RUNS_NAMESPACE = "agent-runs"
PLATFORM_NAMESPACE = "agent-platform"
# What the platform base contributes to a cluster before the API can start runs.
PLATFORM_IDENTITY_KINDS = frozenset({"Namespace", "ServiceAccount", "Role", "RoleBinding"})
GVISOR_RUNTIME_CLASS = """\
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: gvisor
handler: runsc
scheduling:
  nodeSelector:
    sandbox.gke.io/runtime: gvisor
  tolerations:
    - key: sandbox.gke.io/runtime
      operator: Equal
      value: gvisor
      effect: NoSchedule
"""


def apply(plane: ControlPlane, objects: list[dict[str, Any]]) -> None:
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))


@contextlib.contextmanager
def prepared_control_plane(work_dir: Path) -> Iterator[ControlPlane]:
    with running_control_plane(work_dir) as plane, running_agent_sandbox_controller(plane):
        plane.kubectl("apply", "-f", "-", stdin=GVISOR_RUNTIME_CLASS)
        runner_base = kustomize_build(ROOT / "apps/agent-runner/base")
        platform_base = kustomize_build(ROOT / "apps/agent-platform/base")
        apply(plane, [o for o in runner_base if o["kind"] == "Namespace"])
        apply(plane, [o for o in platform_base if o["kind"] == "Namespace"])
        apply(plane, [o for o in runner_base if o["kind"] != "Namespace"])
        apply(plane, [o for o in platform_base if o["kind"] in PLATFORM_IDENTITY_KINDS])
        wait_for(
            lambda: _quota_counted(plane),
            timeout=60,
            what="the runs namespace's ResourceQuota to be counted",
        )
        yield plane


def _quota_counted(plane: ControlPlane) -> bool:
    quota = plane.get_json("resourcequota", RUNS_NAMESPACE, "-n", RUNS_NAMESPACE)
    return bool((quota.get("status") or {}).get("hard"))


def platform_kubeconfig_of(plane: ControlPlane) -> Path:
    """The API's own identity: a token of the `agent-platform` ServiceAccount."""
    return plane.service_account_kubeconfig(PLATFORM_NAMESPACE, "agent-platform")

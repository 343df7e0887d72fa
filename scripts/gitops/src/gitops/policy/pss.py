"""Pod Security Standards, "restricted" profile: what the namespaces enforce at admission."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gitops.manifests import mapping, sequence
from gitops.policy.model import Context, Severity, Violation, each_container, rule
from gitops.policy.workloads import Workload, container_name

RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)


def _effective(workload: Workload, container: Mapping[str, Any], key: str) -> Any:
    """A securityContext field as Kubernetes resolves it: the container's, else the pod's."""
    own = mapping(container.get("securityContext"))
    return own[key] if key in own else workload.security_context.get(key)


@rule(
    "PSS001",
    Severity.ERROR,
    "privilege escalation disabled",
    reads=("spec.containers[].securityContext.allowPrivilegeEscalation",),
    fix="set securityContext.allowPrivilegeEscalation: false on every container",
    doc="Pod Security restricted requires allowPrivilegeEscalation to be false.",
)
def privilege_escalation(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        if mapping(container.get("securityContext")).get("allowPrivilegeEscalation") is not False:
            yield Violation(
                workload.resource,
                f"container {container_name(container)} allows privilege escalation",
            )


@rule(
    "PSS002",
    Severity.ERROR,
    "runs as non-root",
    reads=("spec.securityContext.runAsNonRoot", "spec.containers[].securityContext.runAsUser"),
    fix="set securityContext.runAsNonRoot: true (and a non-zero runAsUser) on the pod",
    doc="Pod Security restricted requires runAsNonRoot and forbids runAsUser 0.",
)
def non_root(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        name = container_name(container)
        if _effective(workload, container, "runAsNonRoot") is not True:
            yield Violation(workload.resource, f"container {name} may run as root")
        if _effective(workload, container, "runAsUser") == 0:
            yield Violation(workload.resource, f"container {name} runs as user 0")


@rule(
    "PSS003",
    Severity.ERROR,
    "seccomp profile RuntimeDefault",
    reads=("spec.securityContext.seccompProfile.type",),
    fix="set securityContext.seccompProfile.type: RuntimeDefault on the pod",
    doc="Pod Security restricted requires a RuntimeDefault or Localhost seccomp profile.",
)
def seccomp(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        profile = mapping(_effective(workload, container, "seccompProfile")).get("type")
        if profile not in {"RuntimeDefault", "Localhost"}:
            yield Violation(
                workload.resource,
                f"container {container_name(container)} has seccomp profile {profile or 'unset'}",
            )


@rule(
    "PSS004",
    Severity.ERROR,
    "all capabilities dropped",
    reads=("spec.containers[].securityContext.capabilities",),
    fix="set securityContext.capabilities.drop: [ALL]; add back at most NET_BIND_SERVICE",
    doc="Pod Security restricted requires dropping ALL and adding nothing but NET_BIND_SERVICE.",
)
def dropped_capabilities(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        caps = mapping(mapping(container.get("securityContext")).get("capabilities"))
        name = container_name(container)
        if "ALL" not in sequence(caps.get("drop")):
            yield Violation(workload.resource, f"container {name} does not drop ALL capabilities")
        extra = [str(c) for c in sequence(caps.get("add")) if c != "NET_BIND_SERVICE"]
        if extra:
            yield Violation(workload.resource, f"container {name} adds {', '.join(extra)}")


@rule(
    "PSS005",
    Severity.ERROR,
    "only restricted volume types",
    reads=("spec.volumes[]",),
    fix="use configMap, secret, emptyDir, projected, downwardAPI, persistentVolumeClaim, "
    "ephemeral or csi volumes; no hostPath",
    doc="Pod Security restricted forbids hostPath and other node-bound volume types.",
)
def restricted_volumes(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        for volume in workload.volumes:
            for kind in set(volume) - {"name"}:
                if kind not in RESTRICTED_VOLUMES:
                    yield Violation(
                        workload.resource, f"volume {volume.get('name')} is of type {kind}"
                    )


RULES = (privilege_escalation, non_root, seccomp, dropped_capabilities, restricted_volumes)

"""What GKE Autopilot's admission controller refuses or silently rewrites."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from gitops.manifests import mapping, sequence
from gitops.policy.model import Context, Severity, Violation, each_container, rule
from gitops.policy.workloads import Workload, container_name
from gitops.quantity import GIB, MIB, QuantityError, parse_quantity

# Capabilities Autopilot lets a container add: the container runtime's defaults plus SYS_PTRACE.
AUTOPILOT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "NET_RAW",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
        "SYS_PTRACE",
    }
)
AUTOPILOT_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "hostPath",  # only read-only /var/log, see AP003
        "nfs",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
# Kubernetes' safe sysctl set, the only one Autopilot accepts, by the minor release that made
# each safe (the kubelet's and Pod Security baseline's list at that version).
SAFE_SYSCTLS_SINCE = {
    "kernel.shm_rmid_forced": 0,
    "net.ipv4.ip_local_port_range": 0,
    "net.ipv4.tcp_syncookies": 0,
    "net.ipv4.ping_group_range": 0,
    "net.ipv4.ip_unprivileged_port_start": 22,
    "net.ipv4.ip_local_reserved_ports": 27,
    "net.ipv4.tcp_keepalive_time": 29,
    "net.ipv4.tcp_fin_timeout": 29,
    "net.ipv4.tcp_keepalive_intvl": 29,
    "net.ipv4.tcp_keepalive_probes": 29,
    "net.ipv4.tcp_rmem": 32,
    "net.ipv4.tcp_wmem": 32,
}


def safe_sysctls(minor: int) -> frozenset[str]:
    """The safe sysctls of Kubernetes 1.<minor>."""
    return frozenset(name for name, since in SAFE_SYSCTLS_SINCE.items() if since <= minor)


MANAGED_NAMESPACES = frozenset(
    {"kube-system", "kube-public", "kube-node-lease", "gke-gmp-system", "gmp-system", "gmp-public"}
)
MANAGED_NAMESPACE_PREFIXES = ("gke-managed-", "gke-system")
NODE_LABELS = frozenset(
    {
        "cloud.google.com/compute-class",
        "cloud.google.com/gke-spot",
        "cloud.google.com/gke-accelerator",
        "cloud.google.com/gke-ephemeral-storage-local-ssd",
        "cloud.google.com/gke-placement-group",
        "cloud.google.com/gke-tpu-accelerator",
        "cloud.google.com/gke-tpu-topology",
        "cloud.google.com/machine-family",
        "cloud.google.com/reservation-name",
        "cloud.google.com/reservation-affinity",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "sandbox.gke.io/runtime",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    }
)
# General-purpose compute class bounds for a pod's requests, and memory GiB per vCPU. Autopilot
# adjusts requests outside them rather than refusing the pod, so these rules warn.
MIN_CPU, MAX_CPU = 0.05, 30.0
MIN_MEMORY, MAX_MEMORY = 52 * MIB, 110 * GIB
MIN_RATIO, MAX_RATIO = 1.0, 6.5


@rule(
    "AP001",
    Severity.ERROR,
    "no privileged containers",
    reads=("spec.containers[].securityContext.privileged",),
    fix="remove `privileged: true`; run builds and agents as ordinary pods "
    "(an agent run is a Job, not Docker-in-Docker)",
    doc="Autopilot rejects privileged pods outright.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-security#built-in-security",
)
def privileged(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        if mapping(container.get("securityContext")).get("privileged") is True:
            yield Violation(
                workload.resource, f"container {container_name(container)} is privileged"
            )


@rule(
    "AP002",
    Severity.ERROR,
    "no host namespaces",
    reads=("spec.hostNetwork", "spec.hostPID", "spec.hostIPC"),
    fix="delete hostNetwork/hostPID/hostIPC; expose ports through a Service instead",
    doc="Autopilot refuses pods that share the node's network, PID or IPC namespace.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-security#built-in-security",
)
def host_namespaces(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if workload.spec.get(key) is True:
                yield Violation(workload.resource, f"{key} is true")


def _host_path_volumes(workload: Workload) -> dict[str, str]:
    return {
        str(volume.get("name")): str(mapping(volume.get("hostPath")).get("path", ""))
        for volume in workload.volumes
        if "hostPath" in volume
    }


@rule(
    "AP003",
    Severity.ERROR,
    "hostPath only read-only under /var/log",
    reads=("spec.volumes[].hostPath.path", "spec.containers[].volumeMounts[].readOnly"),
    fix="replace the hostPath volume with emptyDir, a PVC or a CSI volume; a node socket such "
    "as /var/run/docker.sock is never available on Autopilot",
    doc="Autopilot allows hostPath only for reading /var/log; everything else is rejected.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-security#built-in-security",
)
def host_path(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        paths = _host_path_volumes(workload)
        if not paths:
            continue
        for name, path in paths.items():
            normalised = path.rstrip("/") or "/"
            if normalised != "/var/log" and not normalised.startswith("/var/log/"):
                yield Violation(workload.resource, f"volume {name} mounts host path {path}")
        for container in workload.containers:
            for mount in sequence(container.get("volumeMounts")):
                mount = mapping(mount)
                if mount.get("name") in paths and mount.get("readOnly") is not True:
                    yield Violation(
                        workload.resource,
                        f"container {container_name(container)} mounts hostPath volume "
                        f"{mount.get('name')} writable",
                    )


@rule(
    "AP004",
    Severity.ERROR,
    "no hostPort",
    reads=("spec.containers[].ports[].hostPort",),
    fix="delete hostPort and reach the container through a Service",
    doc="Autopilot rejects pods that bind ports on the node.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-security#built-in-security",
)
def host_port(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        for port in sequence(container.get("ports")):
            if mapping(port).get("hostPort"):
                yield Violation(
                    workload.resource,
                    f"container {container_name(container)} binds hostPort "
                    f"{mapping(port).get('hostPort')}",
                )


@rule(
    "AP005",
    Severity.ERROR,
    "capabilities within Autopilot's allowed set",
    reads=("spec.containers[].securityContext.capabilities.add",),
    fix="drop the capability from securityContext.capabilities.add; Autopilot allows only the "
    "runtime defaults and SYS_PTRACE",
    doc="Autopilot rejects containers that add SYS_ADMIN, NET_ADMIN and other powerful ones.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-security#capabilities",
)
def capabilities(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        added = sequence(
            mapping(mapping(container.get("securityContext")).get("capabilities")).get("add")
        )
        for capability in added:
            # Kubernetes compares the names as written: CAP_CHOWN is not CHOWN to admission.
            name = str(capability)
            if name not in AUTOPILOT_CAPABILITIES:
                hint = (
                    f" (write it as {name.removeprefix('CAP_')})" if name.startswith("CAP_") else ""
                )
                yield Violation(
                    workload.resource, f"container {container_name(container)} adds {name}{hint}"
                )


_VOLUME_FIELDS = frozenset({"name"})


@rule(
    "AP006",
    Severity.ERROR,
    "volume types Autopilot supports",
    reads=("spec.volumes[]",),
    fix="use configMap, secret, emptyDir, projected, downwardAPI, persistentVolumeClaim, "
    "ephemeral or csi volumes",
    doc="Autopilot refuses in-tree volume plugins such as gcePersistentDisk, iscsi or flexVolume.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-overview#unsupported_volumes",
)
def volume_types(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        for volume in workload.volumes:
            for kind in set(volume) - _VOLUME_FIELDS:
                if kind not in AUTOPILOT_VOLUMES:
                    yield Violation(
                        workload.resource, f"volume {volume.get('name')} is of type {kind}"
                    )


@rule(
    "AP007",
    Severity.ERROR,
    "only safe sysctls",
    reads=("spec.securityContext.sysctls[].name",),
    fix="remove the sysctl; Autopilot accepts only Kubernetes' safe sysctl set",
    doc="Unsafe sysctls need node configuration that Autopilot does not allow.",
    see="https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/#safe-and-unsafe-sysctls",
)
def sysctls(ctx: Context) -> Iterator[Violation]:
    safe = safe_sysctls(ctx.settings.kubernetes_minor)
    for workload in ctx.workloads:
        for sysctl in sequence(workload.security_context.get("sysctls")):
            name = str(mapping(sysctl).get("name", ""))
            if name not in safe:
                yield Violation(
                    workload.resource,
                    f"sysctl {name} is not in Kubernetes {ctx.settings.kubernetes_version}'s "
                    "safe set",
                )


def _managed(namespace: str) -> bool:
    return namespace in MANAGED_NAMESPACES or namespace.startswith(MANAGED_NAMESPACE_PREFIXES)


@rule(
    "AP008",
    Severity.ERROR,
    "nothing in GKE-managed namespaces",
    reads=("metadata.namespace",),
    fix="move the object to one of the platform's namespaces (agent-platform, agent-runs, argocd)",
    doc="Autopilot owns kube-system and the gke-/gmp- namespaces and rejects changes there.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-security#managed-namespaces",
)
def managed_namespaces(ctx: Context) -> Iterator[Violation]:
    for resource in ctx.resources:
        if _managed(resource.namespace):
            yield Violation(resource, f"namespace {resource.namespace} is managed by GKE")


def _node_keys(spec: Mapping[str, Any]) -> list[str]:
    keys = [str(key) for key in mapping(spec.get("nodeSelector"))]
    required = mapping(
        mapping(mapping(spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    for term in sequence(required.get("nodeSelectorTerms")):
        for expression in sequence(mapping(term).get("matchExpressions")):
            keys.append(str(mapping(expression).get("key", "")))
    return keys


@rule(
    "AP009",
    Severity.ERROR,
    "node selectors on labels Autopilot allows",
    reads=("spec.nodeSelector", "spec.affinity.nodeAffinity"),
    fix="select nodes only by compute class, Spot, architecture, OS, zone/region, accelerator "
    "or the gVisor runtime label; node pools do not exist on Autopilot",
    doc="Autopilot rejects pods that select nodes by other labels, such as a node pool name.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-overview#node_selectors",
)
def node_selectors(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        for key in _node_keys(workload.spec):
            if key not in NODE_LABELS:
                yield Violation(workload.resource, f"selects nodes by {key}")


def _pod_requests(workload: Workload) -> tuple[float, float] | None:
    cpu = memory = 0.0
    for container in (mapping(c) for c in sequence(workload.spec.get("containers"))):
        requests = mapping(mapping(container.get("resources")).get("requests"))
        if "cpu" not in requests or "memory" not in requests:
            return None
        try:
            cpu += parse_quantity(requests["cpu"])
            memory += parse_quantity(requests["memory"])
        except QuantityError:
            return None
    return cpu, memory


@rule(
    "AP010",
    Severity.WARNING,
    "pod requests within Autopilot's range",
    reads=("spec.containers[].resources.requests",),
    fix="request between 50m and 30 CPU and between 52Mi and 110Gi memory per pod",
    doc="Autopilot rewrites requests outside the general-purpose range; git would lie.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests",
)
def request_range(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        totals = _pod_requests(workload)
        if totals is None:
            continue
        cpu, memory = totals
        if not MIN_CPU <= cpu <= MAX_CPU:
            yield Violation(workload.resource, f"the pod requests {cpu:g} CPU")
        if not MIN_MEMORY <= memory <= MAX_MEMORY:
            yield Violation(workload.resource, f"the pod requests {memory / MIB:g}Mi memory")


@rule(
    "AP011",
    Severity.WARNING,
    "CPU:memory ratio between 1:1 and 1:6.5",
    reads=("spec.containers[].resources.requests",),
    fix="request between 1Gi and 6.5Gi of memory per CPU (e.g. 500m with 512Mi to 3.25Gi)",
    doc="Autopilot raises whichever request is short to fit the ratio, which costs money silently.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests",
)
def request_ratio(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        totals = _pod_requests(workload)
        if totals is None or totals[0] <= 0:
            continue
        ratio = totals[1] / GIB / totals[0]
        if not MIN_RATIO <= ratio <= MAX_RATIO:
            yield Violation(workload.resource, f"the pod has {ratio:.2f}Gi memory per CPU")


@rule(
    "AP012",
    Severity.WARNING,
    "every container requests CPU and memory",
    reads=("spec.containers[].resources.requests",),
    fix="set resources.requests.cpu and resources.requests.memory on every container",
    doc="Without requests Autopilot applies its defaults (0.5 CPU, 2Gi), not what git says.",
    see="https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests",
)
def requests_declared(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        for container in (mapping(c) for c in sequence(workload.spec.get("containers"))):
            requests = mapping(mapping(container.get("resources")).get("requests"))
            missing = [key for key in ("cpu", "memory") if key not in requests]
            if missing:
                yield Violation(
                    workload.resource,
                    f"container {container_name(container)} requests no {' or '.join(missing)}",
                )
            for key in ("cpu", "memory"):
                if key in requests:
                    try:
                        parse_quantity(requests[key])
                    except QuantityError as error:
                        yield Violation(workload.resource, str(error))


# Resources GKE calls unsafe to intercept with an admission webhook: a webhook that fails or is
# slow there breaks node registration and authentication for the whole cluster, so Autopilot
# refuses such webhook configurations. (group, resource); "*" matches any.
UNSAFE_WEBHOOK_RESOURCES = (
    ("", "nodes"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("certificates.k8s.io", "certificatesigningrequests"),
)
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _intercepts(webhook_rule: Mapping[str, Any], group: str, resource: str) -> bool:
    groups = [str(g) for g in sequence(webhook_rule.get("apiGroups"))]
    resources = [str(r).split("/")[0] for r in sequence(webhook_rule.get("resources"))]
    return (group in groups or "*" in groups) and (resource in resources or "*" in resources)


@rule(
    "AP013",
    Severity.ERROR,
    "no admission webhooks on nodes or authentication",
    reads=("webhooks[].rules[].apiGroups", "webhooks[].rules[].resources"),
    fix="narrow the webhook's rules to your own resources; never intercept nodes, tokenreviews, "
    "subjectaccessreviews or certificatesigningrequests",
    doc="Autopilot refuses webhooks that intercept nodes, token and access reviews or CSRs: one "
    "failing webhook there stops nodes joining and every request authenticating.",
    see="https://cloud.google.com/kubernetes-engine/docs/how-to/optimize-webhooks",
)
def unsafe_webhooks(ctx: Context) -> Iterator[Violation]:
    for resource in (r for kind in WEBHOOK_KINDS for r in ctx.kind(kind)):
        for webhook in (mapping(w) for w in sequence(resource.body.get("webhooks"))):
            caught = sorted(
                {
                    f"{group or 'core'}/{name}"
                    for webhook_rule in (mapping(r) for r in sequence(webhook.get("rules")))
                    for group, name in UNSAFE_WEBHOOK_RESOURCES
                    if _intercepts(webhook_rule, group, name)
                }
            )
            if caught:
                yield Violation(
                    resource, f"webhook {webhook.get('name')} intercepts {', '.join(caught)}"
                )


RULES = (
    privileged,
    host_namespaces,
    host_path,
    host_port,
    capabilities,
    volume_types,
    sysctls,
    managed_namespaces,
    node_selectors,
    request_range,
    request_ratio,
    requests_declared,
    unsafe_webhooks,
)

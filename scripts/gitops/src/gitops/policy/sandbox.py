"""The agent-run sandbox: what every pod in the runs namespace must be, and its network fence."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from gitops.manifests import Resource, mapping, sequence
from gitops.policy.model import Context, Severity, Violation, rule
from gitops.policy.workloads import Workload, container_name

GVISOR = "gvisor"
METADATA_SERVER = ipaddress.ip_address("169.254.169.254")
# Egress limited to DNS cannot reach the metadata server's HTTP endpoint.
_DNS_PORTS = frozenset({53, "dns", "dns-tcp"})


def sandboxed(ctx: Context) -> Iterator[Workload]:
    yield from ctx.pods_by_namespace.get(ctx.settings.sandbox_namespace, ())


@rule(
    "SBX001",
    Severity.ERROR,
    "agent runs in GKE Sandbox",
    reads=("spec.runtimeClassName", "gitops.yaml gvisorEnvironments"),
    fix=f"set runtimeClassName: {GVISOR} on the agent-runner pod template",
    doc="Agents run model-written shell commands; gVisor puts a kernel between them and the node.",
)
def gvisor(ctx: Context) -> Iterator[Violation]:
    if ctx.environment not in ctx.settings.gvisor_environments:
        return
    for workload in sandboxed(ctx):
        if workload.spec.get("runtimeClassName") != GVISOR:
            yield Violation(workload.resource, f"runtimeClassName is not {GVISOR}")


@rule(
    "SBX002",
    Severity.ERROR,
    "no Kubernetes API token in agent runs",
    reads=("spec.automountServiceAccountToken",),
    fix="set automountServiceAccountToken: false on the pod spec",
    doc="An agent must not be able to talk to the Kubernetes API.",
)
def no_token(ctx: Context) -> Iterator[Violation]:
    for workload in sandboxed(ctx):
        if workload.spec.get("automountServiceAccountToken") is not False:
            yield Violation(workload.resource, "automountServiceAccountToken is not false")


def _secret_uses(workload: Workload) -> Iterator[str]:
    for container in workload.containers:
        name = container_name(container)
        for env in sequence(container.get("env")):
            if "secretKeyRef" in mapping(mapping(mapping(env).get("valueFrom"))):
                yield f"container {name} reads env {mapping(env).get('name')} from a Secret"
        for source in sequence(container.get("envFrom")):
            if "secretRef" in mapping(source):
                yield f"container {name} imports a Secret with envFrom"
    for volume in workload.volumes:
        driver = str(mapping(volume.get("csi")).get("driver", ""))
        if "secret" in volume or driver.startswith("secrets-store"):
            yield f"volume {volume.get('name')} mounts secrets"
        for source in sequence(mapping(volume.get("projected")).get("sources")):
            if "secret" in mapping(source) or "serviceAccountToken" in mapping(source):
                yield f"volume {volume.get('name')} projects a secret or token"


@rule(
    "SBX003",
    Severity.ERROR,
    "no secrets in agent runs",
    reads=("spec.containers[].env", "spec.containers[].envFrom", "spec.volumes[]"),
    fix="remove the Secret; a run gets only its run-scoped token from the platform and reaches "
    "Claude through the gateway",
    doc="Whatever a sandbox can read, a prompt-injected agent can exfiltrate.",
)
def no_secrets(ctx: Context) -> Iterator[Violation]:
    for workload in sandboxed(ctx):
        for use in _secret_uses(workload):
            yield Violation(workload.resource, use)


def _deadline(workload: Workload) -> object:
    if workload.resource.kind == "SandboxTemplate":
        # A warm pod's own deadline would count the time it waits in the pool; the platform
        # puts each run's deadline on its SandboxClaim (spec.lifecycle.shutdownTime) instead,
        # and the controller deletes the sandbox when it passes.
        return 1
    if workload.resource.kind == "Job":
        job = mapping(workload.resource.body.get("spec")).get("activeDeadlineSeconds")
        if job is not None:
            return job
    return workload.spec.get("activeDeadlineSeconds")


@rule(
    "SBX004",
    Severity.ERROR,
    "agent runs have a deadline",
    reads=("spec.activeDeadlineSeconds",),
    fix="set activeDeadlineSeconds on the pod template (the platform lowers it per run)",
    doc="A stuck agent must not hold a node and a budget forever.",
)
def deadline(ctx: Context) -> Iterator[Violation]:
    for workload in sandboxed(ctx):
        value = _deadline(workload)
        if not isinstance(value, int) or value <= 0:
            yield Violation(workload.resource, "no activeDeadlineSeconds")


def _policies(ctx: Context) -> list[Resource]:
    namespace = ctx.settings.sandbox_namespace
    return [p for p in ctx.kind("NetworkPolicy") if p.namespace == namespace]


def _is_default_deny_egress(policy: Resource) -> bool:
    spec = mapping(policy.body.get("spec"))
    selector = mapping(spec.get("podSelector"))
    return (
        not selector.get("matchLabels")
        and not selector.get("matchExpressions")
        and "Egress" in sequence(spec.get("policyTypes"))
        and not sequence(spec.get("egress"))
    )


@rule(
    "SBX005",
    Severity.ERROR,
    "default-deny egress in the runs namespace",
    reads=("NetworkPolicy.spec.podSelector", "NetworkPolicy.spec.policyTypes"),
    fix="add a NetworkPolicy with podSelector: {}, policyTypes: [Egress] and no egress rules "
    "to the runs namespace; allow the API and DNS in separate policies",
    doc="Agents reach only the platform API and DNS unless a run explicitly opts in.",
    whole_render=True,
)
def default_deny(ctx: Context) -> Iterator[Violation]:
    workloads = list(sandboxed(ctx))
    if workloads and not any(_is_default_deny_egress(p) for p in _policies(ctx)):
        yield Violation(
            workloads[0].resource,
            f"namespace {ctx.settings.sandbox_namespace} has no default-deny egress NetworkPolicy",
        )


def _reaches_metadata(peer: Mapping[str, Any]) -> bool:
    block = mapping(peer.get("ipBlock"))
    if not block:
        return False
    try:
        network = ipaddress.ip_network(str(block.get("cidr", "")), strict=False)
        excepted = [
            ipaddress.ip_network(str(e), strict=False) for e in sequence(block.get("except"))
        ]
    except ValueError:
        return False
    return METADATA_SERVER in network and not any(METADATA_SERVER in e for e in excepted)


@rule(
    "SBX006",
    Severity.ERROR,
    "no egress to the metadata server from agent runs",
    reads=("NetworkPolicy.spec.egress[].to",),
    fix="add 169.254.169.254/32 to the ipBlock's except list, or narrow the rule to named peers",
    doc="The metadata server hands out the node's or the KSA's Google credentials.",
)
def metadata_server(ctx: Context) -> Iterator[Violation]:
    for policy in _policies(ctx):
        for egress in (
            mapping(e) for e in sequence(mapping(policy.body.get("spec")).get("egress"))
        ):
            ports = [mapping(port).get("port") for port in sequence(egress.get("ports"))]
            if ports and all(port in _DNS_PORTS for port in ports):
                continue  # the metadata server also answers DNS; its HTTP stays closed
            peers = [mapping(peer) for peer in sequence(egress.get("to"))]
            if not peers:
                yield Violation(policy, "an egress rule allows every destination")
            elif any(_reaches_metadata(peer) for peer in peers):
                yield Violation(policy, f"an egress rule allows {METADATA_SERVER}")


@rule(
    "SBX007",
    Severity.ERROR,
    "read-only root filesystem in agent runs",
    reads=("spec.containers[].securityContext.readOnlyRootFilesystem",),
    fix="set readOnlyRootFilesystem: true and mount an emptyDir for the workspace and /tmp",
    doc="An agent writes only to its workspace; the image stays as built.",
)
def read_only_root(ctx: Context) -> Iterator[Violation]:
    for workload in sandboxed(ctx):
        for container in workload.containers:
            security = mapping(container.get("securityContext"))
            if security.get("readOnlyRootFilesystem") is not True:
                yield Violation(
                    workload.resource,
                    f"container {container_name(container)} has a writable root filesystem",
                )


def _in_runs(ctx: Context, kind: str) -> list[Resource]:
    return [r for r in ctx.kind(kind) if r.namespace == ctx.settings.sandbox_namespace]


@rule(
    "SBX008",
    Severity.ERROR,
    "a warm pool of agent runs is made from a SandboxTemplate in git",
    reads=("SandboxWarmPool.spec.sandboxTemplateRef.name",),
    fix="name a SandboxTemplate of the runs namespace in spec.sandboxTemplateRef.name, or add it",
    doc="The template is where the sandbox rules see a warm pod; a pool without one escapes them.",
    whole_render=True,
)
def warm_pool_template(ctx: Context) -> Iterator[Violation]:
    templates = {t.name for t in _in_runs(ctx, "SandboxTemplate")}
    for pool in _in_runs(ctx, "SandboxWarmPool"):
        ref = str(mapping(mapping(pool.body.get("spec")).get("sandboxTemplateRef")).get("name", ""))
        if ref not in templates:
            yield Violation(pool, f"SandboxTemplate {ref or '(none)'} is not in the render")


@rule(
    "SBX009",
    Severity.ERROR,
    "agent-run sandboxes keep the runs' NetworkPolicies and take no env from a claim",
    reads=("SandboxTemplate.spec.networkPolicyManagement", "spec.envVarsInjectionPolicy"),
    fix="set networkPolicyManagement: Unmanaged and envVarsInjectionPolicy: Disallowed (or omit "
    "the latter) on the SandboxTemplate",
    doc="A Managed template gets the controller's own NetworkPolicy, which opens the internet; a "
    "claim's env would put values into the pod spec.",
)
def template_fence(ctx: Context) -> Iterator[Violation]:
    for template in _in_runs(ctx, "SandboxTemplate"):
        spec = mapping(template.body.get("spec"))
        if spec.get("networkPolicyManagement") != "Unmanaged":
            yield Violation(template, "networkPolicyManagement is not Unmanaged")
        if spec.get("envVarsInjectionPolicy", "Disallowed") != "Disallowed":
            yield Violation(template, "claims may inject environment variables")


RULES = (
    gvisor,
    no_token,
    no_secrets,
    deadline,
    default_deny,
    metadata_server,
    read_only_root,
    warm_pool_template,
    template_fence,
)

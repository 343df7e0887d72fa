"""Objects that name other objects: the named one must be in the same render."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from gitops.manifests import Resource, mapping, scalar_text, sequence
from gitops.policy.model import Context, Severity, Violation, object_label, rule
from gitops.policy.workloads import Workload, selects, selects_map

# ClusterRoles every cluster has; bindings to them need nothing in git.
BUILTIN_CLUSTER_ROLES = frozenset({"admin", "cluster-admin", "edit", "view"})


def _pods_in(ctx: Context, namespace: str) -> tuple[Workload, ...]:
    return ctx.pods_by_namespace.get(namespace, ())


@rule(
    "REF001",
    Severity.ERROR,
    "Services select pods",
    reads=("Service.spec.selector", "spec.template.metadata.labels"),
    fix="make the Service's selector match the pod template labels of a workload in its namespace",
    doc="A Service that selects nothing has no endpoints: the load balancer answers 502.",
)
def service_selects(ctx: Context) -> Iterator[Violation]:
    if not ctx.holds_pods():
        return
    for service in ctx.kind("Service"):
        selector = mapping(mapping(service.body.get("spec")).get("selector"))
        if not selector:
            continue
        if not any(selects_map(selector, w.labels) for w in _pods_in(ctx, service.namespace)):
            yield Violation(service, f"selector {dict(selector)} matches no pods")


_SCALABLE = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


def hpa_target(ctx: Context, hpa: Resource) -> Resource | None:
    ref = mapping(mapping(hpa.body.get("spec")).get("scaleTargetRef"))
    return ctx.find(str(ref.get("kind", "")), hpa.namespace, scalar_text(ref.get("name")))


@rule(
    "REF002",
    Severity.ERROR,
    "HPAs scale an existing workload",
    reads=("HorizontalPodAutoscaler.spec.scaleTargetRef",),
    fix="point scaleTargetRef at a Deployment or StatefulSet of the same namespace",
    doc="An HPA with a missing target does nothing and reports FailedGetScale.",
)
def hpa_targets(ctx: Context) -> Iterator[Violation]:
    for hpa in ctx.kind("HorizontalPodAutoscaler"):
        ref = mapping(mapping(hpa.body.get("spec")).get("scaleTargetRef"))
        kind = str(ref.get("kind", ""))
        if kind in _SCALABLE and not ctx.holds(kind):
            continue
        if kind not in _SCALABLE or hpa_target(ctx, hpa) is None:
            yield Violation(hpa, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not here")


@rule(
    "REF003",
    Severity.ERROR,
    "PodDisruptionBudgets select pods",
    reads=("PodDisruptionBudget.spec.selector",),
    fix="make the PDB's selector match the pod template labels of a workload in its namespace",
    doc="A PDB that selects nothing protects nothing during node upgrades.",
)
def pdb_selects(ctx: Context) -> Iterator[Violation]:
    if not ctx.holds_pods():
        return
    for pdb in ctx.kind("PodDisruptionBudget"):
        selector = mapping(mapping(pdb.body.get("spec")).get("selector"))
        if not any(selects(selector, w.labels) for w in _pods_in(ctx, pdb.namespace)):
            yield Violation(pdb, "selector matches no pods")


def _role_exists(ctx: Context, binding: Resource, ref: Mapping[str, Any]) -> bool:
    name = scalar_text(ref.get("name"))
    if ref.get("kind") == "ClusterRole":
        return (
            name in BUILTIN_CLUSTER_ROLES
            or name.startswith("system:")
            or ctx.find("ClusterRole", "", name) is not None
        )
    return binding.kind == "RoleBinding" and ctx.find("Role", binding.namespace, name) is not None


@rule(
    "REF004",
    Severity.ERROR,
    "RoleBindings name existing roles and ServiceAccounts",
    reads=("RoleBinding.roleRef", "RoleBinding.subjects"),
    fix="define the Role (same namespace) and ServiceAccount the binding names, or fix the names",
    doc="A binding to a missing role or account grants nothing, and the workload gets 403s.",
)
def bindings(ctx: Context) -> Iterator[Violation]:
    namespaces = {r.namespace for r in ctx.resources if r.namespace}
    for binding in (*ctx.kind("RoleBinding"), *ctx.kind("ClusterRoleBinding")):
        ref = mapping(binding.body.get("roleRef"))
        if ctx.holds(str(ref.get("kind", ""))) and not _role_exists(ctx, binding, ref):
            yield Violation(binding, f"roleRef {ref.get('kind')} {ref.get('name')} is not here")
        for subject in (mapping(s) for s in sequence(binding.body.get("subjects"))):
            if subject.get("kind") != "ServiceAccount":
                continue
            namespace = str(subject.get("namespace") or binding.namespace)
            name = scalar_text(subject.get("name"))
            if (
                namespace in namespaces
                and ctx.holds("ServiceAccount")
                and ctx.find("ServiceAccount", namespace, name) is None
            ):
                label = object_label("ServiceAccount", namespace, name)
                yield Violation(binding, f"subject {label} is not here")


def _synced_secrets(ctx: Context, namespace: str) -> set[str]:
    """Secrets a SecretProviderClass creates from Secret Manager (secretObjects)."""
    return {
        str(mapping(obj).get("secretName", ""))
        for spc in ctx.kind("SecretProviderClass")
        if spc.namespace == namespace
        for obj in sequence(mapping(spc.body.get("spec")).get("secretObjects"))
    }


def _references(workload: Workload) -> Iterator[tuple[str, str]]:
    """(kind, name) of every ConfigMap, Secret and SecretProviderClass the pods need."""
    for volume in workload.volumes:
        configmap = mapping(volume.get("configMap"))
        if configmap and configmap.get("optional") is not True:
            yield "ConfigMap", scalar_text(configmap.get("name"))
        secret = mapping(volume.get("secret"))
        if secret and secret.get("optional") is not True:
            yield "Secret", scalar_text(secret.get("secretName"))
        for source in sequence(mapping(volume.get("projected")).get("sources")):
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                ref = mapping(mapping(source).get(key))
                if ref and ref.get("optional") is not True:
                    yield kind, scalar_text(ref.get("name"))
        attributes = mapping(mapping(volume.get("csi")).get("volumeAttributes"))
        if "secretProviderClass" in attributes:
            yield "SecretProviderClass", str(attributes["secretProviderClass"])
    for container in workload.containers:
        for source in (mapping(s) for s in sequence(container.get("envFrom"))):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                ref = mapping(source.get(key))
                if ref and ref.get("optional") is not True:
                    yield kind, scalar_text(ref.get("name"))
        for env in (mapping(e) for e in sequence(container.get("env"))):
            value_from = mapping(env.get("valueFrom"))
            for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = mapping(value_from.get(key))
                if ref and ref.get("optional") is not True:
                    yield kind, scalar_text(ref.get("name"))


@rule(
    "REF005",
    Severity.ERROR,
    "pods name existing ConfigMaps, Secrets and SecretProviderClasses",
    reads=("spec.volumes[]", "spec.containers[].env", "spec.containers[].envFrom"),
    fix="add the object to the kustomization (Secrets come from a SecretProviderClass's "
    "secretObjects), fix the name, or mark the reference optional",
    doc="A missing ConfigMap or Secret leaves pods in CreateContainerConfigError.",
)
def pod_references(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        namespace = workload.resource.namespace
        synced: set[str] | None = None
        for kind, name in _references(workload):
            if ctx.find(kind, namespace, name) is not None:
                continue
            if not ctx.holds(kind, *(("SecretProviderClass",) if kind == "Secret" else ())):
                continue
            if kind == "Secret":
                synced = _synced_secrets(ctx, namespace) if synced is None else synced
                if name in synced:
                    continue
            yield Violation(workload.resource, f"{object_label(kind, namespace, name)} is not here")


@rule(
    "REF006",
    Severity.ERROR,
    "pods run as an existing ServiceAccount",
    reads=("spec.serviceAccountName",),
    fix="define the ServiceAccount in the workload's namespace or fix serviceAccountName",
    doc="Pods of a missing ServiceAccount are never created (the ReplicaSet reports forbidden).",
)
def service_accounts(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        name = workload.service_account
        if (
            name != "default"
            and ctx.holds("ServiceAccount")
            and ctx.find("ServiceAccount", workload.resource.namespace, name) is None
        ):
            yield Violation(workload.resource, f"ServiceAccount {name} is not here")


def _ingress_services(ingress: Resource) -> Iterator[str]:
    spec = mapping(ingress.body.get("spec"))
    backends = [mapping(spec.get("defaultBackend"))]
    for item in sequence(spec.get("rules")):
        for path in sequence(mapping(mapping(item).get("http")).get("paths")):
            backends.append(mapping(mapping(path).get("backend")))
    for backend in backends:
        service = mapping(backend.get("service"))
        if service:
            yield scalar_text(service.get("name"))


# GKE annotations that name another object: (kind carrying it, annotation, kind named).
_GKE_ANNOTATIONS = (
    ("Ingress", "networking.gke.io/managed-certificates", "ManagedCertificate"),
    ("Ingress", "networking.gke.io/v1beta1.FrontendConfig", "FrontendConfig"),
    ("Service", "cloud.google.com/backend-config", "BackendConfig"),
)


def _annotation_names(value: str) -> Iterator[str]:
    text = value.strip()
    if text.startswith("{"):  # backend-config: {"default": "name", "ports": {"80": "name"}}
        try:
            data = json.loads(text)
        except ValueError:
            yield text
            return
        if isinstance(data, dict):
            if "default" in data:
                yield str(data["default"])
            yield from (str(v) for v in mapping(data.get("ports")).values())
        return
    yield from (name.strip() for name in text.split(",") if name.strip())


@rule(
    "REF007",
    Severity.ERROR,
    "Ingresses and GKE annotations name existing objects",
    reads=(
        "Ingress.spec.rules[].http.paths[].backend.service.name",
        "networking.gke.io/managed-certificates",
        "cloud.google.com/backend-config",
    ),
    fix="define the Service, ManagedCertificate, FrontendConfig or BackendConfig in the same "
    "namespace, or fix the name",
    doc="GKE's ingress controller fails the whole load balancer when one name is wrong.",
)
def ingress_references(ctx: Context) -> Iterator[Violation]:
    for ingress in ctx.kind("Ingress"):
        for name in _ingress_services(ingress):
            if ctx.holds("Service") and ctx.find("Service", ingress.namespace, name) is None:
                yield Violation(ingress, f"backend Service {name} is not here")
    for carrier, annotation, kind in _GKE_ANNOTATIONS:
        for resource in ctx.kind(carrier):
            value = resource.annotations.get(annotation)
            if value is None:
                continue
            for name in _annotation_names(str(value)):
                if ctx.holds(kind) and ctx.find(kind, resource.namespace, name) is None:
                    yield Violation(
                        resource, f"{annotation} names {kind} {name}, which is not here"
                    )


@rule(
    "HPA001",
    Severity.ERROR,
    "HPA-owned workloads set no replicas",
    reads=("Deployment.spec.replicas", "HorizontalPodAutoscaler.spec.scaleTargetRef"),
    fix="delete spec.replicas from the workload; the HPA's minReplicas sets the floor",
    doc="Every sync would reset the replica count the HPA chose (Argo CD fights the HPA).",
)
def hpa_replicas(ctx: Context) -> Iterator[Violation]:
    for hpa in ctx.kind("HorizontalPodAutoscaler"):
        target = hpa_target(ctx, hpa)
        if target is not None and "replicas" in mapping(target.body.get("spec")):
            yield Violation(target, f"sets spec.replicas although HPA {hpa.name} scales it")


RULES = (
    service_selects,
    hpa_targets,
    pdb_selects,
    bindings,
    pod_references,
    service_accounts,
    ingress_references,
    hpa_replicas,
)

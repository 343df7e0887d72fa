"""Where the pod spec of each workload kind lives, so rules read pods one way."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops.manifests import Resource, mapping, sequence


@dataclass(frozen=True)
class Workload:
    """An object that makes pods, with its pod spec and the pods' labels."""

    resource: Resource
    spec: Mapping[str, Any]
    labels: Mapping[str, Any]

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        """Every container, init and ephemeral ones included."""
        return [
            mapping(container)
            for key in ("initContainers", "containers", "ephemeralContainers")
            for container in sequence(self.spec.get(key))
        ]

    @property
    def volumes(self) -> list[Mapping[str, Any]]:
        return [mapping(volume) for volume in sequence(self.spec.get("volumes"))]

    @property
    def security_context(self) -> Mapping[str, Any]:
        return mapping(self.spec.get("securityContext"))

    @property
    def service_account(self) -> str:
        return str(self.spec.get("serviceAccountName") or "default")


def _template(body: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node = body
    for key in path:
        node = mapping(node.get(key))
    return node


def workload_of(resource: Resource) -> Workload | None:
    """The Workload view of `resource`, or None if it makes no pods."""
    body = resource.body
    if resource.kind == "Pod":
        return Workload(
            resource, mapping(body.get("spec")), mapping(resource.metadata.get("labels"))
        )
    if resource.kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        template = _template(body, "spec", "template")
    elif resource.kind == "CronJob":
        template = _template(body, "spec", "jobTemplate", "spec", "template")
    elif resource.kind == "PodTemplate":
        template = _template(body, "template")
    elif resource.kind in {"Sandbox", "SandboxTemplate"}:
        # agent-sandbox (GKE Agent Sandbox): a warm pool's pods are made from this spec.
        template = _template(body, "spec", "podTemplate")
    else:
        return None
    metadata = mapping(template.get("metadata"))
    return Workload(resource, mapping(template.get("spec")), mapping(metadata.get("labels")))


def container_name(container: Mapping[str, Any]) -> str:
    return str(container.get("name", "?"))


def selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """Whether a LabelSelector (matchLabels and matchExpressions) selects `labels`."""
    for key, value in mapping(selector.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expression in sequence(selector.get("matchExpressions")):
        requirement = mapping(expression)
        key = str(requirement.get("key", ""))
        values = {str(v) for v in sequence(requirement.get("values"))}
        operator = requirement.get("operator")
        present = key in labels
        if operator == "In" and not (present and str(labels[key]) in values):
            return False
        if operator == "NotIn" and present and str(labels[key]) in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selects_map(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """Whether a plain map selector (a Service's) selects `labels`."""
    return all(labels.get(key) == value for key, value in selector.items())

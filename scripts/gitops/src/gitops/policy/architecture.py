"""One CPU architecture everywhere: images built for linux/amd64 on amd64 nodes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from gitops.manifests import mapping, sequence
from gitops.policy.model import Context, Severity, Violation, each_container, rule
from gitops.policy.workloads import container_name

ARCH_LABEL = "kubernetes.io/arch"
ARCHITECTURE = "amd64"
_FOREIGN_ARCH = re.compile(
    r"(?<![a-z0-9])(arm64|aarch64|arm32v[5-7]|armv[5-8]|armhf|ppc64le|s390x)(?![a-z0-9])"
)


def pinned_architectures(spec: Mapping[str, Any]) -> set[str] | None:
    """The architectures a pod spec allows, or None if it does not pin one."""
    selector = mapping(spec.get("nodeSelector"))
    if ARCH_LABEL in selector:
        return {str(selector[ARCH_LABEL])}
    required = mapping(
        mapping(mapping(spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    for term in sequence(required.get("nodeSelectorTerms")):
        for expression in sequence(mapping(term).get("matchExpressions")):
            expression = mapping(expression)
            if expression.get("key") == ARCH_LABEL and expression.get("operator") == "In":
                return {str(value) for value in sequence(expression.get("values"))}
    return None


ARM_DOC = "https://cloud.google.com/kubernetes-engine/docs/concepts/arm-on-gke"


def tolerates_arm(spec: Mapping[str, Any]) -> bool:
    """Whether the pod tolerates the arm64 NoSchedule taint GKE puts on its Arm nodes."""
    for toleration in (mapping(t) for t in sequence(spec.get("tolerations"))):
        key = toleration.get("key")
        operator = toleration.get("operator") or "Equal"
        effect = toleration.get("effect")
        if effect not in {None, "", "NoSchedule"}:
            continue
        if not key and operator == "Exists":
            return True  # tolerates every taint
        if key == ARCH_LABEL and (operator == "Exists" or toleration.get("value") == "arm64"):
            return True
    return False


@rule(
    "ARCH001",
    Severity.WARNING,
    "pods that tolerate Arm nodes pin amd64",
    reads=(f"spec.nodeSelector.{ARCH_LABEL}", "spec.affinity.nodeAffinity", "spec.tolerations"),
    fix=f"add nodeSelector {ARCH_LABEL}: {ARCHITECTURE}, or drop the toleration of the "
    f"{ARCH_LABEL}=arm64 taint; the images are built for linux/amd64",
    doc="GKE taints Arm nodes and Autopilot provisions them only on request, so an unpinned pod "
    "lands on amd64 unless it tolerates that taint; then it may land on Arm and fail with "
    "`exec format error`.",
    see=ARM_DOC,
)
def pinned(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        if pinned_architectures(workload.spec) is None and tolerates_arm(workload.spec):
            yield Violation(
                workload.resource,
                f"tolerates the {ARCH_LABEL}=arm64 taint but does not select {ARCH_LABEL}",
            )


@rule(
    "ARCH002",
    Severity.ERROR,
    "no pin to another architecture",
    reads=(f"spec.nodeSelector.{ARCH_LABEL}", "spec.affinity.nodeAffinity"),
    fix=f"select {ARCH_LABEL}: {ARCHITECTURE}; Cloud Build builds --platform linux/amd64 only",
    doc="Pods pinned to arm64 nodes cannot run the amd64 images this repository builds.",
    see=ARM_DOC,
)
def foreign_pin(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        allowed = pinned_architectures(workload.spec)
        if allowed is not None and allowed != {ARCHITECTURE}:
            yield Violation(
                workload.resource, f"pinned to {', '.join(sorted(allowed))}, not {ARCHITECTURE}"
            )


@rule(
    "ARCH003",
    Severity.ERROR,
    "no image built for another architecture",
    reads=("spec.containers[].image",),
    fix="use the linux/amd64 (or multi-arch) image that Cloud Build pushes, not an arm64 variant",
    doc="The first deployment pushed an image built on an Arm laptop: exec format error on amd64.",
)
def foreign_image(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        image = str(container.get("image", ""))
        found = _FOREIGN_ARCH.search(image.split("@")[0].lower())
        if found:
            yield Violation(
                workload.resource,
                f"container {container_name(container)} image {image} "
                f"is built for {found.group(1)}",
            )


RULES = (pinned, foreign_pin, foreign_image)

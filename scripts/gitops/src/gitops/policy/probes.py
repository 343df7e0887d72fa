"""Pods behind a Service say when they can take traffic."""

from __future__ import annotations

from collections.abc import Iterator

from gitops.manifests import mapping, sequence
from gitops.policy.model import Context, Severity, Violation, rule
from gitops.policy.workloads import container_name, selects_map

_SERVING = frozenset({"Deployment", "StatefulSet"})


@rule(
    "PRB001",
    Severity.ERROR,
    "served containers have a readiness probe",
    reads=("spec.containers[].readinessProbe", "Service.spec.selector"),
    fix="add a readinessProbe (e.g. httpGet on the health endpoint) to every container of the "
    "workload",
    doc="Without one, a rollout sends requests to pods that are still starting: 502s on every "
    "deploy.",
)
def readiness(ctx: Context) -> Iterator[Violation]:
    selectors = [
        (service.namespace, mapping(mapping(service.body.get("spec")).get("selector")))
        for service in ctx.kind("Service")
    ]
    for workload in ctx.workloads:
        if workload.resource.kind not in _SERVING:
            continue
        served = any(
            namespace == workload.resource.namespace
            and selector
            and selects_map(selector, workload.labels)
            for namespace, selector in selectors
        )
        if not served:
            continue
        for container in (mapping(c) for c in sequence(workload.spec.get("containers"))):
            if not mapping(container.get("readinessProbe")):
                yield Violation(
                    workload.resource,
                    f"container {container_name(container)} has no readinessProbe",
                )


RULES = (readiness,)

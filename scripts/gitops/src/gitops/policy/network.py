"""Services that claim addresses outside the cluster's control."""

from __future__ import annotations

from collections.abc import Iterator

from gitops.manifests import mapping, sequence
from gitops.policy.model import Context, Severity, Violation, rule


@rule(
    "NET001",
    Severity.ERROR,
    "no Service externalIPs",
    reads=("Service.spec.externalIPs",),
    fix="delete spec.externalIPs; expose the Service through type LoadBalancer, an Ingress or a "
    "Gateway, which GKE programs",
    doc="Any address in externalIPs captures the cluster's traffic to it (CVE-2020-8554), and "
    "GKE programs no load balancer for it; Kubernetes deprecates the field.",
    see="https://github.com/kubernetes/kubernetes/issues/97076",
)
def external_ips(ctx: Context) -> Iterator[Violation]:
    for service in ctx.kind("Service"):
        addresses = sequence(mapping(service.body.get("spec")).get("externalIPs"))
        if addresses:
            yield Violation(service, f"claims externalIPs {', '.join(map(str, addresses))}")


RULES = (external_ips,)

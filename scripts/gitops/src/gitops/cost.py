"""What an environment costs on GKE Autopilot, from the requests in its rendered manifests.

Autopilot bills what scheduled Pods request (CPU, memory, ephemeral storage), by the second, at
the region's list price. So the cost of an environment follows from its render: each Deployment
or StatefulSet at its HorizontalPodAutoscaler's minimum (at rest) and maximum (under load), and
each PodTemplate the runs are made from, per hour that a run takes. The ResourceQuota of the
runs' namespace caps how many run at once, which bounds the load figure.

Not counted: the cluster fee (printed beside the total), load balancers, storage, Firestore,
network egress, and Autopilot raising requests below its minimums (the policy check keeps the
requests explicit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gitops.errors import GitopsError
from gitops.manifests import Resource, mapping, sequence
from gitops.prices import PriceError, PriceTable, RegionPrices
from gitops.quantity import GIB, QuantityError, parse_quantity

# The ConfigMap key the overlays name their region in.
REGION_KEY = "GCP_REGION"
SCALED_KINDS = frozenset({"Deployment", "StatefulSet"})
_QUOTA_KEYS = {
    "cpu": ("requests.cpu", "cpu"),
    "memory": ("requests.memory", "memory"),
    "ephemeral-storage": ("requests.ephemeral-storage", "ephemeral-storage"),
}


class CostError(GitopsError):
    """An environment cannot be priced: no region named, or no prices for it."""


@dataclass(frozen=True)
class Requests:
    """What one Pod requests, in vCPU and GiB."""

    cpu: float = 0.0
    memory_gib: float = 0.0
    ephemeral_gib: float = 0.0

    def hourly(self, prices: RegionPrices) -> float:
        return (
            self.cpu * prices.vcpu_hour
            + self.memory_gib * prices.memory_gib_hour
            + self.ephemeral_gib * prices.ephemeral_storage_gib_hour
        )

    def describe(self) -> str:
        return f"{self.cpu:g} vCPU, {self.memory_gib:g} GiB, {self.ephemeral_gib:g} GiB disk"


@dataclass(frozen=True)
class Workload:
    """A Deployment or StatefulSet: one Pod's requests and how many Pods run."""

    ref: str
    pod: Requests
    min_replicas: int
    max_replicas: int


@dataclass(frozen=True)
class RunTemplate:
    """A PodTemplate runs are made from, and how many its namespace's quota lets run at once."""

    ref: str
    pod: Requests
    ceiling: int | None


@dataclass(frozen=True)
class EnvironmentCost:
    environment: str
    prices: RegionPrices
    hours_per_month: float
    cluster_fee_per_hour: float
    workloads: tuple[Workload, ...]
    runs: tuple[RunTemplate, ...]

    @property
    def at_rest(self) -> float:
        """A month with every workload at its minimum and no run."""
        return self._month(lambda w: w.min_replicas)

    @property
    def under_load(self) -> float:
        """A month at every workload's maximum with runs at their quota ceiling throughout."""
        runs = sum(t.pod.hourly(self.prices) * (t.ceiling or 0) for t in self.runs)
        return self._month(lambda w: w.max_replicas) + runs * self.hours_per_month

    @property
    def run_hour(self) -> float:
        """One hour of one run, from each template (there is usually one)."""
        return sum(t.pod.hourly(self.prices) for t in self.runs)

    @property
    def cluster_fee(self) -> float:
        return self.cluster_fee_per_hour * self.hours_per_month

    def _month(self, replicas: Callable[[Workload], int]) -> float:
        hourly = sum(w.pod.hourly(self.prices) * replicas(w) for w in self.workloads)
        return hourly * self.hours_per_month


def pod_requests(pod_spec: Mapping[str, object]) -> Requests:
    """A Pod's requests as Kubernetes schedules it: containers summed, then at least each init
    container's, resource by resource."""
    totals = {name: 0.0 for name in _QUOTA_KEYS}
    for container in sequence(pod_spec.get("containers")):
        for name, value in _container_requests(container).items():
            totals[name] += value
    for container in sequence(pod_spec.get("initContainers")):
        for name, value in _container_requests(container).items():
            totals[name] = max(totals[name], value)
    return Requests(totals["cpu"], totals["memory"] / GIB, totals["ephemeral-storage"] / GIB)


def environment_cost(
    environment: str, resources: Sequence[Resource], table: PriceTable
) -> EnvironmentCost:
    """The cost of one rendered environment at its region's list prices."""
    region = _region(environment, resources)
    try:
        prices = table.for_region(region)
    except PriceError as error:
        raise CostError(f"{environment}: {error}") from error
    scalers = {_scale_target(r): r for r in resources if r.kind == "HorizontalPodAutoscaler"}
    workloads = tuple(
        _workload(r, scalers.get((r.namespace, r.kind, r.name)))
        for r in resources
        if r.kind in SCALED_KINDS
    )
    quotas = [r for r in resources if r.kind == "ResourceQuota"]
    runs = tuple(_run_template(r, quotas) for r in resources if r.kind == "PodTemplate")
    return EnvironmentCost(
        environment,
        prices,
        table.hours_per_month,
        table.cluster_fee_per_hour,
        workloads,
        runs,
    )


def _region(environment: str, resources: Sequence[Resource]) -> str:
    for resource in resources:
        if resource.kind == "ConfigMap":
            region = mapping(resource.body.get("data")).get(REGION_KEY)
            if region:
                return str(region)
    raise CostError(
        f"{environment}: no ConfigMap names {REGION_KEY}, so its region and prices are unknown: "
        "set it in the overlay's environment ConfigMap"
    )


def _scale_target(autoscaler: Resource) -> tuple[str, str, str]:
    target = mapping(mapping(autoscaler.body.get("spec")).get("scaleTargetRef"))
    return autoscaler.namespace, str(target.get("kind")), str(target.get("name"))


def _container_requests(container: object) -> dict[str, float]:
    requests = mapping(mapping(mapping(container).get("resources")).get("requests"))
    found: dict[str, float] = {}
    for name in _QUOTA_KEYS:
        if name in requests:
            try:
                found[name] = parse_quantity(requests[name])
            except QuantityError as error:
                raise CostError(f"a container requests {name}: {error}") from error
    return found


def _workload(resource: Resource, scaler: Resource | None) -> Workload:
    spec = mapping(resource.body.get("spec"))
    pod = pod_requests(mapping(mapping(spec.get("template")).get("spec")))
    if scaler is not None:
        scaling = mapping(scaler.body.get("spec"))
        least = _count(scaling.get("minReplicas", 1), f"{scaler.ref} minReplicas")
        most = _count(scaling.get("maxReplicas", least), f"{scaler.ref} maxReplicas")
        return Workload(resource.ref, pod, least, most)
    replicas = _count(spec.get("replicas", 1), f"{resource.ref} replicas")
    return Workload(resource.ref, pod, replicas, replicas)


def _count(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise CostError(f"{what} is {value!r}: it must be a whole number")


def _run_template(resource: Resource, quotas: Sequence[Resource]) -> RunTemplate:
    pod = pod_requests(mapping(mapping(resource.body.get("template")).get("spec")))
    limits = [
        _quota_ceiling(pod, mapping(mapping(q.body.get("spec")).get("hard")))
        for q in quotas
        if q.namespace == resource.namespace
    ]
    bounded = [limit for limit in limits if limit is not None]
    return RunTemplate(resource.ref, pod, min(bounded) if bounded else None)


def _quota_ceiling(pod: Requests, hard: Mapping[str, object]) -> int | None:
    """How many such Pods fit in the quota, or None when it bounds none of what they request."""
    need = {
        "cpu": pod.cpu,
        "memory": pod.memory_gib * GIB,
        "ephemeral-storage": pod.ephemeral_gib * GIB,
    }
    fits: list[int] = []
    try:
        if "pods" in hard:
            fits.append(int(parse_quantity(hard["pods"])))
        for name, keys in _QUOTA_KEYS.items():
            for key in keys:
                if key in hard and need[name] > 0:
                    # The epsilon keeps 4 / 0.5 at 8 when binary fractions land just below it.
                    fits.append(math.floor(parse_quantity(hard[key]) / need[name] + 1e-9))
    except QuantityError as error:
        raise CostError(f"a ResourceQuota's hard limit: {error}") from error
    return min(fits) if fits else None


# --- reports ------------------------------------------------------------------------------------


def usd(amount: float) -> str:
    """Dollars and cents; a tenth of a cent below a dollar, where a run-hour's cost lies."""
    return f"${amount:,.3f}" if abs(amount) < 1 else f"${amount:,.2f}"


def text(costs: Sequence[EnvironmentCost]) -> str:
    """`gitops cost`: each environment's month at rest and under load, and a run's hour."""
    lines: list[str] = []
    for cost in costs:
        lines.append(f"== {cost.environment}: {cost.prices.describe()}")
        lines.append(f"   at rest      {usd(cost.at_rest):>10} a month")
        for w in cost.workloads:
            lines.append(f"                {w.ref} x{w.min_replicas} ({w.pod.describe()} each)")
        lines.append(f"   under load   {usd(cost.under_load):>10} a month")
        for w in cost.workloads:
            lines.append(f"                {w.ref} x{w.max_replicas}")
        for t in cost.runs:
            if t.ceiling is None:
                lines.append(f"                {t.ref}: no quota bounds its runs, none counted")
            else:
                lines.append(f"                {t.ref}: {t.ceiling} runs at once, all month")
        lines.append(f"   per run-hour {usd(cost.run_hour):>10}")
        for t in cost.runs:
            lines.append(f"                {t.ref} ({t.pod.describe()})")
        lines.append(
            f"   cluster fee  {usd(cost.cluster_fee):>10} a month on top (the free tier's credit "
            "covers one cluster per billing account)"
        )
    return "\n".join(lines) + "\n"


def change(before: EnvironmentCost | None, after: EnvironmentCost | None) -> str:
    """One Markdown line for the PR comment: the environment's cost and what the change does."""
    current = after or before
    if current is None:
        return ""
    figures: list[tuple[str, str, Callable[[EnvironmentCost], float]]] = [
        ("at rest", "a month", lambda c: c.at_rest),
        ("under load", "a month", lambda c: c.under_load),
        ("a run", "an hour", lambda c: c.run_hour),
    ]
    parts = []
    for label, per, figure in figures:
        now = figure(after) if after else 0.0
        was = figure(before) if before else 0.0
        parts.append(f"{label} {usd(now)} {per} ({_delta(now - was)})")
    return f"**Cost** ({current.prices.describe()}): " + ", ".join(parts) + "."


def _delta(amount: float) -> str:
    if abs(amount) < 0.005:
        return "unchanged"
    sign = "+" if amount > 0 else "-"
    return f"{sign}{usd(abs(amount))}"

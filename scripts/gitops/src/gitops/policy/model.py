"""What a rule is, what it sees, and what it reports."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from gitops.manifests import Resource, mapping
from gitops.policy.workloads import Workload, workload_of


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Settings:
    """The parts of gitops.yaml the policies read."""

    digest_environments: frozenset[str] = frozenset({"prod"})
    gvisor_environments: frozenset[str] = frozenset({"prod"})
    sandbox_namespace: str = "agent-runs"
    # The cluster's Kubernetes minor version (gitops.yaml kubernetesVersion): what admission
    # accepts changes with it (safe sysctls, Pod Security checks).
    kubernetes_version: str = "1.34"

    @property
    def kubernetes_minor(self) -> int:
        """The minor number of kubernetes_version ("1.34" -> 34); 0 if unreadable."""
        _, _, minor = self.kubernetes_version.removeprefix("v").partition(".")
        digits = minor.split(".")[0]
        return int(digits) if digits.isdigit() else 0


@dataclass(frozen=True)
class Violation:
    resource: Resource
    message: str


@dataclass(frozen=True)
class RuleInfo:
    """A catalogue entry: enough for a reader to understand and fix a finding."""

    id: str
    severity: Severity
    title: str
    reads: tuple[str, ...]
    fix: str
    doc: str
    # The public documentation of the behaviour the rule encodes (GKE, Kubernetes).
    see: str = field(default="", kw_only=True)


Check = Callable[["Context"], Iterable[Violation]]


@dataclass(frozen=True)
class Rule(RuleInfo):
    check: Check
    # Needs what only an environment's render holds (its facts, other targets' renders), so it
    # cannot be judged from a lone manifest file. Rules across the objects of one file do not.
    whole_render: bool = False


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    target: str
    resource: str
    message: str
    fix: str
    suppressed: str | None = None
    # Where the object is written: repository path and 1-based line, when known.
    file: str = ""
    line: int = 0


ENVIRONMENT_CONFIGMAP = ("agent-platform", "platform-environment")


def object_label(kind: str, namespace: str, name: str) -> str:
    """`Kind namespace/name`, or `Kind name` for an object without a namespace."""
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


@dataclass(frozen=True)
class Context:
    """One rendered target, indexed once so that every rule runs in linear time."""

    target: str
    is_environment: bool
    resources: tuple[Resource, ...]
    settings: Settings
    facts: Mapping[str, str]
    by_kind: Mapping[str, tuple[Resource, ...]]
    by_name: Mapping[tuple[str, str, str], Resource]
    workloads: tuple[Workload, ...]
    pods_by_namespace: Mapping[str, tuple[Workload, ...]] = field(default_factory=dict)
    # Other targets rendered in the same run, by repository path (e.g. "overlays/dev").
    renders: Mapping[str, Sequence[Resource]] = field(default_factory=dict)
    # A lone manifest file rather than a whole render: the objects it names may live elsewhere.
    lone: bool = False

    @classmethod
    def build(
        cls,
        target: str,
        resources: Iterable[Resource],
        settings: Settings,
        *,
        is_environment: bool = False,
        renders: Mapping[str, Sequence[Resource]] | None = None,
        lone: bool = False,
    ) -> Context:
        items = tuple(resources)
        by_kind: defaultdict[str, list[Resource]] = defaultdict(list)
        by_name: dict[tuple[str, str, str], Resource] = {}
        workloads: list[Workload] = []
        by_namespace: defaultdict[str, list[Workload]] = defaultdict(list)
        for resource in items:
            by_kind[resource.kind].append(resource)
            by_name[(resource.kind, resource.namespace, resource.name)] = resource
            workload = workload_of(resource)
            if workload is not None:
                workloads.append(workload)
                by_namespace[resource.namespace].append(workload)
        configmap = by_name.get(("ConfigMap", *ENVIRONMENT_CONFIGMAP))
        facts = {
            str(key): str(value)
            for key, value in mapping(configmap.body.get("data") if configmap else None).items()
        }
        return cls(
            target=target,
            is_environment=is_environment,
            resources=items,
            settings=settings,
            facts=facts,
            by_kind={kind: tuple(found) for kind, found in by_kind.items()},
            by_name=by_name,
            workloads=tuple(workloads),
            pods_by_namespace={ns: tuple(found) for ns, found in by_namespace.items()},
            renders=renders or {},
            lone=lone,
        )

    @property
    def environment(self) -> str:
        """The environment's name: the ConfigMap's ENVIRONMENT, else the target's name."""
        return self.facts.get("ENVIRONMENT", self.target)

    def kind(self, kind: str) -> tuple[Resource, ...]:
        return self.by_kind.get(kind, ())

    def find(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self.by_name.get((kind, namespace, name))

    def holds(self, *kinds: str) -> bool:
        """Whether a missing object of `kinds` can be judged here.

        A render holds everything its environment deploys, so a missing object is missing. A
        lone file written one object per file (the usual layout) holds the Service but not the
        Deployment it selects; only a file that holds objects of the kind is judged for them.
        """
        return not self.lone or any(kind in self.by_kind for kind in kinds)

    def holds_pods(self) -> bool:
        """Like `holds`, for the pod templates a selector matches."""
        return not self.lone or bool(self.workloads)


def rule(
    id: str,
    severity: Severity,
    title: str,
    *,
    reads: tuple[str, ...],
    fix: str,
    doc: str,
    whole_render: bool = False,
    see: str = "",
) -> Callable[[Check], Rule]:
    """Turn a check function into a catalogue Rule."""

    def wrap(check: Check) -> Rule:
        return Rule(id, severity, title, reads, fix, doc, check, whole_render, see=see)

    return wrap


def each_container(ctx: Context) -> Iterator[tuple[Workload, Mapping[str, object]]]:
    for workload in ctx.workloads:
        for container in workload.containers:
            yield workload, container

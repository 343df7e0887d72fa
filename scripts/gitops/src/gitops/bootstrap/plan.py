"""The GCP setup of one project as a plan: every resource, how to see it, how to create it.

The plan is pure data built from the environment, the environments Argo CD serves and what was
observed to exist, so it can be printed for review (the default), compared with an expected plan
in tests, and applied step by step by `gitops.bootstrap.shell`. Secret values are never part of
it: a command that needs one names the secret, and the shell feeds the value on stdin. A value
that exists only once some resource does (a project's number, another cluster's endpoint) is a
`Lookup`: the plan shows where it comes from, and the shell reads it right before it is needed.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import yaml

from gitops.errors import GitopsError
from gitops.firestore_indexes import CompositeIndex, IndexFile, TtlField

# The names the first deployment used, and the ones the manifests and pipelines refer to.
CLUSTER = "ai-agent-cluster"
REPOSITORY = "agent-platform"
PLATFORM_ACCOUNT = "agent-platform"
PLATFORM_NAMESPACE = "agent-platform"
BUILD_ACCOUNT = "cloud-build"
# Pull-request builds run code nobody has reviewed yet, so they get an identity of their own
# that cannot push images or write the build cache main's builds import.
PULL_REQUEST_ACCOUNT = "cloud-build-pr"
ANTHROPIC_SECRET = "anthropic-api-key"  # noqa: S105 - a name, not a value
# The pipeline GitHub App's private key (.pem), traded for installation tokens by build steps.
GITHUB_SECRET = "github-app-key"  # noqa: S105 - a name, not a value
# The private key of Argo CD's own GitHub App, which may only read the repository.
ARGOCD_GITHUB_SECRET = "argocd-github-app-key"  # noqa: S105 - a name, not a value
# The Ingress's `kubernetes.io/ingress.global-static-ip-name`.
ADDRESS = "agent-platform"
# The prod BackendConfig's `securityPolicy.name`.
SECURITY_POLICY = "agent-platform"
# Environments whose overlay puts Cloud Armor and IAP in front of the API; a test holds this to
# the rendered BackendConfigs.
PROTECTED_ENVIRONMENTS = frozenset({"prod"})
# The release apps/argocd/install pins (and tools/argocd/go.mod builds for the tests).
ARGOCD_VERSION = "v3.2.6"
ARGOCD_NAMESPACE = "argocd"
# The trigger of pushes to main (pipelines/triggers/main.yaml), whose build pins dev.
MAIN_TRIGGER = "main"
# The Google identity Argo CD reaches the other environments' clusters as, and the Argo CD
# workloads that talk to clusters, by their Kubernetes service account.
ARGOCD_ACCOUNT = "argocd"
ARGOCD_WORKLOADS = {
    "argocd-application-controller": "statefulset/argocd-application-controller",
    "argocd-server": "deployment/argocd-server",
}
# The server Argo CD calls its own cluster by, as the root Application does.
IN_CLUSTER = "https://kubernetes.default.svc"
# The namespaces the agent-platform AppProject lets Argo CD sync into, and all that
# apps/argocd/remote-cluster lets it touch in another environment's cluster.
REMOTE_NAMESPACES = ("agent-platform", "agent-runs")

APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",  # managed Prometheus behind the PodMonitoring
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
)
PROTECTED_APIS = ("iap.googleapis.com",)
# The platform's database: the project's default one.
FIRESTORE_DATABASE = "(default)"

# Cloud Armor evaluates rules by priority, lowest first, and the first match decides; the
# throttle rule matches every request, so the deny rules come before it.
WAF_PRIORITY = "1000"
RATE_LIMIT_PRIORITY = "2000"
# Only rule families that read request headers: tasks and workspace files are code and prose,
# which the SQL-injection, XSS and RCE families (they read the body) would block as attacks.
WAF_EXPRESSION = "evaluatePreconfiguredWaf('scannerdetection-v33-stable', {'sensitivity': 1})"
# Per client address; a dashboard polls a few times a second at most, streams are one request.
RATE_LIMIT_COUNT = "600"
RATE_LIMIT_INTERVAL_SECONDS = "60"

_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_ENVIRONMENT = re.compile(r"[a-z][a-z0-9-]{0,30}")
_MEMBER = re.compile(
    r"(user|group|serviceAccount):[^\s@:]+@[a-z0-9.-]+\.[a-z]{2,}|domain:[a-z0-9.-]+\.[a-z]{2,}"
)


class CloudNameError(GitopsError, ValueError):
    """A project, region, environment name or IAM member that Google Cloud would refuse."""


@dataclass(frozen=True)
class CloudProject:
    project: str
    region: str

    def __post_init__(self) -> None:
        if not _PROJECT.fullmatch(self.project):
            raise CloudNameError(
                f"{self.project!r} is not a GCP project id: 6 to 30 lower-case letters, digits "
                "or hyphens, starting with a letter (see `gcloud projects list`)"
            )
        if not _REGION.fullmatch(self.region):
            raise CloudNameError(
                f"{self.region!r} is not a GCP region such as asia-northeast3 "
                "(see `gcloud compute regions list`)"
            )

    def account(self, name: str) -> str:
        return f"{name}@{self.project}.iam.gserviceaccount.com"

    def bucket(self, purpose: str) -> str:
        return f"gs://{self.project}-{purpose}"

    @property
    def kube_context(self) -> str:
        # The context name `gcloud container clusters get-credentials` writes.
        return f"gke_{self.project}_{self.region}_{CLUSTER}"


@dataclass(frozen=True)
class Environment:
    """An environment as its overlay states it: the name Argo CD knows its cluster by (the
    Applications' `destination.name`) and the project and region it runs in."""

    name: str
    target: CloudProject

    def __post_init__(self) -> None:
        if not _ENVIRONMENT.fullmatch(self.name):
            raise CloudNameError(
                f"{self.name!r} cannot name an environment: lower-case letters, digits and "
                "hyphens, starting with a letter"
            )

    @property
    def protected(self) -> bool:
        return self.name in PROTECTED_ENVIRONMENTS


def iap_member(text: str) -> str:
    """`text` if it is an IAM member IAP can let through, e.g. group:team@example.com."""
    if not _MEMBER.fullmatch(text):
        raise CloudNameError(
            f"{text!r} is not an IAM member: write user:EMAIL, group:EMAIL, domain:DOMAIN or "
            "serviceAccount:EMAIL"
        )
    return text


@dataclass(frozen=True)
class Lookup:
    """A value known only once a resource exists: `placeholder` stands for it in a step's
    commands until the shell runs `argv` and puts in the one word it prints."""

    placeholder: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    """One command line. `stdin_secret` names the secret whose value is written to its stdin;
    `document` is a manifest written to its stdin, which is not secret and is shown in the plan.
    `document_secret` reads a secret's value right before the command runs; the document holds
    its placeholder where the value goes, base64-encoded, and only the command's stdin sees it."""

    argv: tuple[str, ...]
    stdin_secret: str | None = None
    document: str | None = None
    document_secret: Lookup | None = None

    def __str__(self) -> str:
        text = shlex.join(self.argv)
        if self.stdin_secret:
            text += f"  < value of secret {self.stdin_secret}"
        if self.document is not None:
            text += "  < this document:\n" + "".join(
                f"        {line}\n" for line in self.document.splitlines()
            )
        if self.document_secret is not None:
            text += (
                f"    where {self.document_secret.placeholder} (base64, never shown): "
                f"{shlex.join(self.document_secret.argv)}"
            )
        return text.rstrip("\n")


@dataclass(frozen=True)
class Step:
    """A resource: present when `check` exits 0 and prints something; `apply` creates it."""

    key: str
    summary: str
    check: tuple[str, ...]
    apply: tuple[Command, ...]
    lookups: tuple[Lookup, ...] = ()

    @property
    def secrets(self) -> set[str]:
        return {c.stdin_secret for c in self.apply if c.stdin_secret is not None}

    def resolved(self, values: Mapping[str, str]) -> Step:
        """This step with every lookup's placeholder replaced by its value."""

        def fill(text: str) -> str:
            for lookup in self.lookups:
                text = text.replace(lookup.placeholder, values[lookup.placeholder])
            return text

        return replace(
            self,
            check=tuple(fill(word) for word in self.check),
            apply=tuple(
                replace(
                    command,
                    argv=tuple(fill(word) for word in command.argv),
                    document=None if command.document is None else fill(command.document),
                )
                for command in self.apply
            ),
            lookups=(),
        )


class Action(StrEnum):
    EXISTS = "exists"
    CREATE = "create"


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    action: Action


@dataclass(frozen=True)
class RepositoryAccess:
    """How Argo CD reads this repository: its URL, and the GitHub App (id and installation id,
    not secrets) whose key is ARGOCD_GITHUB_SECRET. The App may only read contents, so Argo CD
    can never push, whatever it is made to run."""

    url: str
    app_id: str
    installation_id: str


@dataclass(frozen=True)
class Trigger:
    """A trigger definition in pipelines/triggers: its name and its file."""

    name: str
    path: str


def steps(
    home: Environment,
    triggers: Sequence[Trigger],
    *,
    indexes: IndexFile,
    environments: Sequence[Environment] = (),
    iap_members: Sequence[str] = (),
    delivery: bool = True,
    repository: RepositoryAccess | None = None,
) -> list[Step]:
    """Every resource of a bootstrapped project, in an order where each needs only earlier ones.

    `home` is the environment whose project this is. The delivery project also holds what serves
    every environment in `environments`: the image registry their nodes pull from, the pipelines,
    and Argo CD, which deploys to its own cluster and to every other environment's under the
    environment's name. A further environment's project (`delivery=False`) holds only what its
    own cluster runs on. Every environment's database gets the composite indexes and TTL
    policies of `indexes`. Argo CD reads the repository as `repository` says.
    """
    if iap_members and not home.protected:
        raise CloudNameError(
            f"IAP guards only {', '.join(sorted(PROTECTED_ENVIRONMENTS))}, not {home.name}: "
            "drop --iap-member"
        )
    target = home.target
    environment = [
        *(
            _api(target, api)
            for api in sorted((*APIS, *(PROTECTED_APIS if home.protected else ())))
        ),
        *_cluster(target),
        *_firestore(target, indexes),
        _address(target),
        *(_security_policy(target) if home.protected else ()),
        _bucket(target, "workspaces", "agents' workspaces between runs"),
        _service_account(target, PLATFORM_ACCOUNT, "AI Agent Platform API"),
        *_secret(target, ANTHROPIC_SECRET, target.account(PLATFORM_ACCOUNT)),
        *_platform_identity(target),
        *(_iap_access(target, member) for member in iap_members),
    ]
    if not delivery:
        return environment
    if repository is None:
        raise TypeError("the delivery project's plan needs the repository Argo CD reads")
    others = [e for e in environments if e.name != home.name]
    return [
        *environment,
        *_registry(target, [home, *others]),
        _bucket(target, "build-artifacts", "test and validation reports of builds"),
        _service_account(target, BUILD_ACCOUNT, "Cloud Build pipelines"),
        *_secret(target, GITHUB_SECRET, target.account(BUILD_ACCOUNT)),
        *_build_identity(target, triggers),
        _service_account(target, PULL_REQUEST_ACCOUNT, "Cloud Build pull-request checks"),
        *_pull_request_identity(target),
        *_secret(target, ARGOCD_GITHUB_SECRET),
        *_argocd(home, others, repository, triggers),
    ]


def plan(all_steps: Iterable[Step], present: Collection[str]) -> list[PlannedStep]:
    """What to do for each step, given the keys of the steps observed to exist."""
    return [
        PlannedStep(step, Action.EXISTS if step.key in present else Action.CREATE)
        for step in all_steps
    ]


def render(target: CloudProject, planned: Sequence[PlannedStep]) -> str:
    """The plan as a reviewer reads it: what exists, what would be created and how."""
    to_create = sum(1 for p in planned if p.action is Action.CREATE)
    lines = [
        f"Bootstrap plan for project {target.project} in {target.region}: "
        f"{to_create} to create, {len(planned) - to_create} already exist",
        "",
    ]
    for item in planned:
        lines.append(f"[{item.action}] {item.step.summary}")
        lines.extend(
            f"    where {lookup.placeholder}: {shlex.join(lookup.argv)}"
            for lookup in item.step.lookups
        )
        lines.append(f"    check: {shlex.join(item.step.check)}")
        if item.action is Action.CREATE:
            lines.extend(f"    apply: {command}" for command in item.step.apply)
    return "\n".join(lines) + "\n"


def _argv(template: str, **values: str) -> tuple[str, ...]:
    """A command line from a shell-like template; values are substituted after splitting."""
    return tuple(word.format(**values) for word in shlex.split(template))


def _step(key: str, summary: str, check: str, *apply: str, **values: str) -> Step:
    return Step(
        key=key,
        summary=summary,
        check=_argv(check, **values),
        apply=tuple(Command(_argv(command, **values)) for command in apply),
    )


def _api(target: CloudProject, api: str) -> Step:
    return _step(
        f"api/{api}",
        f"Enable {api}",
        "gcloud services list --project {project} --enabled --filter config.name={api}"
        " --format value(config.name)",
        "gcloud services enable {api} --project {project}",
        project=target.project,
        api=api,
    )


def _cluster(target: CloudProject) -> Iterable[Step]:
    where = {"project": target.project, "region": target.region, "cluster": CLUSTER}
    yield _step(
        f"cluster/{CLUSTER}",
        f"GKE Autopilot cluster {CLUSTER} (regular channel, Workload Identity and the Secret "
        "Manager add-on on)",
        "gcloud container clusters describe {cluster} --project {project} --location {region}"
        " --format value(name)",
        "gcloud container clusters create-auto {cluster} --project {project} --location {region}"
        " --release-channel regular --enable-secret-manager",
        **where,
    )
    # A cluster made before the manifests used the add-on (the first deployment's) lacks it; the
    # check lists the cluster only when the add-on is on, and the update is skipped for a cluster
    # this run just created with it.
    yield _step(
        f"secret-manager-add-on/{CLUSTER}",
        f"Secret Manager add-on on {CLUSTER} (the CSI driver secrets-store-gke.csi.k8s.io that "
        f"mounts {ANTHROPIC_SECRET} into the API's pods)",
        "gcloud container clusters list --project {project} --location {region}"
        " --filter {filter} --format value(name)",
        "gcloud container clusters update {cluster} --project {project} --location {region}"
        " --enable-secret-manager",
        filter=f"name={CLUSTER} AND secretManagerConfig.enabled=true",
        **where,
    )
    # The runs' SandboxTemplate and SandboxWarmPool (extensions.agents.x-k8s.io/v1beta1) are
    # served by GKE's managed Agent Sandbox add-on from GKE 1.36.3-gke.1767000; the regular
    # channel's cluster gets there by auto-upgrade, and until it does the update is refused.
    yield _step(
        f"agent-sandbox-add-on/{CLUSTER}",
        f"Agent Sandbox add-on on {CLUSTER} (the agent-sandbox controller that keeps the runs' "
        "warm pool; needs GKE 1.36.3-gke.1767000 or later)",
        "gcloud container clusters list --project {project} --location {region}"
        " --filter {filter} --format value(name)",
        "gcloud container clusters update {cluster} --project {project} --location {region}"
        " --enable-agent-sandbox",
        filter=f"name={CLUSTER} AND addonsConfig.agentSandboxConfig.enabled=true",
        **where,
    )


def _firestore(target: CloudProject, indexes: IndexFile) -> Iterable[Step]:
    where = {"project": target.project, "region": target.region, "database": FIRESTORE_DATABASE}
    yield _step(
        f"firestore/{FIRESTORE_DATABASE}",
        f"Firestore database {FIRESTORE_DATABASE} in native mode",
        "gcloud firestore databases describe --database {database} --project {project}"
        " --format value(name)",
        "gcloud firestore databases create --database {database} --location {region}"
        " --type firestore-native --project {project}",
        **where,
    )
    # Production Firestore refuses a query without its composite index (the emulator serves
    # any), so the API needs them before its first request.
    for index in indexes.composites:
        yield _composite_index(target, index)
    for ttl in indexes.ttls:
        yield _ttl_policy(target, ttl)


def _composite_index(target: CloudProject, index: CompositeIndex) -> Step:
    group, scope = index.collection_group, index.query_scope
    where = ("--project", target.project, "--database", FIRESTORE_DATABASE)
    configs = [f"field-path={f.path},order={f.order.lower()}" for f in index.fields]
    named = ",".join(f"{f.path}:{f.order.lower()}" for f in index.fields)
    listed = ", ".join(f"{f.path} {f.order.lower()}" for f in index.fields)
    across = " (collection group scope)" if scope == "COLLECTION_GROUP" else ""
    return Step(
        key=f"firestore-index/{group}/{scope.lower()}/{named}",
        summary=f"Firestore composite index on {group}{across}: {listed}",
        check=(
            *("gcloud", "firestore", "indexes", "composite", "list", *where),
            *("--filter", _index_filter(index), "--format", "value(name)"),
        ),
        # gcloud waits until the index is built, so a failed build stops the bootstrap here.
        apply=(
            Command(
                (
                    *("gcloud", "firestore", "indexes", "composite", "create", *where),
                    *("--collection-group", group),
                    *("--query-scope", scope.lower().replace("_", "-")),
                    *(word for config in configs for word in ("--field-config", config)),
                )
            ),
        ),
    )


def _index_filter(index: CompositeIndex) -> str:
    """A gcloud filter that lists this index alone: its collection group and scope, its fields
    in order, and after them only the `__name__` field Firestore appends to every index."""
    end = len(index.fields)
    terms = [f"name.segment(-3)={index.collection_group}", f"queryScope={index.query_scope}"]
    for n, field in enumerate(index.fields):
        terms += [f"fields[{n}].fieldPath={field.path}", f"fields[{n}].order={field.order}"]
    terms += [f"(fields[{end}].fieldPath=__name__ OR -fields[{end}]:*)", f"-fields[{end + 1}]:*"]
    return " AND ".join(terms)


def _ttl_policy(target: CloudProject, ttl: TtlField) -> Step:
    return _step(
        f"firestore-ttl/{ttl.collection_group}/{ttl.path}",
        f"Firestore TTL policy on {ttl.collection_group}.{ttl.path} (Firestore deletes a "
        f"document once its {ttl.path} has passed)",
        "gcloud firestore fields ttls list --project {project} --database {database}"
        " --collection-group {group} --filter {filter} --format value(name)",
        "gcloud firestore fields ttls update {path} --project {project} --database {database}"
        " --collection-group {group} --enable-ttl",
        project=target.project,
        database=FIRESTORE_DATABASE,
        group=ttl.collection_group,
        path=ttl.path,
        filter=f"name.segment(-3)={ttl.collection_group} AND name.segment(-1)={ttl.path}",
    )


def _address(target: CloudProject) -> Step:
    return _step(
        f"address/{ADDRESS}",
        f"Global IP address {ADDRESS} (the Ingress's static IP; the host's DNS record points at "
        "it, so it outlives a re-created load balancer)",
        "gcloud compute addresses describe {address} --global --project {project}"
        " --format value(address)",
        "gcloud compute addresses create {address} --global --project {project} --ip-version IPV4",
        address=ADDRESS,
        project=target.project,
    )


def _security_policy(target: CloudProject) -> Iterable[Step]:
    values = {"policy": SECURITY_POLICY, "project": target.project}
    yield _step(
        f"security-policy/{SECURITY_POLICY}",
        f"Cloud Armor security policy {SECURITY_POLICY} (the BackendConfig's securityPolicy)",
        "gcloud compute security-policies describe {policy} --project {project}"
        " --format value(name)",
        "gcloud compute security-policies create {policy} --project {project} --description {why}",
        why="WAF rules and per-client rate limits in front of the AI Agent Platform",
        **values,
    )
    rule_check = (
        "gcloud compute security-policies rules describe {priority} --security-policy {policy}"
        " --project {project} --format value(priority)"
    )
    yield _step(
        f"security-policy-rule/{SECURITY_POLICY}/{WAF_PRIORITY}",
        f"Cloud Armor rule {WAF_PRIORITY} of {SECURITY_POLICY}: refuse vulnerability scanners",
        rule_check,
        "gcloud compute security-policies rules create {priority} --security-policy {policy}"
        " --project {project} --expression {expression} --action deny-403",
        priority=WAF_PRIORITY,
        expression=WAF_EXPRESSION,
        **values,
    )
    yield _step(
        f"security-policy-rule/{SECURITY_POLICY}/{RATE_LIMIT_PRIORITY}",
        f"Cloud Armor rule {RATE_LIMIT_PRIORITY} of {SECURITY_POLICY}: at most {RATE_LIMIT_COUNT}"
        f" requests per {RATE_LIMIT_INTERVAL_SECONDS} s from one client address, then 429",
        rule_check,
        "gcloud compute security-policies rules create {priority} --security-policy {policy}"
        " --project {project} --src-ip-ranges * --action throttle"
        " --rate-limit-threshold-count {count} --rate-limit-threshold-interval-sec {interval}"
        " --conform-action allow --exceed-action deny-429 --enforce-on-key IP",
        priority=RATE_LIMIT_PRIORITY,
        count=RATE_LIMIT_COUNT,
        interval=RATE_LIMIT_INTERVAL_SECONDS,
        **values,
    )


def _bucket(target: CloudProject, purpose: str, why: str) -> Step:
    bucket = target.bucket(purpose)
    return _step(
        f"bucket/{purpose}",
        f"Cloud Storage bucket {bucket} ({why})",
        "gcloud storage buckets describe {bucket} --format value(name)",
        "gcloud storage buckets create {bucket} --project {project} --location {region}"
        " --uniform-bucket-level-access --public-access-prevention",
        bucket=bucket,
        project=target.project,
        region=target.region,
    )


def _service_account(target: CloudProject, name: str, why: str) -> Step:
    return _step(
        f"service-account/{name}",
        f"Service account {target.account(name)} ({why})",
        "gcloud iam service-accounts describe {email} --project {project} --format value(email)",
        "gcloud iam service-accounts create {name} --project {project} --display-name {why}",
        email=target.account(name),
        name=name,
        project=target.project,
        why=why,
    )


def _binding(
    target: CloudProject, resource: str, name: str, member: str, role: str, label: str = ""
) -> Step:
    """Grant `role` to `member` on the resource `name`; `resource` is its gcloud group and
    flags around `{name}`, e.g. `secrets {name} --project {project}`."""
    group, _, rest = resource.partition(" {name}")
    label = label or name
    extra = " --condition None" if group == "projects" else ""
    return _step(
        f"binding/{label}/{role}/{member}",
        f"Grant {role} on {label} to {member}",
        f"gcloud {group} get-iam-policy {{name}}{rest} --flatten bindings[].members"
        " --filter {filter} --format value(bindings.role)",
        f"gcloud {group} add-iam-policy-binding {{name}}{rest} --member {{member}}"
        f" --role {{role}}{extra}",
        name=name,
        project=target.project,
        region=target.region,
        member=member,
        role=role,
        filter=f"bindings.role={role} AND bindings.members={member}",
    )


def _platform_identity(target: CloudProject) -> Iterable[Step]:
    account = target.account(PLATFORM_ACCOUNT)
    member = f"serviceAccount:{account}"
    yield _binding(
        target, "projects {name}", target.project, member, "roles/datastore.user", "the project"
    )
    # On the bucket, not the project: the API's identity is the only one that reads or writes
    # workspaces (runs reach them through the API).
    workspaces = target.bucket("workspaces")
    yield _binding(
        target, "storage buckets {name}", workspaces, member, "roles/storage.objectAdmin"
    )
    # The Kubernetes service account agent-platform/agent-platform acts as the Google one: the
    # binding whose absence made Firestore answer 403 in the first deployment.
    ksa = f"serviceAccount:{target.project}.svc.id.goog[{PLATFORM_NAMESPACE}/{PLATFORM_ACCOUNT}]"
    yield _binding(
        target,
        "iam service-accounts {name} --project {project}",
        account,
        ksa,
        "roles/iam.workloadIdentityUser",
    )


def _iap_access(target: CloudProject, member: str) -> Step:
    # Project-wide, as IAP's own console grants it: the backend service IAP guards is made by
    # the Ingress controller and has no name to bind to before the first sync.
    return _binding(
        target,
        "projects {name}",
        target.project,
        member,
        "roles/iap.httpsResourceAccessor",
        "the project",
    )


def _secret(target: CloudProject, secret: str, reader: str | None = None) -> Iterable[Step]:
    """A Secret Manager secret with a value; `reader` is the identity that may read it (without
    one, only the project's owners, such as the bootstrap, can)."""
    values = {"secret": secret, "project": target.project}
    yield _step(
        f"secret/{secret}",
        f"Secret Manager secret {secret}",
        "gcloud secrets describe {secret} --project {project} --format value(name)",
        "gcloud secrets create {secret} --project {project} --replication-policy automatic",
        **values,
    )
    yield Step(
        key=f"secret-version/{secret}",
        summary=f"A value for {secret}, read from a file or stdin",
        check=_argv(
            "gcloud secrets versions list {secret} --project {project} --filter state=ENABLED"
            " --limit 1 --format value(name)",
            **values,
        ),
        apply=(
            Command(
                _argv(
                    "gcloud secrets versions add {secret} --project {project} --data-file -",
                    **values,
                ),
                stdin_secret=secret,
            ),
        ),
    )
    if reader is None:
        return
    yield _binding(
        target,
        "secrets {name} --project {project}",
        secret,
        f"serviceAccount:{reader}",
        "roles/secretmanager.secretAccessor",
        label=f"secret {secret}",
    )


def _registry(target: CloudProject, pulling: Sequence[Environment]) -> Iterable[Step]:
    yield _step(
        f"artifact-registry/{REPOSITORY}",
        f"Artifact Registry repository {REPOSITORY} (images and their build cache)",
        "gcloud artifacts repositories describe {repository} --project {project}"
        " --location {region} --format value(name)",
        "gcloud artifacts repositories create {repository} --project {project}"
        " --location {region} --repository-format docker",
        repository=REPOSITORY,
        project=target.project,
        region=target.region,
    )
    # Autopilot nodes pull as their project's Compute Engine default service account, named by
    # the project's number; a project's own nodes need the grant too where the organisation no
    # longer makes that account an Editor.
    for environment in pulling:
        number = Lookup(
            f"<{environment.name}-project-number>",
            _argv(
                "gcloud projects describe {project} --format value(projectNumber)",
                project=environment.target.project,
            ),
        )
        grant = _binding(
            target,
            "artifacts repositories {name} --project {project} --location {region}",
            REPOSITORY,
            f"serviceAccount:{number.placeholder}-compute@developer.gserviceaccount.com",
            "roles/artifactregistry.reader",
            label=f"repository {REPOSITORY}",
        )
        yield replace(
            grant,
            summary=f"{grant.summary} ({environment.name}'s nodes pull the images)",
            lookups=(number,),
        )


def _needed_by(step: Step, why: str) -> Step:
    """A grant, saying which pipeline step needs it."""
    return replace(step, summary=f"{step.summary}: {why}")


def _log_writer(target: CloudProject, member: str) -> Step:
    """A build account's right to write its steps' logs, which both triggers' builds need."""
    return _needed_by(
        _binding(
            target,
            "projects {name}",
            target.project,
            member,
            "roles/logging.logWriter",
            "the project",
        ),
        "every step writes its log (logging: CLOUD_LOGGING_ONLY)",
    )


def _pull_request_identity(target: CloudProject) -> Iterable[Step]:
    member = f"serviceAccount:{target.account(PULL_REQUEST_ACCOUNT)}"
    yield _log_writer(target, member)
    yield _needed_by(
        _binding(
            target,
            "artifacts repositories {name} --project {project} --location {region}",
            REPOSITORY,
            member,
            "roles/artifactregistry.reader",
            label=f"repository {REPOSITORY}",
        ),
        "prepare imports the tools image's build cache, and never writes it",
    )
    yield _needed_by(
        _binding(
            target,
            "storage buckets {name}",
            target.bucket("build-artifacts"),
            member,
            "roles/storage.objectCreator",
        ),
        "the build's artifacts: JUnit reports and diff.md",
    )
    yield _needed_by(
        _binding(
            target,
            "secrets {name} --project {project}",
            GITHUB_SECRET,
            member,
            "roles/secretmanager.secretAccessor",
            label=f"secret {GITHUB_SECRET}",
        ),
        "diff posts the PR comment",
    )


def _build_identity(target: CloudProject, triggers: Sequence[Trigger]) -> Iterable[Step]:
    member = f"serviceAccount:{target.account(BUILD_ACCOUNT)}"
    yield _log_writer(target, member)
    yield _needed_by(
        _binding(
            target,
            "artifacts repositories {name} --project {project} --location {region}",
            REPOSITORY,
            member,
            "roles/artifactregistry.writer",
            label=f"repository {REPOSITORY}",
        ),
        "prepare and build-* push images and the build cache; read-digests reads tags",
    )
    artifacts = target.bucket("build-artifacts")
    yield _needed_by(
        _binding(
            target, "storage buckets {name}", artifacts, member, "roles/storage.objectCreator"
        ),
        "the build's artifacts: JUnit reports uploaded after the last step",
    )
    for trigger in triggers:
        yield _step(
            f"trigger/{trigger.name}",
            f"Cloud Build trigger {trigger.name} from {trigger.path}",
            "gcloud builds triggers describe {name} --project {project} --region {region}"
            " --format value(name)",
            "gcloud builds triggers import --project {project} --region {region} --source {path}",
            name=trigger.name,
            path=trigger.path,
            project=target.project,
            region=target.region,
        )


def _kube_context(target: CloudProject) -> Step:
    return _step(
        f"kube-context/{target.project}",
        f"kubectl credentials for {CLUSTER} in {target.project}",
        "kubectl config get-contexts {context} --output name",
        "gcloud container clusters get-credentials {cluster} --project {project}"
        " --location {region}",
        context=target.kube_context,
        cluster=CLUSTER,
        project=target.project,
        region=target.region,
    )


def _argocd(
    home: Environment,
    others: Sequence[Environment],
    repository: RepositoryAccess,
    triggers: Sequence[Trigger],
) -> Iterable[Step]:
    target = home.target
    values = {
        "context": target.kube_context,
        "namespace": ARGOCD_NAMESPACE,
        # Pinned in git, with the platform's settings; Argo CD's own Application keeps it so.
        "install": "apps/argocd/install",
    }
    yield _kube_context(target)
    yield _step(
        f"namespace/{ARGOCD_NAMESPACE}",
        f"Namespace {ARGOCD_NAMESPACE}",
        "kubectl --context {context} get namespace {namespace} --output name",
        "kubectl --context {context} create namespace {namespace}",
        **values,
    )
    # Server-side apply: Argo CD's CRDs are too large for the last-applied annotation.
    yield _step(
        "argocd",
        f"Argo CD {ARGOCD_VERSION}",
        "kubectl --context {context} --namespace {namespace} get deployment argocd-server"
        " --output name",
        "kubectl --context {context} --namespace {namespace} apply --server-side"
        " --force-conflicts --kustomize {install}",
        "kubectl --context {context} --namespace {namespace} wait --for=condition=Available"
        " deployment/argocd-server --timeout=300s",
        **values,
    )
    if others:
        yield from _argocd_identity(target)
    yield _cluster_secret(
        home,
        target,
        IN_CLUSTER,
        {"tlsClientConfig": {"insecure": False}},
        f"Argo CD cluster {home.name}: its own cluster, at {IN_CLUSTER}",
    )
    for other in others:
        yield from _remote_cluster(target, other)
    yield _repository_credential(target, repository)
    yield from _first_images(target, triggers)
    yield _step(
        "argocd-applications",
        "Argo CD applications from apps/argocd (from then on Argo CD syncs from git)",
        "kubectl --context {context} --namespace {namespace} get applications.argoproj.io"
        " --output name",
        "kubectl --context {context} apply --kustomize apps/argocd",
        **values,
    )


def _first_images(target: CloudProject, triggers: Sequence[Trigger]) -> Iterable[Step]:
    """Built images on main before the Applications exist: Argo CD would otherwise roll out
    the repository's placeholder digests, dev at once and prod in its next window."""
    if any(trigger.name == MAIN_TRIGGER for trigger in triggers):
        yield _step(
            f"first-build/{MAIN_TRIGGER}",
            f"A first build of the {MAIN_TRIGGER} trigger, which pins dev's images on main",
            "gcloud builds list --project {project} --region {region}"
            " --filter substitutions.TRIGGER_NAME={trigger} --limit 1 --format value(id)",
            "gcloud builds triggers run {trigger} --branch main --project {project}"
            " --region {region}",
            project=target.project,
            region=target.region,
            trigger=MAIN_TRIGGER,
        )
    # Only a merged promotion pins prod, so the bootstrap stops here until main holds both pins
    # and says what is missing; run again, it goes on from here.
    yield _step(
        "first-images",
        "Built images pinned on main in every environment overlay (dev by the first build, prod "
        "by the merged promotion PR), before any Application exists",
        "gitops pinned --remote origin --branch main",
        "gitops pinned --remote origin --branch main",
    )


# The label by which Argo CD finds the Secrets that describe repositories and clusters.
ARGOCD_KIND_LABEL = "argocd.argoproj.io/secret-type"


def _argocd_secret_check(where: tuple[str, ...], secret_type: str, name: str) -> tuple[str, ...]:
    """The kubectl command that finds Argo CD's Secret `name` of `secret_type`, if it exists."""
    return (
        *where,
        "get",
        "secrets",
        "--selector",
        f"{ARGOCD_KIND_LABEL}={secret_type}",
        "--field-selector",
        f"metadata.name={name}",
        "--output",
        "name",
    )


def _repository_credential(target: CloudProject, repository: RepositoryAccess) -> Step:
    """Argo CD's credential for the repository, as a repository Secret: the read-only App's
    ids, and its key copied from Secret Manager at the moment the Secret is written."""
    name = "repository-agent-platform"
    key = Lookup(
        f"<{ARGOCD_GITHUB_SECRET}>",
        _argv(
            "gcloud secrets versions access latest --secret {secret} --project {project}",
            secret=ARGOCD_GITHUB_SECRET,
            project=target.project,
        ),
    )
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": {ARGOCD_KIND_LABEL: "repository"},
        },
        "type": "Opaque",
        "stringData": {
            "type": "git",
            "url": repository.url,
            "githubAppID": repository.app_id,
            "githubAppInstallationID": repository.installation_id,
        },
        "data": {"githubAppPrivateKey": key.placeholder},
    }
    where = ("kubectl", "--context", target.kube_context, "--namespace", ARGOCD_NAMESPACE)
    return Step(
        key=f"argocd-repository/{name}",
        summary=f"Argo CD reads {repository.url} as the GitHub App {repository.app_id} "
        f"(read-only), with its key from {ARGOCD_GITHUB_SECRET}",
        check=_argocd_secret_check(where, "repository", name),
        apply=(
            Command(
                # Server-side: a client-side apply would copy the key into an annotation.
                (*where, "apply", "--server-side", "--filename", "-"),
                document=yaml.safe_dump(document, sort_keys=False, width=1000),
                document_secret=key,
            ),
        ),
    )


def _argocd_identity(target: CloudProject) -> Iterable[Step]:
    """A Google identity for Argo CD's cluster-facing workloads (Workload Identity), so another
    environment's cluster is reached with short-lived tokens and no credential is stored."""
    account = target.account(ARGOCD_ACCOUNT)
    yield _service_account(target, ARGOCD_ACCOUNT, "Argo CD deploying to other clusters")
    annotation = "iam.gke.io/gcp-service-account"
    for ksa, workload in ARGOCD_WORKLOADS.items():
        yield _binding(
            target,
            "iam service-accounts {name} --project {project}",
            account,
            f"serviceAccount:{target.project}.svc.id.goog[{ARGOCD_NAMESPACE}/{ksa}]",
            "roles/iam.workloadIdentityUser",
        )
        where = ("kubectl", "--context", target.kube_context, "--namespace", ARGOCD_NAMESPACE)
        yield Step(
            key=f"argocd-identity/{ksa}",
            summary=f"Argo CD's {ksa} acts as {account}",
            check=(
                *where,
                "get",
                "serviceaccount",
                ksa,
                "--output",
                "jsonpath={.metadata.annotations." + annotation.replace(".", "\\.") + "}",
            ),
            apply=(
                Command((*where, "annotate", "serviceaccount", ksa, f"{annotation}={account}")),
                # Running pods keep the identity they started with.
                Command((*where, "rollout", "restart", workload)),
            ),
        )


def _remote_cluster(home: CloudProject, other: Environment) -> Iterable[Step]:
    account = home.account(ARGOCD_ACCOUNT)
    yield _kube_context(other.target)
    yield _binding(
        other.target,
        "projects {name}",
        other.target.project,
        f"serviceAccount:{account}",
        "roles/container.clusterViewer",
        label=f"project {other.target.project}",
    )
    # Only what the agent-platform project may sync there, in the project's namespaces.
    yield _step(
        f"argocd-access/{other.name}",
        f"Argo CD ({account}) manages the platform's namespaces of {CLUSTER} in "
        f"{other.target.project} (apps/argocd/remote-cluster)",
        "kubectl --context {context} get clusterrolebinding argocd-manager-namespaces"
        " --output name",
        "kubectl --context {context} apply --kustomize apps/argocd/remote-cluster",
        "kubectl --context {context} create clusterrolebinding argocd-manager-namespaces"
        " --clusterrole argocd-manager-namespaces --user {account}",
        *(
            f"kubectl --context {{context}} --namespace {namespace} create rolebinding"
            " argocd-manager --clusterrole argocd-manager --user {account}"
            for namespace in REMOTE_NAMESPACES
        ),
        context=other.target.kube_context,
        account=account,
    )
    where = _argv(
        "gcloud container clusters describe {cluster} --project {project} --location {region}",
        cluster=CLUSTER,
        project=other.target.project,
        region=other.target.region,
    )
    endpoint = Lookup(f"<{other.name}-endpoint>", (*where, "--format", "value(endpoint)"))
    authority = Lookup(
        f"<{other.name}-ca>", (*where, "--format", "value(masterAuth.clusterCaCertificate)")
    )
    config = {
        # argocd-k8s-auth ships in Argo CD's image and asks the metadata server for a token of
        # the Google identity above.
        "execProviderConfig": {
            "command": "argocd-k8s-auth",
            "args": ["gcp"],
            "apiVersion": "client.authentication.k8s.io/v1beta1",
        },
        "tlsClientConfig": {"insecure": False, "caData": authority.placeholder},
    }
    secret = _cluster_secret(
        other,
        home,
        f"https://{endpoint.placeholder}",
        config,
        f"Argo CD cluster {other.name}: {CLUSTER} in {other.target.project}, reached as {account}",
        # Argo CD watches only what it may manage there.
        namespaces=REMOTE_NAMESPACES,
    )
    yield replace(secret, lookups=(endpoint, authority))


def _cluster_secret(
    environment: Environment,
    home: CloudProject,
    server: str,
    config: Mapping[str, object],
    summary: str,
    namespaces: Sequence[str] = (),
) -> Step:
    """Argo CD's declarative cluster registration: a Secret labelled as a cluster, naming it as
    the Applications' `destination.name` does. It holds no credential. With `namespaces`, Argo
    CD watches only those namespaces and the cluster-scoped kinds it may list."""
    name = f"cluster-{environment.name}"
    data = {"name": environment.name, "server": server, "config": json.dumps(config)}
    if namespaces:
        data |= {"namespaces": ",".join(namespaces), "clusterResources": "true"}
    document = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": {ARGOCD_KIND_LABEL: "cluster"},
        },
        "type": "Opaque",
        "stringData": data,
    }
    where = ("kubectl", "--context", home.kube_context, "--namespace", ARGOCD_NAMESPACE)
    return Step(
        key=f"argocd-cluster/{environment.name}",
        summary=summary,
        check=_argocd_secret_check(where, "cluster", name),
        apply=(
            Command(
                (*where, "apply", "--filename", "-"),
                document=yaml.safe_dump(document, sort_keys=False, width=1000),
            ),
        ),
    )

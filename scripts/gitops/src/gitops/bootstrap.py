"""The GCP setup of one project as a plan: every resource, how to see it, how to create it.

The plan is pure data built from the target and from what was observed to exist, so it can be
printed for review (the default), compared with an expected plan in tests, and applied step by
step by `gitops.bootstrap_shell`. Secret values are never part of it: a command that needs one
names the secret, and the shell feeds the value on stdin.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

# The names the first deployment used, and the ones the manifests and pipelines refer to.
CLUSTER = "ai-agent-cluster"
REPOSITORY = "agent-platform"
PLATFORM_ACCOUNT = "agent-platform"
PLATFORM_NAMESPACE = "agent-platform"
BUILD_ACCOUNT = "cloud-build"
ANTHROPIC_SECRET = "anthropic-api-key"  # noqa: S105 - a name, not a value
GITHUB_SECRET = "github-bot-token"  # noqa: S105 - a name, not a value
ARGOCD_VERSION = "v3.2.0"
ARGOCD_NAMESPACE = "argocd"

APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
)

_PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")


class TargetError(ValueError):
    """The project or region cannot be a GCP project id or region."""


@dataclass(frozen=True)
class Target:
    project: str
    region: str

    def __post_init__(self) -> None:
        if not _PROJECT.fullmatch(self.project):
            raise TargetError(
                f"{self.project!r} is not a GCP project id: 6 to 30 lower-case letters, digits "
                "or hyphens, starting with a letter (see `gcloud projects list`)"
            )
        if not _REGION.fullmatch(self.region):
            raise TargetError(
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
class Command:
    """One command line; `stdin_secret` names the secret whose value is written to its stdin."""

    argv: tuple[str, ...]
    stdin_secret: str | None = None

    def __str__(self) -> str:
        text = shlex.join(self.argv)
        if self.stdin_secret:
            text += f"  < value of secret {self.stdin_secret}"
        return text


@dataclass(frozen=True)
class Step:
    """A resource: present when `check` exits 0 and prints something; `apply` creates it."""

    key: str
    summary: str
    check: tuple[str, ...]
    apply: tuple[Command, ...]

    @property
    def secrets(self) -> set[str]:
        return {c.stdin_secret for c in self.apply if c.stdin_secret is not None}


class Action(StrEnum):
    EXISTS = "exists"
    CREATE = "create"


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    action: Action


@dataclass(frozen=True)
class Trigger:
    """A trigger definition in pipelines/triggers: its name and its file."""

    name: str
    path: str


def steps(target: Target, triggers: Sequence[Trigger], *, delivery: bool = True) -> list[Step]:
    """Every resource of a bootstrapped project, in an order where each needs only earlier ones.

    The delivery project also holds what serves every environment: the image registry, the
    pipelines and Argo CD. A further environment's project (`delivery=False`) holds only what
    its own cluster runs on.
    """
    environment = [
        *(_api(target, api) for api in APIS),
        *_cluster(target),
        _bucket(target, "workspaces", "agents' workspaces between runs"),
        _service_account(target, PLATFORM_ACCOUNT, "AI Agent Platform API"),
        *_secret(target, ANTHROPIC_SECRET, target.account(PLATFORM_ACCOUNT)),
        *_platform_identity(target),
    ]
    if not delivery:
        return environment
    return [
        *environment,
        *_registry(target),
        _bucket(target, "build-artifacts", "test and validation reports of builds"),
        _service_account(target, BUILD_ACCOUNT, "Cloud Build pipelines"),
        *_secret(target, GITHUB_SECRET, target.account(BUILD_ACCOUNT)),
        *_build_identity(target, triggers),
        *_argocd(target),
    ]


def plan(all_steps: Iterable[Step], present: Collection[str]) -> list[PlannedStep]:
    """What to do for each step, given the keys of the steps observed to exist."""
    return [
        PlannedStep(step, Action.EXISTS if step.key in present else Action.CREATE)
        for step in all_steps
    ]


def render(target: Target, planned: Sequence[PlannedStep]) -> str:
    """The plan as a reviewer reads it: what exists, what would be created and how."""
    to_create = sum(1 for p in planned if p.action is Action.CREATE)
    lines = [
        f"Bootstrap plan for project {target.project} in {target.region}: "
        f"{to_create} to create, {len(planned) - to_create} already exist",
        "",
    ]
    for item in planned:
        lines.append(f"[{item.action}] {item.step.summary}")
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


def _api(target: Target, api: str) -> Step:
    return _step(
        f"api/{api}",
        f"Enable {api}",
        "gcloud services list --project {project} --enabled --filter config.name={api}"
        " --format value(config.name)",
        "gcloud services enable {api} --project {project}",
        project=target.project,
        api=api,
    )


def _cluster(target: Target) -> Iterable[Step]:
    where = {"project": target.project, "region": target.region, "cluster": CLUSTER}
    yield _step(
        f"cluster/{CLUSTER}",
        f"GKE Autopilot cluster {CLUSTER} (regular channel, Workload Identity on)",
        "gcloud container clusters describe {cluster} --project {project} --location {region}"
        " --format value(name)",
        "gcloud container clusters create-auto {cluster} --project {project} --location {region}"
        " --release-channel regular",
        **where,
    )
    yield _step(
        "firestore/(default)",
        "Firestore database (default) in native mode",
        "gcloud firestore databases describe --database (default) --project {project}"
        " --format value(name)",
        "gcloud firestore databases create --database (default) --location {region}"
        " --type firestore-native --project {project}",
        **where,
    )


def _bucket(target: Target, purpose: str, why: str) -> Step:
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


def _service_account(target: Target, name: str, why: str) -> Step:
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
    target: Target, resource: str, name: str, member: str, role: str, label: str = ""
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


def _platform_identity(target: Target) -> Iterable[Step]:
    account = target.account(PLATFORM_ACCOUNT)
    member = f"serviceAccount:{account}"
    yield _binding(
        target, "projects {name}", target.project, member, "roles/datastore.user", "the project"
    )
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


def _secret(target: Target, secret: str, reader: str) -> Iterable[Step]:
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
    yield _binding(
        target,
        "secrets {name} --project {project}",
        secret,
        f"serviceAccount:{reader}",
        "roles/secretmanager.secretAccessor",
        label=f"secret {secret}",
    )


def _registry(target: Target) -> Iterable[Step]:
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


def _build_identity(target: Target, triggers: Sequence[Trigger]) -> Iterable[Step]:
    member = f"serviceAccount:{target.account(BUILD_ACCOUNT)}"
    yield _binding(
        target, "projects {name}", target.project, member, "roles/logging.logWriter", "the project"
    )
    yield _binding(
        target,
        "artifacts repositories {name} --project {project} --location {region}",
        REPOSITORY,
        member,
        "roles/artifactregistry.writer",
        label=f"repository {REPOSITORY}",
    )
    artifacts = target.bucket("build-artifacts")
    yield _binding(target, "storage buckets {name}", artifacts, member, "roles/storage.objectAdmin")
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


def _argocd(target: Target) -> Iterable[Step]:
    values = {
        "context": target.kube_context,
        "project": target.project,
        "region": target.region,
        "cluster": CLUSTER,
        "namespace": ARGOCD_NAMESPACE,
        "manifest": f"https://raw.githubusercontent.com/argoproj/argo-cd/{ARGOCD_VERSION}"
        "/manifests/install.yaml",
    }
    yield _step(
        "kube-context",
        f"kubectl credentials for {CLUSTER}",
        "kubectl config get-contexts {context} --output name",
        "gcloud container clusters get-credentials {cluster} --project {project}"
        " --location {region}",
        **values,
    )
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
        " --force-conflicts --filename {manifest}",
        "kubectl --context {context} --namespace {namespace} wait --for=condition=Available"
        " deployment/argocd-server --timeout=300s",
        **values,
    )
    yield _step(
        "argocd-applications",
        "Argo CD applications from apps/argocd (from then on Argo CD syncs from git)",
        "kubectl --context {context} --namespace {namespace} get applications.argoproj.io"
        " --output name",
        "kubectl --context {context} apply --kustomize apps/argocd",
        **values,
    )

"""Workload Identity: pods that call Google APIs run as a KSA bound to a Google service account."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from gitops.manifests import Resource, mapping, scalar_text, sequence
from gitops.policy.model import Context, Severity, Violation, rule
from gitops.policy.workloads import Workload

ANNOTATION = "iam.gke.io/gcp-service-account"
# A user-managed service account: name@project.iam.gserviceaccount.com, where a domain-scoped
# project (example.com:project) writes its id as project.example.com.
_GSA = re.compile(
    r"^([a-z][a-z0-9-]{4,28}[a-z0-9])@([a-z][a-z0-9-]{4,28}[a-z0-9])"
    r"(?:\.([a-z0-9-]+(?:\.[a-z0-9-]+)+))?\.iam\.gserviceaccount\.com$"
)
# Google-managed defaults a KSA may also be bound to: the Compute Engine default service
# account (PROJECT_NUMBER-compute@developer...) and App Engine's (PROJECT_ID@appspot...).
_DEFAULT_GSA = re.compile(
    r"^(?:[0-9]{6,20}-compute@developer\.gserviceaccount\.com"
    r"|[a-z][a-z0-9-]{4,28}[a-z0-9](?:\.[a-z0-9.-]+)?@appspot\.gserviceaccount\.com)$"
)
SERVICE_ACCOUNT_DOC = "https://cloud.google.com/iam/docs/service-account-types"


def gsa_project(value: str) -> str | None:
    """The project id a user-managed service account email names (domain:project if scoped)."""
    match = _GSA.match(value)
    if match is None:
        return None
    project, domain = match.group(2), match.group(3)
    return f"{domain}:{project}" if domain else project


# Settings that make a process call Google APIs: names and values seen in env and ConfigMaps.
_GOOGLE_NAME = re.compile(r"(FIRESTORE|GCS_|GOOGLE_CLOUD|GCP_PROJECT|GCLOUD|PUBSUB|SECRET_MANAGER)")
_GOOGLE_VALUES = frozenset({"firestore", "gcs"})
_GOOGLE_CSI = frozenset({"secrets-store-gke.csi.k8s.io", "gcsfuse.csi.storage.gke.io"})


def _env_pairs(ctx: Context, workload: Workload) -> Iterator[tuple[str, str]]:
    namespace = workload.resource.namespace
    for container in workload.containers:
        for env in sequence(container.get("env")):
            env = mapping(env)
            yield str(env.get("name", "")), str(env.get("value", ""))
        for source in sequence(container.get("envFrom")):
            ref = mapping(mapping(source).get("configMapRef"))
            configmap = ctx.find("ConfigMap", namespace, scalar_text(ref.get("name")))
            if configmap is not None:
                for key, value in mapping(configmap.body.get("data")).items():
                    yield str(key), str(value)


def _uses_csi_google(ctx: Context, workload: Workload) -> bool:
    for volume in workload.volumes:
        csi = mapping(volume.get("csi"))
        driver = str(csi.get("driver", ""))
        if driver in _GOOGLE_CSI:
            return True
        if driver == "secrets-store.csi.k8s.io":
            name = str(mapping(csi.get("volumeAttributes")).get("secretProviderClass", ""))
            spc = ctx.find("SecretProviderClass", workload.resource.namespace, name)
            if spc is None or mapping(spc.body.get("spec")).get("provider") == "gke":
                return True
    return False


def uses_google_apis(ctx: Context, workload: Workload) -> bool:
    """Whether the pods will call Google APIs (Firestore, Cloud Storage, Secret Manager, ...)."""
    for name, value in _env_pairs(ctx, workload):
        if _GOOGLE_NAME.search(name.upper()) or value.lower() in _GOOGLE_VALUES:
            return True
    return _uses_csi_google(ctx, workload)


def _account(ctx: Context, workload: Workload) -> Resource | None:
    return ctx.find("ServiceAccount", workload.resource.namespace, workload.service_account)


@rule(
    "WI001",
    Severity.ERROR,
    "Google API clients run as an annotated KSA",
    reads=("spec.serviceAccountName", f"ServiceAccount.metadata.annotations.{ANNOTATION}"),
    fix=f"set serviceAccountName to a ServiceAccount annotated {ANNOTATION}: "
    "<name>@<project>.iam.gserviceaccount.com, and bind roles/iam.workloadIdentityUser to it",
    doc="Without Workload Identity, Firestore and Cloud Storage answer 403 PERMISSION_DENIED.",
    see="https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity",
)
def annotated_account(ctx: Context) -> Iterator[Violation]:
    for workload in ctx.workloads:
        if not uses_google_apis(ctx, workload):
            continue
        account = _account(ctx, workload)
        if workload.service_account == "default" or account is None:
            yield Violation(
                workload.resource,
                f"calls Google APIs but runs as ServiceAccount {workload.service_account}, "
                "which is not defined here",
            )
        elif not account.annotations.get(ANNOTATION):
            yield Violation(
                workload.resource,
                f"calls Google APIs but ServiceAccount {account.name} has no {ANNOTATION}",
            )


def _annotated(ctx: Context) -> Iterator[tuple[Resource, str]]:
    for account in ctx.kind("ServiceAccount"):
        value = account.annotations.get(ANNOTATION)
        if value is not None:
            yield account, str(value)


@rule(
    "WI002",
    Severity.ERROR,
    "Workload Identity annotation well-formed",
    reads=(f"ServiceAccount.metadata.annotations.{ANNOTATION}",),
    fix="write the annotation as <name>@<project-id>.iam.gserviceaccount.com",
    doc="A malformed annotation makes the metadata server refuse tokens.",
    see=SERVICE_ACCOUNT_DOC,
)
def well_formed(ctx: Context) -> Iterator[Violation]:
    for account, value in _annotated(ctx):
        if not _GSA.match(value) and not _DEFAULT_GSA.match(value):
            yield Violation(account, f"{ANNOTATION} is {value!r}")


@rule(
    "WI003",
    Severity.ERROR,
    "Workload Identity belongs to the environment's project",
    reads=(f"ServiceAccount.metadata.annotations.{ANNOTATION}", "ConfigMap platform-environment"),
    fix="use a Google service account of this environment's GCP_PROJECT "
    "(ConfigMap platform-environment)",
    doc="A service account from another project cannot be impersonated by this cluster's pods.",
    whole_render=True,
)
def same_project(ctx: Context) -> Iterator[Violation]:
    project = ctx.facts.get("GCP_PROJECT")
    if not project:
        return
    for account, value in _annotated(ctx):
        named = gsa_project(value)
        if named is not None and named != project:
            yield Violation(account, f"{ANNOTATION} is in project {named}, not {project}")


_REQUIRED_FACTS = ("ENVIRONMENT", "GCP_PROJECT", "GCP_REGION", "HOST")


def _missing_facts(facts: Mapping[str, Any]) -> list[str]:
    return [key for key in _REQUIRED_FACTS if not facts.get(key)]


@rule(
    "ENV001",
    Severity.ERROR,
    "environment facts in one ConfigMap",
    reads=("ConfigMap agent-platform/platform-environment",),
    fix="give the overlay a ConfigMap platform-environment in agent-platform with ENVIRONMENT, "
    "GCP_PROJECT, GCP_REGION and HOST",
    doc="Policies and the platform read the environment's project, region and host from it.",
    whole_render=True,
)
def environment_facts(ctx: Context) -> Iterator[Violation]:
    if not ctx.is_environment:
        return
    configmap = ctx.find("ConfigMap", "agent-platform", "platform-environment")
    anchor = configmap or (ctx.resources[0] if ctx.resources else None)
    if anchor is None:
        return
    if configmap is None:
        yield Violation(
            anchor, "the environment has no ConfigMap agent-platform/platform-environment"
        )
        return
    missing = _missing_facts(ctx.facts)
    if missing:
        yield Violation(configmap, f"missing {', '.join(missing)}")
    if ctx.facts.get("ENVIRONMENT") not in {None, "dev", "prod"}:
        yield Violation(configmap, f"ENVIRONMENT is {ctx.facts['ENVIRONMENT']!r}, not dev or prod")


RULES = (annotated_account, well_formed, same_project, environment_facts)

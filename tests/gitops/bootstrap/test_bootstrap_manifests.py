"""Everything outside the cluster that the rendered manifests name, the bootstrap plan creates.

The manifests are rendered as `gitops validate` renders them; each test reads one reference in
them (an address, a policy, a secret, an identity, a bucket, a registry, an Argo CD destination)
and finds the plan's command that creates it in the project the environment names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops.bootstrap.plan import (
    CLUSTER,
    IN_CLUSTER,
    REPOSITORY,
    Environment,
    Step,
    steps,
)
from gitops.bootstrap.shell import environments_in, firestore_indexes_in, triggers_in
from gitops.config import load_config
from gitops.manifests import Resource
from gitops.render import render_all
from gitops.targets import discover

ROOT = Path(__file__).resolve().parents[3]
ENVIRONMENTS = {e.name: e for e in environments_in(ROOT)}
IAP_MEMBER = "group:agent-platform-users@example.com"


@pytest.fixture(scope="module")
def rendered(kustomize: str) -> dict[str, tuple[Resource, ...]]:
    """Every target's objects, by target name: the overlays by environment, and apps/argocd."""
    done = render_all(discover(load_config(ROOT)), kustomize)
    broken = {r.target.name: r.error for r in done if r.error is not None}
    assert not broken, broken
    return {r.target.name: r.resources for r in done}


def _one(resources: Sequence[Resource], kind: str, name: str) -> Resource:
    found = [r for r in resources if r.kind == kind and r.name == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _delivery(rendered: dict[str, tuple[Resource, ...]]) -> Environment:
    """The environment whose project holds the registry every overlay pulls from."""
    projects = {
        container["image"].split("/")[1]
        for resources in (rendered[name] for name in ENVIRONMENTS)
        for r in resources
        if r.kind in ("Deployment", "PodTemplate")
        for container in _pod_spec(r)["containers"]
    }
    assert len(projects) == 1, f"the overlays pull from several projects: {projects}"
    (project,) = projects
    return next(e for e in ENVIRONMENTS.values() if e.target.project == project)


def _pod_spec(resource: Resource) -> dict[str, Any]:
    spec: dict[str, Any] = (
        resource.body["template"]["spec"]
        if resource.kind == "PodTemplate"
        else (resource.body["spec"]["template"]["spec"])
    )
    return spec


def _plan(environment: Environment, delivery: Environment) -> list[Step]:
    return steps(
        environment,
        triggers_in(ROOT),
        indexes=firestore_indexes_in(ROOT),
        environments=list(ENVIRONMENTS.values()),
        iap_members=[IAP_MEMBER] if environment.protected else [],
        delivery=environment == delivery,
    )


def _commands(plan: Sequence[Step], *words: str) -> list[tuple[str, ...]]:
    """The apply commands of `plan` holding every one of `words`."""
    return [
        command.argv
        for step in plan
        for command in step.apply
        if all(word in command.argv for word in words)
    ]


def _grants(plan: Sequence[Step], resource: str) -> list[tuple[str, str]]:
    """(member, role) of every grant the plan makes on `resource`."""
    return [
        (argv[argv.index("--member") + 1], argv[argv.index("--role") + 1])
        for argv in _commands(plan, "add-iam-policy-binding", resource)
    ]


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_bootstrap_reads_each_environment_as_its_overlay_renders_it(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    facts = _one(rendered[name], "ConfigMap", "platform-environment").body["data"]
    environment = ENVIRONMENTS[name]

    assert facts["ENVIRONMENT"] == environment.name
    assert facts["GCP_PROJECT"] == environment.target.project
    assert facts["GCP_REGION"] == environment.target.region


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_ingress_static_ip_is_reserved_as_a_global_address(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    environment = ENVIRONMENTS[name]
    ingress = _one(rendered[name], "Ingress", "agent-platform")
    address = ingress.annotations["kubernetes.io/ingress.global-static-ip-name"]

    plan = _plan(environment, _delivery(rendered))

    assert _commands(plan, "addresses", "create", address, "--global", environment.target.project)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_secret_manager_add_on_is_on_for_the_csi_volumes_that_use_it(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    project = ENVIRONMENTS[name].target.project
    drivers = {
        volume["csi"]["driver"]
        for r in rendered[name]
        if r.kind == "Deployment"
        for volume in _pod_spec(r).get("volumes", [])
        if "csi" in volume
    }
    providers = {
        r.body["spec"]["provider"] for r in rendered[name] if r.kind == "SecretProviderClass"
    }
    assert drivers == {"secrets-store-gke.csi.k8s.io"}
    assert providers == {"gke"}

    plan = _plan(ENVIRONMENTS[name], _delivery(rendered))

    assert _commands(plan, "create-auto", CLUSTER, "--enable-secret-manager", project)
    assert _commands(plan, "update", CLUSTER, "--enable-secret-manager", project)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_agent_sandbox_add_on_is_on_where_a_warm_pool_is_rendered(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    project = ENVIRONMENTS[name].target.project
    groups = {
        r.body["apiVersion"].partition("/")[0]
        for r in rendered[name]
        if r.kind in ("SandboxTemplate", "SandboxWarmPool")
    }
    assert groups == {"extensions.agents.x-k8s.io"}

    plan = _plan(ENVIRONMENTS[name], _delivery(rendered))

    assert _commands(plan, "update", CLUSTER, "--enable-agent-sandbox", project)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_every_secret_the_api_mounts_exists_and_its_identity_may_read_it(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    project = ENVIRONMENTS[name].target.project
    deployment = _one(rendered[name], "Deployment", "agent-platform")
    ksa = _one(rendered[name], "ServiceAccount", _pod_spec(deployment)["serviceAccountName"])
    identity = ksa.annotations["iam.gke.io/gcp-service-account"]
    provider = _one(rendered[name], "SecretProviderClass", "anthropic-api-key")
    mounted = yaml.safe_load(provider.body["spec"]["parameters"]["secrets"])

    plan = _plan(ENVIRONMENTS[name], _delivery(rendered))

    assert mounted
    for entry in mounted:
        _, secret_project, _, secret, _, _ = entry["resourceName"].split("/")
        assert secret_project == project
        assert _commands(plan, "secrets", "create", secret, project)
        assert [c for c in _commands(plan, "versions", "add", secret) if "-" in c]
        assert _grants(plan, secret) == [
            (f"serviceAccount:{identity}", "roles/secretmanager.secretAccessor")
        ]


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_each_annotated_service_account_acts_as_a_google_identity_the_plan_creates(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    project = ENVIRONMENTS[name].target.project
    annotated = [
        r
        for r in rendered[name]
        if r.kind == "ServiceAccount" and r.annotations.get("iam.gke.io/gcp-service-account")
    ]
    plan = _plan(ENVIRONMENTS[name], _delivery(rendered))

    assert annotated
    for ksa in annotated:
        identity = ksa.annotations["iam.gke.io/gcp-service-account"]
        account, _, domain = identity.partition("@")
        assert domain == f"{project}.iam.gserviceaccount.com"
        assert _commands(plan, "service-accounts", "create", account, project)
        assert (
            f"serviceAccount:{project}.svc.id.goog[{ksa.namespace}/{ksa.name}]",
            "roles/iam.workloadIdentityUser",
        ) in _grants(plan, identity)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_the_workspace_bucket_exists_and_only_the_apis_identity_may_use_it(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    bucket = (
        "gs://"
        + _one(rendered[name], "ConfigMap", "platform-environment").body["data"]["WORKSPACE_BUCKET"]
    )
    identity = _one(rendered[name], "ServiceAccount", "agent-platform").annotations[
        "iam.gke.io/gcp-service-account"
    ]

    plan = _plan(ENVIRONMENTS[name], _delivery(rendered))

    assert _commands(plan, "buckets", "create", bucket)
    assert _grants(plan, bucket) == [(f"serviceAccount:{identity}", "roles/storage.objectAdmin")]


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_cloud_armor_and_iap_are_set_up_where_the_backend_config_asks_for_them(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    environment = ENVIRONMENTS[name]
    project = environment.target.project
    backend = _one(rendered[name], "BackendConfig", "agent-platform").body["spec"]
    policy = backend.get("securityPolicy", {}).get("name")
    iap = backend.get("iap", {})

    plan = _plan(environment, _delivery(rendered))

    assert (policy is not None) == environment.protected
    assert bool(iap.get("enabled")) == environment.protected
    assert bool(_commands(plan, "services", "enable", "iap.googleapis.com")) == bool(iap)
    if policy is not None:
        assert _commands(plan, "security-policies", "create", policy, project)
        rules = _commands(plan, "rules", "create", "--security-policy", policy)
        assert {r[r.index("--action") + 1] for r in rules} == {"deny-403", "throttle"}
    if iap:
        # A custom OAuth client, so programmatic clients pass IAP (policy IAP001). Its Secret is
        # made by hand from the console's values (docs/runbook.md, "Programmatic access to
        # prod"): the OAuth client itself is created in the console.
        secret = iap["oauthclientCredentials"]["secretName"]
        runbook = (ROOT / "docs/runbook.md").read_text(encoding="utf-8")
        assert f"create secret generic {secret}" in runbook
        assert (IAP_MEMBER, "roles/iap.httpsResourceAccessor") in _grants(plan, project)


@pytest.mark.parametrize("name", sorted(ENVIRONMENTS))
def test_managed_prometheus_is_enabled_for_the_pod_monitoring(
    name: str, rendered: dict[str, tuple[Resource, ...]]
) -> None:
    plan = _plan(ENVIRONMENTS[name], _delivery(rendered))

    assert [r for r in rendered[name] if r.kind == "PodMonitoring"]
    assert _commands(plan, "services", "enable", "monitoring.googleapis.com")


def test_the_registry_every_overlay_pulls_from_exists_and_every_cluster_may_pull(
    rendered: dict[str, tuple[Resource, ...]],
) -> None:
    delivery = _delivery(rendered)
    target = delivery.target
    plan = _plan(delivery, delivery)
    registry = f"{target.region}-docker.pkg.dev/{target.project}/{REPOSITORY}/"
    images = {
        container["image"]
        for name in ENVIRONMENTS
        for r in rendered[name]
        if r.kind in ("Deployment", "PodTemplate")
        for container in _pod_spec(r)["containers"]
    }

    assert all(image.startswith(registry) for image in images), images
    assert _commands(plan, "repositories", "create", REPOSITORY, target.project, target.region)
    readers = [step for step in plan if "roles/artifactregistry.reader" in step.apply[0].argv]
    looked_up = {lookup.argv[3] for step in readers for lookup in step.lookups}
    assert looked_up == {e.target.project for e in ENVIRONMENTS.values()}


def test_argocd_knows_every_cluster_by_the_name_the_applications_deploy_to(
    rendered: dict[str, tuple[Resource, ...]],
) -> None:
    delivery = _delivery(rendered)
    argocd = rendered["apps/argocd"]
    registered = {
        document["stringData"]["name"]: document["stringData"]
        for step in _plan(delivery, delivery)
        if step.key.startswith("argocd-cluster/")
        for document in [yaml.safe_load(step.apply[0].document or "")]
    }
    applications = [r for r in argocd if r.kind == "Application"]
    projects = [r for r in argocd if r.kind == "AppProject"]

    for application in applications:
        destination = application.body["spec"]["destination"]
        if "server" in destination:
            # The root app: Argo CD's own cluster, whatever it is registered as.
            assert destination["server"] == IN_CLUSTER
            continue
        name = destination["name"]
        overlay = application.body["spec"]["source"]["path"].removeprefix("overlays/")
        assert overlay == name, "an environment's Application deploys to its own cluster"
        assert name in registered, f"Argo CD has no cluster named {name}"
        cluster = registered[name]
        if name == delivery.name:
            assert cluster["server"] == IN_CLUSTER
        else:
            assert cluster["server"] == f"https://<{name}-endpoint>"
            assert "execProviderConfig" in json.loads(cluster["config"])
    for project in projects:
        for destination in project.body["spec"]["destinations"]:
            assert destination.get("name", delivery.name) in registered
    assert set(registered) == set(ENVIRONMENTS)

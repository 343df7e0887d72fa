"""The API's workload as rendered: identity, rights, sizing, probes and its way in."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from manifests.rendering import Rendering

PLATFORM = "agent-platform"
RUNS = "agent-runs"
# Exactly what the Kubernetes executor calls: Jobs made from the PodTemplate, followed and
# cancelled; their pods read; a token Secret created per run (deleted with its Job). And what the
# agent-sandbox executor calls: a SandboxClaim per run, followed, marked handed over, released.
EXPECTED_RULES = {
    ("extensions.agents.x-k8s.io", "sandboxclaims", None): {
        "create",
        "delete",
        "get",
        "list",
        "patch",
        "watch",
    },
    ("batch", "jobs", None): {"create", "delete", "get", "list", "watch"},
    ("", "pods", None): {"get", "list", "watch"},
    ("", "podtemplates", ("agent-runner",)): {"get"},
    ("", "secrets", None): {"create"},
}
BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
DECIMAL_SUFFIX = {"k": 10**3, "M": 10**6, "G": 10**9}


def cpu_cores(quantity: str) -> Decimal:
    if quantity.endswith("m"):
        return Decimal(quantity[:-1]) / 1000
    return Decimal(quantity)


def byte_count(quantity: str) -> Decimal:
    for suffix, factor in {**BINARY, **DECIMAL_SUFFIX}.items():
        if quantity.endswith(suffix):
            return Decimal(quantity[: -len(suffix)]) * factor
    return Decimal(quantity)


def pod_specs(rendering: Rendering) -> list[dict[str, Any]]:
    deployments = [d["spec"]["template"]["spec"] for d in rendering.of_kind("Deployment")]
    templates = [t["template"]["spec"] for t in rendering.of_kind("PodTemplate")]
    return deployments + templates


def api_pod(rendering: Rendering) -> dict[str, Any]:
    spec: dict[str, Any] = rendering.get("Deployment", PLATFORM, PLATFORM)["spec"]["template"][
        "spec"
    ]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_platform_role_grants_exactly_what_the_executor_uses(environment: Rendering) -> None:
    role = environment.get("Role", PLATFORM, RUNS)
    granted: dict[tuple[str, str, tuple[str, ...] | None], set[str]] = {}
    for rule in role["rules"]:
        names = tuple(rule["resourceNames"]) if "resourceNames" in rule else None
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource, names), set()).update(rule["verbs"])
    assert granted == EXPECTED_RULES
    assert environment.of_kind("ClusterRole") == []
    assert environment.of_kind("ClusterRoleBinding") == []


def test_platform_role_is_bound_to_the_platform_service_account_only(
    environment: Rendering,
) -> None:
    binding = environment.get("RoleBinding", PLATFORM, RUNS)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": PLATFORM,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": PLATFORM, "namespace": PLATFORM}
    ]


def test_hpa_owned_deployment_has_no_replica_count(environment: Rendering) -> None:
    hpas = environment.of_kind("HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        deployment = environment.get("Deployment", target["name"], hpa["metadata"]["namespace"])
        assert "replicas" not in deployment["spec"]
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_every_service_selects_pods_of_a_workload(environment: Rendering) -> None:
    pod_labels = [
        (d["metadata"]["namespace"], d["spec"]["template"]["metadata"]["labels"])
        for d in environment.of_kind("Deployment")
    ]
    services = environment.of_kind("Service")
    assert services
    for service in services:
        selector = service["spec"]["selector"]
        assert selector, f"Service {service['metadata']['name']} selects nothing"
        assert any(
            namespace == service["metadata"]["namespace"] and selector.items() <= labels.items()
            for namespace, labels in pod_labels
        ), f"Service {service['metadata']['name']} selects no workload's pods"
        ports = {p["name"] for c in api_pod(environment)["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


def test_workload_identity_names_the_environment_project(environment: Rendering) -> None:
    account = environment.get("ServiceAccount", PLATFORM, PLATFORM)
    project = environment.environment()["GCP_PROJECT"]
    assert (
        account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        == f"{PLATFORM}@{project}.iam.gserviceaccount.com"
    )
    assert api_pod(environment)["serviceAccountName"] == PLATFORM


def test_api_pod_is_restricted_non_root_and_read_only(environment: Rendering) -> None:
    pod = api_pod(environment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["nodeSelector"]["kubernetes.io/arch"] == "amd64"
    (api,) = pod["containers"]
    assert api["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["mountPath"]: m["name"] for m in api["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert [p["containerPort"] for p in api["ports"]] == [8000]


def test_api_probes_its_health_endpoints(environment: Rendering) -> None:
    (api,) = api_pod(environment)["containers"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_containers_request_what_they_limit_within_autopilot_bounds(
    environment: Rendering,
) -> None:
    for pod in pod_specs(environment):
        for container in pod["containers"]:
            resources = container["resources"]
            assert resources["requests"] == resources["limits"], container["name"]
            cpu = cpu_cores(resources["requests"]["cpu"])
            memory_gib = byte_count(resources["requests"]["memory"]) / 2**30
            assert cpu >= Decimal("0.05")
            assert cpu % Decimal("0.25") == 0, f"{container['name']}: CPU not in 250m steps"
            assert 1 <= memory_gib / cpu <= Decimal("6.5"), f"{container['name']}: CPU:memory"
            assert byte_count(resources["requests"]["ephemeral-storage"]) >= 10 * 2**20


def test_platform_reads_cloud_settings_and_the_key_from_a_file(environment: Rendering) -> None:
    (api,) = api_pod(environment)["containers"]
    env = env_of(api)
    assert env["AGENT_PLATFORM_STORE"] == "firestore"
    assert env["AGENT_PLATFORM_EXECUTOR"] == "kubernetes"
    assert env["AGENT_PLATFORM_BLOB_STORE"] == "gcs"
    assert env["AGENT_PLATFORM_RUNS_NAMESPACE"] == RUNS
    assert env["AGENT_PLATFORM_RUNNER_TEMPLATE"] == "agent-runner"
    assert (
        env["AGENT_PLATFORM_PUBLIC_URL"] == "http://agent-platform.agent-platform.svc.cluster.local"
    )
    assert env["AGENT_PLATFORM_GCP_PROJECT"] == {
        "configMapKeyRef": {"name": "platform-environment", "key": "GCP_PROJECT"}
    }
    assert env["AGENT_PLATFORM_GCS_BUCKET"] == {
        "configMapKeyRef": {"name": "platform-environment", "key": "WORKSPACE_BUCKET"}
    }
    assert "AGENT_PLATFORM_ANTHROPIC_API_KEY" not in env
    key_file = env["AGENT_PLATFORM_ANTHROPIC_API_KEY_FILE"]
    mounts = {m["name"]: m["mountPath"] for m in api["volumeMounts"]}
    assert key_file.startswith(mounts["anthropic-api-key"] + "/")
    assert "WORKSPACE_BUCKET" in environment.environment()


def test_anthropic_key_comes_from_secret_manager_into_the_api_pod_only(
    environment: Rendering,
) -> None:
    provider = environment.get("SecretProviderClass", "anthropic-api-key", PLATFORM)
    project = environment.environment()["GCP_PROJECT"]
    assert provider["spec"]["provider"] == "gke"
    assert (
        f"projects/{project}/secrets/anthropic-api-key/versions/latest"
        in provider["spec"]["parameters"]["secrets"]
    )
    users = [
        spec for spec in pod_specs(environment) if any("csi" in v for v in spec.get("volumes", []))
    ]
    assert users == [api_pod(environment)]
    (volume,) = [v for v in api_pod(environment)["volumes"] if "csi" in v]
    assert volume["csi"]["driver"] == "secrets-store-gke.csi.k8s.io"
    assert volume["csi"]["volumeAttributes"]["secretProviderClass"] == "anthropic-api-key"


def test_load_balancer_keeps_streams_open_and_checks_readiness(environment: Rendering) -> None:
    service = environment.get("Service", PLATFORM, PLATFORM)
    annotation = service["metadata"]["annotations"]["cloud.google.com/backend-config"]
    assert annotation == '{"default": "agent-platform"}'
    backend = environment.get("BackendConfig", PLATFORM, PLATFORM)["spec"]
    # Longer than the load balancer's 30 s default, which cuts WebSocket and SSE streams.
    assert backend["timeoutSec"] >= 3600
    assert backend["healthCheck"]["requestPath"] == "/readyz"
    assert backend["healthCheck"]["port"] == 8000


def test_ingress_serves_the_environment_host_over_managed_https(environment: Rendering) -> None:
    host = environment.environment()["HOST"]
    ingress = environment.get("Ingress", PLATFORM, PLATFORM)
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == [host]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == PLATFORM
    annotations = ingress["metadata"]["annotations"]
    certificate = environment.get(
        "ManagedCertificate", annotations["networking.gke.io/managed-certificates"], PLATFORM
    )
    assert certificate["spec"]["domains"] == [host]
    frontend = environment.get(
        "FrontendConfig", annotations["networking.gke.io/v1beta1.FrontendConfig"], PLATFORM
    )
    assert frontend["spec"]["redirectToHttps"]["enabled"] is True


def test_api_admits_only_the_load_balancer_runs_and_metrics(environment: Rendering) -> None:
    policies = [
        p for p in environment.of_kind("NetworkPolicy") if p["metadata"]["namespace"] == PLATFORM
    ]
    default_deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
        for p in default_deny
    )
    sources = []
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            assert [p["port"] for p in rule["ports"]] == [8000]
            sources.extend(rule["from"])
    cidrs = {s["ipBlock"]["cidr"] for s in sources if "ipBlock" in s}
    namespaces = {
        s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for s in sources
        if "namespaceSelector" in s
    }
    assert cidrs == {"35.191.0.0/16", "130.211.0.0/22"}
    assert namespaces == {"agent-runs", "gmp-system"}

"""The sandbox every run executes in, as rendered: the PodTemplate, its identity, its network
and the caps on the runs namespace."""

from __future__ import annotations

from typing import Any

from manifests.rendering import Rendering

RUNS = "agent-runs"
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
# Where Autopilot answers DNS: Cloud DNS on the node's link-local resolver, NodeLocal DNSCache.
DNS_ADDRESSES = {"169.254.169.254/32", "169.254.20.10/32"}
KUBE_DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
PLATFORM_PODS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agent-platform"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "agent-platform"}},
}


def runner_pod(rendering: Rendering) -> dict[str, Any]:
    spec: dict[str, Any] = rendering.get("PodTemplate", "agent-runner", RUNS)["template"]["spec"]
    return spec


def test_runner_pod_template_mounts_no_token(environment: Rendering) -> None:
    pod = runner_pod(environment)
    assert pod["automountServiceAccountToken"] is False
    account = environment.get("ServiceAccount", pod["serviceAccountName"], RUNS)
    assert account["automountServiceAccountToken"] is False
    assert "iam.gke.io/gcp-service-account" not in account["metadata"].get("annotations", {})
    volumes = pod["volumes"]
    assert all("projected" not in v and "secret" not in v and "csi" not in v for v in volumes)


def test_runner_pod_template_is_sandboxed(environment: Rendering) -> None:
    pod = runner_pod(environment)
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["nodeSelector"] == {
        "kubernetes.io/arch": "amd64",
        "sandbox.gke.io/runtime": "gvisor",
    }
    assert {
        "key": "sandbox.gke.io/runtime",
        "operator": "Equal",
        "value": "gvisor",
        "effect": "NoSchedule",
    } in pod["tolerations"]
    assert pod["restartPolicy"] == "Never"
    # A ceiling above the longest run the wire format allows; each Job sets its own deadline.
    assert 86_400 < pod["activeDeadlineSeconds"] <= 90_000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert key not in pod
    (runner,) = pod["containers"]
    assert runner["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def test_runner_writes_only_to_its_workspace_and_tmp(environment: Rendering) -> None:
    pod = runner_pod(environment)
    (runner,) = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in runner["volumeMounts"]}
    assert set(mounts) == {"/workspace", "/tmp"}
    assert all("emptyDir" in v and v["emptyDir"]["sizeLimit"] for v in mounts.values())
    env = {e["name"]: e["value"] for e in runner["env"]}
    assert env["AGENT_WORKSPACE"] == "/workspace"
    assert env["AGENT_PLATFORM_URL"] == "http://agent-platform.agent-platform.svc.cluster.local"
    assert env["AGENT_RUN_TOKEN_FILE"].startswith("/var/run/secrets/agent-run/")


def test_runs_namespace_enforces_restricted_pod_security(environment: Rendering) -> None:
    for name in (RUNS, "agent-platform"):
        labels = environment.get("Namespace", name)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_runs_reach_only_dns_and_the_platform_api_and_only_the_api_reaches_them(
    environment: Rendering,
) -> None:
    policies = [
        p for p in environment.of_kind("NetworkPolicy") if p["metadata"]["namespace"] == RUNS
    ]
    assert any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ), "the runs namespace has no default-deny policy"
    reached_platform = False
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            # A warm sandbox's handover port, for the API's pods only.
            assert rule == {"from": [PLATFORM_PODS], "ports": [{"protocol": "TCP", "port": 8790}]}
        for rule in policy["spec"].get("egress", []):
            peers = rule["to"]
            if rule["ports"] == DNS_PORTS:
                for peer in peers:
                    assert peer == KUBE_DNS or peer["ipBlock"] == {"cidr": peer["ipBlock"]["cidr"]}
                    if "ipBlock" in peer:
                        assert peer["ipBlock"]["cidr"] in DNS_ADDRESSES
            else:
                assert peers == [PLATFORM_PODS]
                assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
                reached_platform = True
    assert reached_platform


def test_runs_are_capped_by_quota_and_limit_range(environment: Rendering) -> None:
    hard = environment.get("ResourceQuota", RUNS, RUNS)["spec"]["hard"]
    assert {"pods", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"} <= set(hard)
    (limits,) = environment.get("LimitRange", RUNS, RUNS)["spec"]["limits"]
    assert limits["type"] == "Container"
    assert set(limits["max"]) == {"cpu", "memory", "ephemeral-storage"}

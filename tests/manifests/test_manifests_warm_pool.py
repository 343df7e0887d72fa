"""The warm pool of agent-run sandboxes (AGENT_PLATFORM_EXECUTOR=agent-sandbox), as rendered: the
same sandbox as a Job's pod, a handover port only the API reaches, a pool sized per environment."""

from __future__ import annotations

import copy
from typing import Any

from manifests.rendering import Rendering

RUNS = "agent-runs"
HANDOVER_PORT = 8790
API_PODS = {"app.kubernetes.io/name": "agent-platform"}


def _template_pod(rendering: Rendering) -> dict[str, Any]:
    template = rendering.get("SandboxTemplate", "agent-runner", RUNS)
    spec: dict[str, Any] = template["spec"]["podTemplate"]["spec"]
    return spec


def test_warm_sandbox_is_the_runner_pod_but_for_what_a_pod_without_a_run_needs(
    environment: Rendering,
) -> None:
    job_pod = copy.deepcopy(
        environment.get("PodTemplate", "agent-runner", RUNS)["template"]["spec"]
    )
    warm_pod = copy.deepcopy(_template_pod(environment))
    # The documented differences: no pod deadline (the claim carries the run's), no token file
    # (the token arrives by handover), the handover address and port.
    del job_pod["activeDeadlineSeconds"]
    job_runner, warm_runner = job_pod["containers"][0], warm_pod["containers"][0]
    job_runner["env"] = [e for e in job_runner["env"] if e["name"] != "AGENT_RUN_TOKEN_FILE"]
    handover = [e for e in warm_runner["env"] if e["name"].startswith("AGENT_HANDOVER_")]
    warm_runner["env"] = [e for e in warm_runner["env"] if e not in handover]
    ports = warm_runner.pop("ports")

    assert warm_pod == job_pod
    assert ports == [{"name": "handover", "containerPort": HANDOVER_PORT, "protocol": "TCP"}]
    assert {e["name"]: e.get("value", e.get("valueFrom")) for e in handover} == {
        "AGENT_HANDOVER_PORT": str(HANDOVER_PORT),
        "AGENT_HANDOVER_HOST": {"fieldRef": {"fieldPath": "status.podIP"}},
    }


def test_warm_sandboxes_hold_no_token_and_take_nothing_from_a_claim(
    environment: Rendering,
) -> None:
    template = environment.get("SandboxTemplate", "agent-runner", RUNS)["spec"]
    pod = template["podTemplate"]["spec"]
    runner = pod["containers"][0]

    assert not [v for v in pod["volumes"] if "secret" in v or "projected" in v]
    assert not [e for e in runner["env"] if "TOKEN" in e["name"]]
    assert template["envVarsInjectionPolicy"] == "Disallowed"
    assert template["networkPolicyManagement"] == "Unmanaged"


def test_only_the_api_pods_reach_the_handover_port(environment: Rendering) -> None:
    ingress = environment.get("NetworkPolicy", "allow-ingress-handover", RUNS)["spec"]
    egress = environment.get("NetworkPolicy", "allow-egress-handover", "agent-platform")["spec"]

    assert ingress["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "agent-runner"}
    [rule] = ingress["ingress"]
    assert [p["podSelector"]["matchLabels"] for p in rule["from"]] == [API_PODS]
    assert rule["ports"] == [{"protocol": "TCP", "port": HANDOVER_PORT}]
    assert egress["podSelector"]["matchLabels"] == API_PODS
    [out] = egress["egress"]
    assert out["ports"] == [{"protocol": "TCP", "port": HANDOVER_PORT}]


def test_each_environment_sizes_its_warm_pool_within_the_runs_quota(
    environment: Rendering,
) -> None:
    pool = environment.get("SandboxWarmPool", "agent-runner", RUNS)["spec"]
    quota = environment.get("ResourceQuota", "agent-runs", RUNS)["spec"]["hard"]

    assert pool["sandboxTemplateRef"] == {"name": "agent-runner"}
    assert 0 < pool["replicas"] < int(quota["pods"])
    sizes = {"dev": 1, "prod": 3}
    environment_name = environment.target.rsplit("/", 1)[-1]
    if environment_name in sizes:
        assert pool["replicas"] == sizes[environment_name]

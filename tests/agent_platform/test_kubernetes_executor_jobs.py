"""The Kubernetes executor's pure core: the Job it builds from the repository's PodTemplate and
the verdicts it draws from Job and pod status. The cluster behaviour is in tests/cluster/."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_platform.executors.base import ExecutorError, Launch, SandboxExit
from agent_platform.executors.kubernetes import (
    OWNER_LABEL,
    RUN_ANNOTATION,
    RUN_LABEL,
    KubernetesExecutor,
    build_job,
    build_token_secret,
    job_name,
    job_verdict,
    label_value,
    pod_stall,
    unschedulable_since,
)
from agent_runner.protocol import ENV_RUN_ID, ENV_RUN_TOKEN_FILE, Outcome

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "run-token-value-9f8e7d"


@pytest.fixture
def pod_template() -> dict[str, Any]:
    text = (ROOT / "apps/agent-runner/base/podtemplate.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def launch(run_id: str = "r1a2b3", timeout: int = 300) -> Launch:
    return Launch(
        run_id=run_id,
        agent_id="agent-7",
        owner_id="ada@example.com",
        run_token=TOKEN,
        timeout_seconds=timeout,
        platform_url="http://127.0.0.1:8000",
    )


def build(template: dict[str, Any], run: Launch | None = None) -> dict[str, Any]:
    return build_job(
        template,
        run or launch(),
        template_name="agent-runner",
        ttl_seconds_after_finished=600,
        deadline_margin_seconds=30,
    )


def test_job_name_is_stable_per_run_and_a_valid_dns_label() -> None:
    assert job_name("r1a2b3") == job_name("r1a2b3") == "run-r1a2b3"
    odd = job_name("Run_ID/with:odd chars" * 4)
    assert odd == job_name("Run_ID/with:odd chars" * 4)
    assert odd.startswith("run-")
    assert len(odd) <= 52
    assert odd == odd.lower()
    assert job_name("a") != job_name("b")


def test_label_values_keep_readable_ids_and_digest_the_rest() -> None:
    assert label_value("agent-7") == "agent-7"
    assert label_value("ada@example.com") != "ada@example.com"
    assert len(label_value("x" * 100)) <= 63


def test_job_keeps_the_templates_sandbox_and_adds_the_runs_limits(
    pod_template: dict[str, Any],
) -> None:
    job = build(pod_template)
    pod = job["spec"]["template"]["spec"]
    original = pod_template["template"]["spec"]
    for key in ("securityContext", "runtimeClassName", "nodeSelector", "tolerations"):
        assert pod[key] == original[key]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["securityContext"] == original["containers"][0]["securityContext"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 330
    assert job["spec"]["ttlSecondsAfterFinished"] == 600
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[RUN_LABEL] == "r1a2b3"
    assert labels["app.kubernetes.io/name"] == "agent-runner"
    assert job["metadata"]["labels"][OWNER_LABEL] == label_value("ada@example.com")
    assert job["metadata"]["annotations"][RUN_ANNOTATION] == "r1a2b3"


def test_job_carries_the_token_only_as_a_mounted_secret(pod_template: dict[str, Any]) -> None:
    job = build(pod_template)
    assert TOKEN not in json.dumps(job)
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "run-token")
    assert volume["secret"]["secretName"] == "run-r1a2b3-token"
    assert volume["secret"]["defaultMode"] == 0o440  # readable through the pod's fsGroup
    runner = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in runner["env"]}
    assert env[ENV_RUN_ID] == "r1a2b3"
    assert env[ENV_RUN_TOKEN_FILE] == "/var/run/secrets/agent-run/token"
    assert "AGENT_RUN_TOKEN" not in env
    # The template's in-cluster platform URL stays: the network policy only allows that one.
    assert env["AGENT_PLATFORM_URL"].endswith(".svc.cluster.local")
    mount = next(m for m in runner["volumeMounts"] if m["name"] == "run-token")
    assert mount == {
        "name": "run-token",
        "mountPath": "/var/run/secrets/agent-run",
        "readOnly": True,
    }
    # Only the runner's own volumes besides the token.
    assert sorted(v["name"] for v in pod["volumes"]) == ["run-token", "tmp", "workspace"]


def test_template_without_containers_is_a_clear_error(pod_template: dict[str, Any]) -> None:
    pod_template["template"]["spec"]["containers"] = []
    with pytest.raises(ExecutorError, match="no containers"):
        build(pod_template)


def test_token_secret_is_owned_by_the_job(pod_template: dict[str, Any]) -> None:
    job = build(pod_template)
    job["metadata"]["uid"] = "3f1c-uid"
    secret = build_token_secret(launch(), job)
    assert secret["stringData"] == {"token": TOKEN}
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "run-r1a2b3", "uid": "3f1c-uid"}
    ]


def failed_job(reason: str, message: str = "") -> dict[str, Any]:
    condition = {"type": "Failed", "status": "True", "reason": reason, "message": message}
    return {"spec": {"activeDeadlineSeconds": 330}, "status": {"conditions": [condition]}}


def terminated_pod(container_reason: str, code: int, **status: Any) -> dict[str, Any]:
    state = {"terminated": {"reason": container_reason, "exitCode": code}}
    return {"status": {"phase": "Failed", "containerStatuses": [{"state": state}], **status}}


def test_deadline_exceeded_is_a_timeout() -> None:
    outcome, reason = job_verdict(failed_job("DeadlineExceeded"), [])
    assert outcome is Outcome.TIMED_OUT
    assert "330s" in reason


def test_oom_killed_pod_names_memory() -> None:
    outcome, reason = job_verdict(
        failed_job("BackoffLimitExceeded"), [terminated_pod("OOMKilled", 137)]
    )
    assert outcome is Outcome.FAILED
    assert "OOMKilled" in reason


def test_evicted_pod_says_evicted() -> None:
    pod = terminated_pod("Error", 137, reason="Evicted", message="low on memory")
    outcome, reason = job_verdict(failed_job("BackoffLimitExceeded"), [pod])
    assert outcome is Outcome.FAILED
    assert reason == "the sandbox was evicted: low on memory"


def test_nonzero_exit_reports_the_code() -> None:
    _, reason = job_verdict(failed_job("BackoffLimitExceeded"), [terminated_pod("Error", 3)])
    assert reason == "the runner exited with code 3 (Error)"


def test_failed_job_without_pods_reports_the_jobs_message() -> None:
    _, reason = job_verdict(failed_job("BackoffLimitExceeded", "Job has reached the limit"), [])
    assert reason == "the sandbox failed: Job has reached the limit"


def test_completed_job_without_a_result_is_a_failure() -> None:
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    outcome, reason = job_verdict(complete, [])
    assert outcome is Outcome.FAILED
    assert "without reporting a result" in reason


def test_image_pull_error_stalls_the_pod() -> None:
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "not found: agent-runner:x"}}
    pod = {"status": {"phase": "Pending", "containerStatuses": [{"state": waiting}]}}
    assert pod_stall(pod) == "image pull error: not found: agent-runner:x"
    running = {"status": {"containerStatuses": [{"state": {"running": {}}}]}}
    assert pod_stall(running) is None


def test_unschedulable_pod_reports_since_when() -> None:
    since = datetime.now(UTC) - timedelta(minutes=3)
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastTransitionTime": since.isoformat().replace("+00:00", "Z"),
    }
    pod = {"status": {"phase": "Pending", "conditions": [condition]}}
    found = unschedulable_since(pod)
    assert found is not None
    assert abs((found - since).total_seconds()) < 1
    scheduled = {"status": {"phase": "Running", "conditions": [condition]}}
    assert unschedulable_since(scheduled) is None


async def ignore_exit(_: SandboxExit) -> None:
    return None


def executor_for(kubeconfig: Path) -> KubernetesExecutor:
    return KubernetesExecutor(
        kubeconfig=kubeconfig,
        namespace="agent-runs",
        template_name="agent-runner",
        on_exit=ignore_exit,
    )


async def test_missing_kubeconfig_is_a_clear_executor_error(tmp_path: Path) -> None:
    executor = executor_for(tmp_path / "absent.kubeconfig")
    try:
        with pytest.raises(ExecutorError, match="AGENT_PLATFORM_KUBECONFIG"):
            await executor.start(launch())
    finally:
        await executor.aclose()


async def test_unreachable_api_server_is_a_clear_executor_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the executor dials it
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    executor = executor_for(kubeconfig)
    try:
        with pytest.raises(ExecutorError, match="could not be reached"):
            await executor.reconcile(["run-1"])
        with pytest.raises(ExecutorError, match="could not be reached"):
            await executor.start(launch())
    finally:
        await executor.aclose()

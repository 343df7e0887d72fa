"""The Job and token Secret of one run, built from the repository's own PodTemplate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_platform.executors.base import ExecutorError, Launch
from agent_platform.executors.job_spec import (
    OWNER_LABEL,
    RUN_ANNOTATION,
    RUN_LABEL,
    build_job,
    build_token_secret,
    job_name,
    label_value,
)
from agent_runner.protocol import ENV_RUN_ID, ENV_RUN_TOKEN_FILE

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

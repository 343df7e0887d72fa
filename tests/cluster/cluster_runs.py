"""Steps the cluster tests take against a platform with the Kubernetes executor: as a user
through the API, and in the pod's place as its runner, with the token from the run's Secret."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
from agent_platform.executors.job_spec import RUN_LABEL, job_name
from agent_runner.protocol import EVENTS_PATH
from servers.control_plane import ControlPlane
from servers.platform import RunningPlatform
from servers.waiting import wait_for

RUNS = "agent-runs"
WAIT = 60.0


def kubernetes_env(kubeconfig: Path) -> dict[str, str]:
    """The platform's settings for running runs as Jobs on the control plane, as its own
    ServiceAccount."""
    return {
        "AGENT_PLATFORM_EXECUTOR": "kubernetes",
        "AGENT_PLATFORM_KUBECONFIG": str(kubeconfig),
        "AGENT_PLATFORM_RUNS_NAMESPACE": RUNS,
        "AGENT_PLATFORM_RUNNER_TEMPLATE": "agent-runner",
    }


def api(platform: RunningPlatform, method: str, path: str, **kwargs: Any) -> Any:
    answer = httpx.request(
        method, f"{platform.base_url}{path}", headers=platform.headers, timeout=30, **kwargs
    )
    assert answer.is_success, answer.text
    return answer.json()


def start_run(platform: RunningPlatform, timeout_seconds: int = 600) -> str:
    agent = api(
        platform,
        "POST",
        "/api/agents",
        json={"name": "cluster", "limits": {"timeout_seconds": timeout_seconds}},
    )
    run = api(platform, "POST", f"/api/agents/{agent['id']}/runs", json={"task": "ls"})
    run_id: str = run["id"]
    return run_id


def status(platform: RunningPlatform, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = api(platform, "GET", f"/api/runs/{run_id}")
    return body


def wait_status(platform: RunningPlatform, run_id: str, wanted: str) -> dict[str, Any]:
    wait_for(
        lambda: status(platform, run_id)["status"] == wanted,
        timeout=WAIT,
        what=f"run {run_id} to be {wanted}",
        interval=0.2,
    )
    return status(platform, run_id)


def running_pod(plane: ControlPlane, run_id: str) -> str:
    def pods() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = plane.get_json(
            "pods", "-n", RUNS, "-l", f"{RUN_LABEL}={run_id}"
        )["items"]
        return [p for p in items if (p.get("status") or {}).get("phase") == "Running"]

    wait_for(lambda: bool(pods()), timeout=WAIT, what=f"the pod of run {run_id} to run")
    name: str = pods()[0]["metadata"]["name"]
    return name


def mounted_token(plane: ControlPlane, run_id: str) -> str:
    """What the kubelet would mount into the runner: the token in the run's Secret."""
    secret = plane.get_json("secret", f"{job_name(run_id)}-token", "-n", RUNS)
    return base64.b64decode(secret["data"]["token"]).decode()


def post_as_runner(
    platform: RunningPlatform, run_id: str, token: str, events: list[dict[str, Any]]
) -> httpx.Response:
    return httpx.post(
        f"{platform.base_url}{EVENTS_PATH.format(run_id=run_id)}",
        json={"events": events},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def job_condition(plane: ControlPlane, run_id: str) -> str | None:
    job = plane.get_json("job", job_name(run_id), "-n", RUNS)
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["status"] == "True" and condition["type"] in ("Complete", "Failed"):
            kind: str = condition["type"]
            return kind
    return None

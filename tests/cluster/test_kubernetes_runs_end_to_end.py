"""The platform with AGENT_PLATFORM_EXECUTOR=kubernetes against the local control plane: runs
become Jobs, and the test plays the runner in the pod's place with the token from its Secret."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from agent_platform.executors.job_spec import RUN_LABEL, job_name
from agent_runner.protocol import ASSIGNMENT_PATH
from cluster.cluster_runs import (
    RUNS,
    WAIT,
    api,
    job_condition,
    kubernetes_env,
    mounted_token,
    post_as_runner,
    running_pod,
    start_run,
    status,
    wait_status,
)
from servers.control_plane import ControlPlane
from servers.executors import delete_run_jobs
from servers.platform import RunningPlatform, event, result_event, running_platform
from servers.waiting import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, control_plane: ControlPlane, platform_kubeconfig: Path
) -> Iterator[RunningPlatform]:
    """One platform for the module: every test leaves its runs finished."""
    env = kubernetes_env(platform_kubeconfig)
    with running_platform(tmp_path_factory.mktemp("platform"), env) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_runs(control_plane: ControlPlane) -> Iterator[None]:
    yield
    delete_run_jobs(control_plane)


def test_runner_events_drive_the_run_to_succeeded_while_its_job_completes(
    platform: RunningPlatform, control_plane: ControlPlane
) -> None:
    run_id = start_run(platform)
    pod = running_pod(control_plane, run_id)
    token = mounted_token(control_plane, run_id)

    assignment = httpx.get(
        f"{platform.base_url}{ASSIGNMENT_PATH.format(run_id=run_id)}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert assignment.status_code == 200, assignment.text
    assert assignment.json()["task"] == "ls"
    answer = post_as_runner(
        platform,
        run_id,
        token,
        [event(1, "status", status="running"), event(2), result_event(3, "succeeded")],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["acked_seq"] == 3

    ended_before = platform.log().count("sandbox ended")
    control_plane.end_pod_container(pod, RUNS, exit_code=0)
    wait_for(
        lambda: job_condition(control_plane, run_id) == "Complete",
        timeout=WAIT,
        what="the Job to complete",
    )
    # The executor reports the Job's end too; the runner's own result stands.
    wait_for(
        lambda: platform.log().count("sandbox ended") > ended_before,
        timeout=WAIT,
        what="the platform to see the Job end",
    )
    assert status(platform, run_id)["status"] == "succeeded"


def test_job_deadline_times_the_run_out(
    platform: RunningPlatform, control_plane: ControlPlane
) -> None:
    run_id = start_run(platform, timeout_seconds=5)
    running_pod(control_plane, run_id)

    finished = wait_status(platform, run_id, "timed_out")
    assert "time limit" in (finished.get("error") or "")
    assert job_condition(control_plane, run_id) == "Failed"


def test_cancelled_run_loses_its_job_and_pods(
    platform: RunningPlatform, control_plane: ControlPlane
) -> None:
    run_id = start_run(platform)
    running_pod(control_plane, run_id)

    api(platform, "POST", f"/api/runs/{run_id}/cancel")

    wait_status(platform, run_id, "cancelled")
    wait_for(
        lambda: (
            not control_plane.exists("job", job_name(run_id), RUNS)
            and not control_plane.get_json("pods", "-n", RUNS, "-l", f"{RUN_LABEL}={run_id}")[
                "items"
            ]
        ),
        timeout=WAIT,
        what="the Job and its pods to go",
    )


def test_restarted_platform_keeps_running_jobs_and_fails_runs_whose_job_is_gone(
    platform: RunningPlatform, control_plane: ControlPlane
) -> None:
    kept = start_run(platform)
    lost = start_run(platform)
    running_pod(control_plane, kept)
    running_pod(control_plane, lost)

    platform.kill()
    control_plane.kubectl(
        "delete", "job", job_name(lost), "-n", RUNS, "--cascade=foreground", "--timeout=60s"
    )
    platform.start()

    assert "lost" in (wait_status(platform, lost, "failed").get("error") or "")
    assert status(platform, kept)["status"] == "running"
    token = mounted_token(control_plane, kept)
    answer = post_as_runner(platform, kept, token, [result_event(1, "succeeded")])
    assert answer.status_code == 200, answer.text
    wait_status(platform, kept, "succeeded")

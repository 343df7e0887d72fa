"""The Kubernetes executor against a real control plane, acting as the platform's ServiceAccount
with the Role from the rendered base. kwok plays the kubelet: pods run until a test ends them.

What every executor does (exit, cancel, timeout, reconcile, close) is in the executor contract
suite; here is what only Jobs do: the spec they get, their token Secret, and the ways a pod dies."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from agent_platform.executors.base import SandboxExit
from agent_platform.executors.job_spec import RUN_LABEL, job_name
from agent_platform.executors.kubernetes import KubernetesExecutor
from agent_runner.protocol import Outcome
from servers.control_plane import IMAGE_PULL_ANNOTATION, ControlPlane
from servers.executors import (
    RUNNER_TEMPLATE,
    RUNS_NAMESPACE,
    Exits,
    connect_kubernetes,
    delete_run_jobs,
    new_launch,
    pods_of,
    wait_running_pod,
)
from servers.waiting import eventually

pytestmark = pytest.mark.cluster

TEMPLATE = RUNNER_TEMPLATE


def gone(plane: ControlPlane, run_id: str) -> bool:
    name = job_name(run_id)
    return (
        not plane.exists("job", name, RUNS_NAMESPACE)
        and not plane.exists("secret", f"{name}-token", RUNS_NAMESPACE)
        and not pods_of(plane, run_id)
    )


@pytest.fixture
def exits() -> Exits:
    return Exits()


@pytest.fixture
def clean_runs(control_plane: ControlPlane) -> Iterator[None]:
    """Every test leaves the runs namespace empty, so the ResourceQuota never fills up."""
    yield
    delete_run_jobs(control_plane)


@pytest.fixture
async def executor(
    platform_kubeconfig: Path, exits: Exits, clean_runs: None
) -> AsyncIterator[KubernetesExecutor]:
    running = connect_kubernetes(platform_kubeconfig, exits)
    yield running
    await running.aclose()


async def test_start_creates_one_job_from_the_pod_template_with_its_sandboxing(
    control_plane: ControlPlane, executor: KubernetesExecutor
) -> None:
    run = new_launch()
    await executor.start(run)
    await executor.start(run)  # a retried start finds the first Job

    jobs = control_plane.get_json("jobs", "-n", RUNS_NAMESPACE, "-l", f"{RUN_LABEL}={run.run_id}")
    assert len(jobs["items"]) == 1
    job = jobs["items"][0]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert job["spec"]["ttlSecondsAfterFinished"] == 300
    assert run.run_token not in json.dumps(job)

    template = control_plane.get_json("podtemplate", TEMPLATE, "-n", RUNS_NAMESPACE)
    wanted = template["template"]["spec"]
    pod_spec = job["spec"]["template"]["spec"]
    for key in (
        "securityContext",
        "runtimeClassName",
        "serviceAccountName",
        "automountServiceAccountToken",
        "nodeSelector",
        "tolerations",
    ):
        assert pod_spec[key] == wanted[key], key
    runner, wanted_runner = pod_spec["containers"][0], wanted["containers"][0]
    assert runner["securityContext"] == wanted_runner["securityContext"]
    assert runner["resources"] == wanted_runner["resources"]
    assert runner["image"] == wanted_runner["image"]

    secret = control_plane.get_json("secret", f"{job_name(run.run_id)}-token", "-n", RUNS_NAMESPACE)
    assert base64.b64decode(secret["data"]["token"]).decode() == run.run_token
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"]) == ("Job", job["metadata"]["uid"])

    pod_name = await wait_running_pod(control_plane, run.run_id)
    pod = control_plane.get_json("pod", pod_name, "-n", RUNS_NAMESPACE)
    assert pod["spec"]["runtimeClassName"] == "gvisor"
    assert run.run_token not in json.dumps(pod)


async def test_sandbox_that_exits_cleanly_completes_its_job(
    control_plane: ControlPlane, executor: KubernetesExecutor, exits: Exits
) -> None:
    run = new_launch()
    await executor.start(run)
    pod = await wait_running_pod(control_plane, run.run_id)
    control_plane.end_pod_container(pod, RUNS_NAMESPACE, exit_code=0)

    ended = await exits.wait_for(run.run_id)
    job = control_plane.get_json("job", job_name(run.run_id), "-n", RUNS_NAMESPACE)
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    # The runner reports its own result before exiting; had it not, the run fails honestly.
    assert ended.outcome is Outcome.FAILED
    assert "without reporting a result" in ended.reason


@pytest.mark.parametrize(
    ("exit_code", "container_reason", "pod_reason", "expected"),
    [
        (137, "OOMKilled", "", "ran out of memory (OOMKilled)"),
        (137, "Error", "Evicted", "the sandbox was evicted"),
    ],
)
async def test_sandbox_failure_fails_the_run_with_the_reason(
    control_plane: ControlPlane,
    executor: KubernetesExecutor,
    exits: Exits,
    exit_code: int,
    container_reason: str,
    pod_reason: str,
    expected: str,
) -> None:
    run = new_launch()
    await executor.start(run)
    pod = await wait_running_pod(control_plane, run.run_id)
    control_plane.end_pod_container(
        pod, RUNS_NAMESPACE, exit_code=exit_code, reason=container_reason, pod_reason=pod_reason
    )

    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.FAILED
    assert expected in ended.reason


async def test_cancel_removes_the_job_its_pods_and_its_token(
    control_plane: ControlPlane, executor: KubernetesExecutor, exits: Exits
) -> None:
    run = new_launch()
    await executor.start(run)
    await wait_running_pod(control_plane, run.run_id)

    await executor.cancel(run.run_id)

    assert exits.of(run.run_id) == [SandboxExit(run.run_id, Outcome.CANCELLED, "cancelled")]
    await eventually(lambda: gone(control_plane, run.run_id), "the Job, pods and Secret to go")
    assert len(exits.of(run.run_id)) == 1


def job_complete(plane: ControlPlane, run_id: str) -> bool:
    job = plane.get_json("job", job_name(run_id), "-n", RUNS_NAMESPACE)
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


async def test_orphan_job_is_deleted_at_reconcile_and_a_finished_one_is_kept(
    control_plane: ControlPlane, platform_kubeconfig: Path, exits: Exits, clean_runs: None
) -> None:
    before = connect_kubernetes(platform_kubeconfig, Exits())
    orphan, finished = new_launch(), new_launch()
    await before.start(orphan)
    await before.start(finished)
    pod = await wait_running_pod(control_plane, finished.run_id)
    control_plane.end_pod_container(pod, RUNS_NAMESPACE, exit_code=0)
    await eventually(lambda: job_complete(control_plane, finished.run_id), "the Job to finish")
    await before.aclose()

    after = connect_kubernetes(platform_kubeconfig, exits)
    try:
        found = await after.reconcile([])
        assert list(found.orphans_removed) == [orphan.run_id]
        assert list(found.lost) == []
        await eventually(lambda: gone(control_plane, orphan.run_id), "the orphan Job to go")
        # Kept for inspection until its TTL.
        assert control_plane.exists("job", job_name(finished.run_id), RUNS_NAMESPACE)
    finally:
        await after.aclose()


async def test_job_deleted_behind_the_platforms_back_fails_the_run(
    control_plane: ControlPlane, executor: KubernetesExecutor, exits: Exits
) -> None:
    run = new_launch()
    await executor.start(run)
    await wait_running_pod(control_plane, run.run_id)

    control_plane.kubectl("delete", "job", job_name(run.run_id), "-n", RUNS_NAMESPACE)

    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.FAILED
    assert "deleted" in ended.reason


@pytest.fixture
def unschedulable_template(control_plane: ControlPlane) -> Iterator[None]:
    """The runner template asks for a node pool the cluster does not have, then is restored."""
    patch = {"template": {"spec": {"nodeSelector": {"agent-platform.test/pool": "missing"}}}}
    control_plane.kubectl(
        "patch", "podtemplate", TEMPLATE, "-n", RUNS_NAMESPACE, "--type=merge",
        "-p", json.dumps(patch),
    )  # fmt: skip
    yield
    undo = {"template": {"spec": {"nodeSelector": {"agent-platform.test/pool": None}}}}
    control_plane.kubectl(
        "patch", "podtemplate", TEMPLATE, "-n", RUNS_NAMESPACE, "--type=merge",
        "-p", json.dumps(undo),
    )  # fmt: skip


async def test_run_unschedulable_for_too_long_fails_and_its_job_goes(
    control_plane: ControlPlane,
    platform_kubeconfig: Path,
    exits: Exits,
    clean_runs: None,
    unschedulable_template: None,
) -> None:
    patient = connect_kubernetes(platform_kubeconfig, exits, unschedulable_timeout_seconds=2)
    try:
        run = new_launch()
        await patient.start(run)
        ended = await exits.wait_for(run.run_id)
        assert ended.outcome is Outcome.FAILED
        assert "could not be scheduled" in ended.reason
        await eventually(lambda: gone(control_plane, run.run_id), "the stuck Job to go")
    finally:
        await patient.aclose()


@pytest.fixture
def missing_image_template(control_plane: ControlPlane) -> Iterator[None]:
    """The runner template names an image the registry does not have, then is restored."""
    original = control_plane.get_json("podtemplate", TEMPLATE, "-n", RUNS_NAMESPACE)
    broken = json.loads(json.dumps(original))
    broken["template"]["metadata"].setdefault("annotations", {})[IMAGE_PULL_ANNOTATION] = "true"
    broken["template"]["spec"]["containers"][0]["image"] = "registry.invalid/agent-runner:gone"
    control_plane.kubectl("replace", "-f", "-", stdin=json.dumps(broken))
    yield
    restored = control_plane.get_json("podtemplate", TEMPLATE, "-n", RUNS_NAMESPACE)
    restored["template"] = original["template"]
    control_plane.kubectl("replace", "-f", "-", stdin=json.dumps(restored))


async def test_image_pull_error_fails_the_run_and_its_job_goes(
    control_plane: ControlPlane,
    executor: KubernetesExecutor,
    exits: Exits,
    missing_image_template: None,
) -> None:
    run = new_launch()
    await executor.start(run)

    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.FAILED
    assert ended.reason.startswith("image pull error:")
    assert "registry.invalid/agent-runner:gone" in ended.reason
    await eventually(lambda: gone(control_plane, run.run_id), "the stuck Job to go")

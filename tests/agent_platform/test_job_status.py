"""The verdicts drawn from a run's Job and pod status when the runner could not report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent_platform.executors.job_status import job_verdict, pod_stall, unschedulable_since
from agent_runner.protocol import Outcome


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
    running: dict[str, Any] = {"status": {"containerStatuses": [{"state": {"running": {}}}]}}
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

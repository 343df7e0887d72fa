"""How a run's Job and pods ended, read from their status: pure functions over plain Kubernetes
JSON, so the watch loop only decides when to ask."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from agent_runner.protocol import Outcome

IMAGE_PULL_REASONS: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def job_finished(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def _container_states(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or [])]
    statuses += status.get("containerStatuses") or []
    return [s.get("state") or {} for s in statuses]


def pod_failure(pod: dict[str, Any]) -> str | None:
    """Why a pod's sandbox died, in words a user reads on the run, or None if it did not."""
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return f"the sandbox was evicted: {status.get('message') or 'node pressure'}"
    disruption = _condition(pod, "DisruptionTarget")
    if disruption is not None and status.get("phase") == "Failed":
        detail = disruption.get("message") or disruption.get("reason") or "disrupted"
        return f"the sandbox was evicted: {detail}"
    for state in _container_states(pod):
        terminated = state.get("terminated") or {}
        if terminated.get("reason") == "OOMKilled":
            return "the sandbox ran out of memory (OOMKilled); raise the runner's memory limit"
        code = terminated.get("exitCode")
        if code not in (None, 0):
            reason = terminated.get("reason") or "Error"
            return f"the runner exited with code {code} ({reason})"
    return None


def pod_stall(pod: dict[str, Any]) -> str | None:
    """Why a pod that has not started never will on its own, or None if it still may."""
    for state in _container_states(pod):
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            message = waiting.get("message") or waiting["reason"]
            return f"image pull error: {message}"
    return None


def unschedulable_since(pod: dict[str, Any]) -> datetime | None:
    if (pod.get("status") or {}).get("phase") != "Pending":
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            since = condition.get("lastTransitionTime")
            return _parse_time(since) if isinstance(since, str) else datetime.now(UTC)
    return None


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def job_verdict(job: dict[str, Any], pods: Sequence[dict[str, Any]]) -> tuple[Outcome, str]:
    """How a finished Job ended for its run, for when the runner could not report it."""
    failed = _condition(job, "Failed")
    if failed is None:
        return Outcome.FAILED, "the runner exited without reporting a result"
    if failed.get("reason") == "DeadlineExceeded":
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        return Outcome.TIMED_OUT, f"the run exceeded its time limit ({deadline}s Job deadline)"
    for pod in pods:
        reason = pod_failure(pod) or pod_stall(pod)
        if reason is not None:
            return Outcome.FAILED, reason
    detail = failed.get("message") or failed.get("reason") or "the Job failed"
    return Outcome.FAILED, f"the sandbox failed: {detail}"

"""The Job and Secret of one run, built from the `agent-runner` PodTemplate: pure functions over
plain Kubernetes JSON.

The sandbox spec (image, security context, resources, runtime class) is the PodTemplate's, so it
is reviewed in pull requests like every other manifest; this module only adds what belongs to one
run: its labels, its deadline, its environment and the name of the Secret holding its token.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any, Final

from agent_runner.protocol import (
    ENV_PLATFORM_URL,
    ENV_RUN_ID,
    ENV_RUN_TOKEN,
    ENV_RUN_TOKEN_FILE,
)

from agent_platform.executors.base import ExecutorError, Launch

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "agent-platform"
RUN_LABEL: Final = "agent-platform.dev/run-id"
AGENT_LABEL: Final = "agent-platform.dev/agent-id"
OWNER_LABEL: Final = "agent-platform.dev/owner-id"
# Label values are limited to 63 characters of a small alphabet; the exact run id lives here.
RUN_ANNOTATION: Final = "agent-platform.dev/run-id"
SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGED_BY}"

# Where the run token is mounted: names and paths, not secrets.
TOKEN_VOLUME: Final = "run-token"  # noqa: S105
TOKEN_DIR: Final = "/var/run/secrets/agent-run"  # noqa: S105
TOKEN_KEY: Final = "token"  # noqa: S105

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# Job pods are named `<job>-<5 characters>` and the Job's name is itself a label value.
_MAX_JOB_NAME = 52


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def job_name(run_id: str) -> str:
    """The run's Job name: the same for every attempt, so a retry finds the first Job."""
    candidate = f"run-{run_id}"
    if _DNS_LABEL.match(candidate) and len(candidate) <= _MAX_JOB_NAME:
        return candidate
    return f"run-{_digest(run_id)}"


def secret_name(run_id: str) -> str:
    return f"{job_name(run_id)}-token"


def label_value(value: str) -> str:
    """`value` if Kubernetes accepts it as a label value, else a stable digest of it."""
    if len(value) <= 63 and _LABEL_VALUE.match(value):
        return value
    return _digest(value)


def run_labels(launch: Launch) -> dict[str, str]:
    return {
        MANAGED_BY_LABEL: MANAGED_BY,
        RUN_LABEL: label_value(launch.run_id),
        AGENT_LABEL: label_value(launch.agent_id),
        OWNER_LABEL: label_value(launch.owner_id),
    }


def _runner_container(containers: list[dict[str, Any]], template_name: str) -> dict[str, Any]:
    for container in containers:
        if container.get("name") == template_name:
            return container
    return containers[0]


def build_job(
    pod_template: dict[str, Any],
    launch: Launch,
    *,
    template_name: str,
    ttl_seconds_after_finished: int,
    deadline_margin_seconds: int,
) -> dict[str, Any]:
    """The Job for one run: the PodTemplate's pod, plus the run's labels, deadline and token.

    The token itself is not in the Job: only the name of the Secret that will hold it.
    """
    template = copy.deepcopy(pod_template.get("template") or {})
    spec: dict[str, Any] = template.get("spec") or {}
    containers: list[dict[str, Any]] = spec.get("containers") or []
    if not containers:
        raise ExecutorError(
            f"PodTemplate {template_name} has no containers; fix apps/agent-runner/base"
        )
    labels = run_labels(launch)
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {
        **(metadata.get("annotations") or {}),
        RUN_ANNOTATION: launch.run_id,
    }
    # Jobs only take Never or OnFailure, and a retried agent would repeat its side effects.
    spec["restartPolicy"] = "Never"
    # Non-root runners read the token through the pod's fsGroup when there is one.
    fs_group = (spec.get("securityContext") or {}).get("fsGroup")
    spec["volumes"] = [
        *(v for v in spec.get("volumes") or [] if v.get("name") != TOKEN_VOLUME),
        {
            "name": TOKEN_VOLUME,
            "secret": {
                "secretName": secret_name(launch.run_id),
                "defaultMode": 0o440 if fs_group is not None else 0o444,
                "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}],
            },
        },
    ]
    runner = _runner_container(containers, template_name)
    env = [e for e in runner.get("env") or [] if e.get("name") != ENV_RUN_TOKEN]
    # The template's in-cluster URL of the API wins: the runs' network policy allows only it.
    if not any(e.get("name") == ENV_PLATFORM_URL for e in env):
        env.append({"name": ENV_PLATFORM_URL, "value": launch.platform_url})
    run_env = {ENV_RUN_ID: launch.run_id, ENV_RUN_TOKEN_FILE: f"{TOKEN_DIR}/{TOKEN_KEY}"}
    runner["env"] = [
        *(e for e in env if e.get("name") not in run_env),
        *({"name": name, "value": value} for name, value in run_env.items()),
    ]
    runner["volumeMounts"] = [
        *(m for m in runner.get("volumeMounts") or [] if m.get("name") != TOKEN_VOLUME),
        {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(launch.run_id),
            "labels": labels,
            "annotations": {RUN_ANNOTATION: launch.run_id},
        },
        "spec": {
            # One attempt: a failed agent is reported, not silently run twice.
            "backoffLimit": 0,
            # The runner stops itself at the agent's limit and reports `timed_out`; the margin
            # lets it do so before Kubernetes kills the pod.
            "activeDeadlineSeconds": launch.timeout_seconds + deadline_margin_seconds,
            "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            "template": template,
        },
    }


def build_token_secret(launch: Launch, job: dict[str, Any]) -> dict[str, Any]:
    """The Secret holding the run token, owned by the run's Job so it goes when the Job goes."""
    metadata = job["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(launch.run_id),
            "labels": run_labels(launch),
            "annotations": {RUN_ANNOTATION: launch.run_id},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                }
            ],
        },
        "stringData": {TOKEN_KEY: launch.run_token},
    }


def run_id_of(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    run_id = annotations.get(RUN_ANNOTATION)
    return run_id if isinstance(run_id, str) else None

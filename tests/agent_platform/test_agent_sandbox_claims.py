"""The agent-sandbox executor's functional core: the claim of a run and how a claim's state reads
as the run's end. The executor against the real controller is tested in tests/cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent_platform.executors.agent_sandbox import (
    build_claim,
    claim_name,
    claim_verdict,
    handed_over,
    handover_address,
)
from agent_platform.executors.base import Launch
from agent_runner.protocol import Outcome

TOKEN = "run_token-of-the-claims-test"
LAUNCH = Launch(
    run_id="run_0123456789abcdef0123",
    agent_id="agt_1",
    owner_id="usr_1",
    run_token=TOKEN,
    timeout_seconds=600,
    platform_url="http://platform",
)
NOW = datetime(2026, 12, 5, 14, 0, 0, tzinfo=UTC)


def _claim(*conditions: dict[str, Any], **annotations: str) -> dict[str, Any]:
    claim = build_claim(
        LAUNCH,
        warm_pool="agent-runner",
        now=NOW,
        deadline_margin_seconds=30,
        ttl_seconds_after_finished=600,
    )
    claim["metadata"]["annotations"].update(annotations)
    claim["status"] = {"conditions": list(conditions)}
    return claim


def test_a_claim_takes_from_the_pool_with_the_runs_deadline_and_no_token() -> None:
    claim = _claim()

    assert claim["metadata"]["name"] == claim_name(LAUNCH.run_id)
    assert claim["spec"]["warmPoolRef"] == {"name": "agent-runner"}
    assert claim["spec"]["lifecycle"]["shutdownTime"] == "2026-12-05T14:10:30Z"
    assert claim["spec"]["lifecycle"]["shutdownPolicy"] == "Retain"
    assert "env" not in claim["spec"]
    assert TOKEN not in repr(claim)


def test_a_claim_of_a_running_sandbox_has_no_verdict() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "SandboxReady"}

    assert claim_verdict(_claim(ready)) is None


def test_an_expired_claim_ends_the_run_timed_out() -> None:
    expired = {"type": "Ready", "status": "False", "reason": "ClaimExpired"}

    verdict = claim_verdict(_claim(expired))

    assert verdict is not None
    assert verdict[0] is Outcome.TIMED_OUT
    assert "(600s;" in verdict[1]
    assert "2026-12-05T14:10:30Z" in verdict[1]


def test_a_finished_claim_ends_the_run_failed_when_the_runner_did_not_report() -> None:
    succeeded = {"type": "Finished", "status": "True", "reason": "PodSucceeded"}
    failed = {"type": "Finished", "status": "True", "reason": "PodFailed"}

    assert claim_verdict(_claim(succeeded)) == (
        Outcome.FAILED,
        "the runner exited without reporting a result",
    )
    verdict = claim_verdict(_claim(failed))
    assert verdict is not None
    assert verdict[0] is Outcome.FAILED


def test_only_a_claim_marked_by_the_executor_counts_as_handed_over() -> None:
    assert not handed_over(_claim())
    assert handed_over(_claim(**{"agent-platform.dev/handed-over": "true"}))


def test_the_handover_goes_to_the_pods_ip_on_its_named_port() -> None:
    pod = {
        "spec": {"containers": [{"ports": [{"name": "handover", "containerPort": 8790}]}]},
        "status": {"podIP": "10.1.2.3"},
    }

    assert handover_address(pod) == ("10.1.2.3", 8790)
    assert handover_address({**pod, "status": {}}) is None

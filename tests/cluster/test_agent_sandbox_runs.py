"""The platform with AGENT_PLATFORM_EXECUTOR=agent-sandbox against the local control plane and the
real agent-sandbox controller: each run claims a warm sandbox from the `agent-runner` pool, the
real runner in it (played by servers.sandbox_kubelet) takes the handover, reaches the scripted
Messages API through the platform's gateway, and the claim is released when the run ends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster.cluster_runs import RUNS, WAIT, api, status, wait_status
from servers.control_plane import ControlPlane
from servers.executors import CLAIMS, claim_of, delete_run_claims, handed_over_sandbox
from servers.messages_api import MessagesApiServer, Reply, Text
from servers.platform import RunningPlatform, running_platform
from servers.sandbox_kubelet import SandboxKubelet, running_sandbox_kubelet
from servers.waiting import wait_for

pytestmark = pytest.mark.cluster

UPSTREAM_KEY = "sk-upstream-sandbox-key"
# What the scheduler's run tokens look like (auth.new_secret("run")).
RUN_TOKEN = re.compile(r"run_[A-Za-z0-9_-]{43}")
# Long enough that a run is still thinking when the test acts on it.
THINKING_SECONDS = 60.0


def agent_sandbox_env(kubeconfig: Path, messages_api: MessagesApiServer) -> dict[str, str]:
    """Runs on the warm pool as the platform's own ServiceAccount, Claude scripted."""
    return {
        "AGENT_PLATFORM_EXECUTOR": "agent-sandbox",
        "AGENT_PLATFORM_KUBECONFIG": str(kubeconfig),
        "AGENT_PLATFORM_RUNS_NAMESPACE": RUNS,
        "AGENT_PLATFORM_WARM_POOL": "agent-runner",
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": UPSTREAM_KEY,
    }


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory,
    control_plane: ControlPlane,
    platform_kubeconfig: Path,
    messages_api: MessagesApiServer,
) -> Iterator[RunningPlatform]:
    env = agent_sandbox_env(platform_kubeconfig, messages_api)
    with running_platform(tmp_path_factory.mktemp("platform"), env) as running:
        yield running


@pytest.fixture(scope="module")
def kubelet(
    tmp_path_factory: pytest.TempPathFactory,
    control_plane: ControlPlane,
    platform: RunningPlatform,
) -> Iterator[SandboxKubelet]:
    with running_sandbox_kubelet(
        control_plane, RUNS, platform.base_url, tmp_path_factory.mktemp("sandboxes")
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def warm_pool_ready(control_plane: ControlPlane, kubelet: SandboxKubelet) -> Iterator[None]:
    """Each test starts with a warm sandbox whose runner waits, and leaves no claim behind."""
    wait_for(lambda: bool(kubelet.waiting_warm_pods()), timeout=WAIT, what="a warm sandbox")
    yield
    delete_run_claims(control_plane)


def start_scripted_run(
    platform: RunningPlatform, messages_api: MessagesApiServer, reply: Reply, **limits: int
) -> str:
    return start_run_of(platform, messages_api.add_script([reply]), **limits)


def start_run_of(platform: RunningPlatform, script: str, **limits: int) -> str:
    agent = api(platform, "POST", "/api/agents", json={"name": "warm", "limits": limits})
    run = api(platform, "POST", f"/api/agents/{agent['id']}/runs", json={"task": f"go {script}"})
    run_id: str = run["id"]
    return run_id


def served_by(plane: ControlPlane, run_id: str) -> str:
    """The sandbox the run's claim was bound to, once the runner took the handover."""
    wait_for(
        lambda: handed_over_sandbox(plane, run_id) is not None,
        timeout=WAIT,
        what=f"run {run_id}'s sandbox to take the handover",
    )
    name = handed_over_sandbox(plane, run_id)
    assert name is not None
    return name


def gone(plane: ControlPlane, run_id: str, pod: str) -> bool:
    return claim_of(plane, run_id) is None and not plane.exists("pod", pod, RUNS)


def test_a_run_on_a_warm_sandbox_completes_through_the_scripted_messages_api(
    platform: RunningPlatform,
    control_plane: ControlPlane,
    kubelet: SandboxKubelet,
    messages_api: MessagesApiServer,
) -> None:
    warm = set(kubelet.waiting_warm_pods())

    run_id = start_scripted_run(platform, messages_api, Reply([Text("All done on a warm pod.")]))
    pod = served_by(control_plane, run_id)
    finished = wait_status(platform, run_id, "succeeded")

    assert pod in warm, "the run was not served by a sandbox started before it"
    events = api(platform, "GET", f"/api/runs/{run_id}/events")["items"]
    text = "".join(e["data"]["text"] for e in events if e["type"] == "text_delta")
    assert "All done on a warm pod." in text
    assert finished["status"] == "succeeded"
    # Released at the run's end: the claim and its sandbox go, and the pool refills.
    wait_for(lambda: gone(control_plane, run_id, pod), timeout=WAIT, what="the claim to go")
    wait_for(
        lambda: bool(set(kubelet.waiting_warm_pods()) - {pod}),
        timeout=WAIT,
        what="the pool to refill",
    )


def test_the_run_token_is_in_no_claim_pod_spec_or_log(
    platform: RunningPlatform,
    control_plane: ControlPlane,
    kubelet: SandboxKubelet,
    messages_api: MessagesApiServer,
) -> None:
    script = messages_api.add_script([Reply([Text("slow")], first_event_delay=THINKING_SECONDS)])
    run_id = start_run_of(platform, script)
    pod = served_by(control_plane, run_id)
    wait_for(
        lambda: bool(messages_api.requests(script)),
        timeout=WAIT,
        what="the runner to reach Claude with its token",
    )

    environ = Path(f"/proc/{kubelet.sandboxes[pod].process.pid}/environ").read_bytes()
    assert b"AGENT_RUN_TOKEN" not in environ, "the token reached the runner's process environment"
    objects = json.dumps(claim_of(control_plane, run_id)) + json.dumps(
        control_plane.get_json("pod", pod, "-n", RUNS)
    )
    for text in (objects, platform.log(), kubelet.runner_log(pod)):
        assert not RUN_TOKEN.search(text)
    wait_status(platform, run_id, "running")
    api(platform, "POST", f"/api/runs/{run_id}/cancel")
    wait_status(platform, run_id, "cancelled")


def test_a_cancelled_run_releases_its_claim_and_its_sandbox_stops(
    platform: RunningPlatform,
    control_plane: ControlPlane,
    kubelet: SandboxKubelet,
    messages_api: MessagesApiServer,
) -> None:
    run_id = start_scripted_run(
        platform, messages_api, Reply([Text("never")], first_event_delay=THINKING_SECONDS)
    )
    pod = served_by(control_plane, run_id)
    wait_status(platform, run_id, "running")

    api(platform, "POST", f"/api/runs/{run_id}/cancel")

    wait_status(platform, run_id, "cancelled")
    wait_for(lambda: gone(control_plane, run_id, pod), timeout=WAIT, what="the claim to go")
    wait_for(
        lambda: kubelet.sandboxes[pod].process.poll() is not None,
        timeout=WAIT,
        what="the sandbox's runner to stop",
    )


def test_a_run_past_its_time_limit_ends_timed_out_and_releases_its_sandbox(
    platform: RunningPlatform,
    control_plane: ControlPlane,
    kubelet: SandboxKubelet,
    messages_api: MessagesApiServer,
) -> None:
    run_id = start_scripted_run(
        platform,
        messages_api,
        Reply([Text("too slow")], first_event_delay=THINKING_SECONDS),
        timeout_seconds=5,
    )
    pod = served_by(control_plane, run_id)

    finished = wait_status(platform, run_id, "timed_out")

    assert "limit" in json.dumps(finished)
    wait_for(lambda: gone(control_plane, run_id, pod), timeout=WAIT, what="the claim to go")


def test_a_restarted_platform_adopts_handed_over_claims_and_releases_the_others(
    platform: RunningPlatform,
    control_plane: ControlPlane,
    kubelet: SandboxKubelet,
    messages_api: MessagesApiServer,
) -> None:
    kept = start_scripted_run(
        platform, messages_api, Reply([Text("survived a restart")], first_event_delay=8.0)
    )
    pod = served_by(control_plane, kept)
    stray = {
        "apiVersion": "extensions.agents.x-k8s.io/v1beta1",
        "kind": "SandboxClaim",
        "metadata": {
            "name": "run-of-nobody",
            "namespace": RUNS,
            "labels": {"app.kubernetes.io/managed-by": "agent-platform"},
            "annotations": {"agent-platform.dev/run-id": "run-of-nobody"},
        },
        "spec": {"warmPoolRef": {"name": "agent-runner"}},
    }

    platform.kill()
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(stray))
    platform.start()

    wait_for(
        lambda: not control_plane.exists(CLAIMS, "run-of-nobody", RUNS),
        timeout=WAIT,
        what="the claim of no active run to be released",
    )
    assert status(platform, kept)["status"] == "running"
    wait_status(platform, kept, "succeeded")
    wait_for(lambda: gone(control_plane, kept, pod), timeout=WAIT, what="the kept claim to go")

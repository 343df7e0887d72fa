"""The agent-sandbox executor for the executor contract suite (an `ExecutorBackend` entry of
EXECUTOR_BACKENDS), on the local control plane with the real agent-sandbox controller and the
runs' warm pool.

The sandbox's side is played as for Jobs, plus the handover: servers.sandbox_kubelet starts, for
each warm pod, a runner that takes the handover through the runner's own `handover` module on
the pod's address and then waits, as a runner busy with its run would, until its pod ends. A
test ends the pod's container as a kubelet would report it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from agent_platform.executors import Launch, OnExit, SandboxExit
from agent_platform.executors.agent_sandbox import (
    HANDED_OVER_ANNOTATION,
    AgentSandboxExecutor,
    claim_name,
)
from cluster.cluster_setup import RUNS_NAMESPACE

from servers.control_plane import ControlPlane
from servers.sandbox_kubelet import SandboxKubelet, running_sandbox_kubelet

CLAIMS = "sandboxclaims.extensions.agents.x-k8s.io"
WAIT = 60.0
WARM_POOL = "agent-runner"
# Takes the one handover the platform sends, then runs until the pod ends.
HANDOVER_RUNNER = (
    sys.executable,
    "-c",
    "import os, signal\n"
    "from agent_runner import handover\n"
    "handover.await_handover(handover.bind(*handover.address(os.environ)))\n"
    "signal.pause()\n",
)


async def _ignore_exit(_: SandboxExit) -> None:
    return None


async def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait for a condition checked off the event loop, so the executor's tasks go on."""
    try:
        async with asyncio.timeout(timeout):
            while not await asyncio.to_thread(condition):
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}") from None


def claim_of(plane: ControlPlane, run_id: str) -> dict[str, Any] | None:
    found = plane.kubectl(
        "get", CLAIMS, claim_name(run_id), "-n", RUNS_NAMESPACE, "--ignore-not-found", "-o", "json"
    ).stdout
    return json.loads(found) if found.strip() else None


def handed_over_sandbox(plane: ControlPlane, run_id: str) -> str | None:
    """The sandbox (and pod) name of the run's claim once its runner took the handover."""
    claim = claim_of(plane, run_id) or {}
    if HANDED_OVER_ANNOTATION not in (claim.get("metadata") or {}).get("annotations", {}):
        return None
    name = ((claim.get("status") or {}).get("sandbox") or {}).get("name")
    return str(name) if name else None


class AgentSandboxBackend:
    """Runs claim warm sandboxes from the `agent-runner` pool, as the platform's ServiceAccount."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path, kubelet: SandboxKubelet) -> None:
        self.plane = plane
        self._kubeconfig = kubeconfig
        self._kubelet = kubelet
        self._pods: dict[str, str] = {}

    def executor(self, on_exit: OnExit) -> AgentSandboxExecutor:
        return AgentSandboxExecutor(
            kubeconfig=self._kubeconfig,
            namespace=RUNS_NAMESPACE,
            warm_pool=WARM_POOL,
            on_exit=on_exit,
            # The deadline tests wait for the controller itself to end the run.
            deadline_margin_seconds=0,
            ttl_seconds_after_finished=300,
        )

    async def wait_running(self, run_id: str) -> None:
        await eventually(
            lambda: handed_over_sandbox(self.plane, run_id) is not None,
            f"the sandbox of run {run_id} to take the handover",
        )
        pod = await asyncio.to_thread(handed_over_sandbox, self.plane, run_id)
        assert pod is not None
        self._pods[run_id] = pod

    async def end_sandbox(self, run_id: str, exit_code: int) -> None:
        await self.wait_running(run_id)
        await asyncio.to_thread(
            self.plane.end_pod_container, self._pods[run_id], RUNS_NAMESPACE, exit_code=exit_code
        )

    async def leave_behind(self, launch: Launch) -> None:
        before = self.executor(_ignore_exit)
        try:
            await before.start(launch)
            await self.wait_running(launch.run_id)
        finally:
            await before.aclose()  # the cluster keeps the claim and its sandbox

    async def remove_sandbox(self, run_id: str) -> None:
        await asyncio.to_thread(
            self.plane.kubectl,
            "delete", CLAIMS, claim_name(run_id), "-n", RUNS_NAMESPACE, "--wait=true",
            "--timeout=60s",
        )  # fmt: skip

    def sandbox_running(self, run_id: str) -> bool:
        if claim_of(self.plane, run_id) is not None:
            return True
        pod = self._pods.get(run_id)
        return pod is not None and self.plane.exists("pod", pod, RUNS_NAMESPACE)


@contextlib.asynccontextmanager
async def agent_sandbox_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[AgentSandboxBackend]:
    plane: ControlPlane = request.getfixturevalue("control_plane")
    kubeconfig: Path = request.getfixturevalue("platform_kubeconfig")
    # No platform answers these runners: they only take the handover and wait.
    with running_sandbox_kubelet(
        plane, RUNS_NAMESPACE, "http://127.0.0.1:9", tmp_path / "sandboxes", command=HANDOVER_RUNNER
    ) as kubelet:
        try:
            yield AgentSandboxBackend(plane, kubeconfig, kubelet)
        finally:
            # Every test leaves no claim behind, so the pool and the quota start over full.
            await asyncio.to_thread(
                plane.kubectl, "delete", CLAIMS, "--all", "-n", RUNS_NAMESPACE, "--timeout=60s"
            )

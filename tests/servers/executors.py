"""The executors the contract suite runs, each with the sandbox's side played by the test.

To run the executor contract suite (tests/agent_platform/test_executor_contract.py) against
another executor, write an `ExecutorBackend` for it and add it to EXECUTOR_BACKENDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from agent_platform.executors import Executor, Launch, OnExit, SandboxExit
from agent_platform.executors.agent_sandbox import (
    HANDED_OVER_ANNOTATION,
    AgentSandboxExecutor,
    claim_name,
)
from agent_platform.executors.job_spec import RUN_LABEL, job_name
from agent_platform.executors.kubernetes import KubernetesExecutor
from agent_platform.executors.local import LocalExecutor, sandbox_environment
from agent_platform.executors.runner_process import record_runner, write_record
from agent_runner import protocol

from servers.control_plane import ControlPlane
from servers.sandbox_kubelet import SandboxKubelet, running_sandbox_kubelet
from servers.waiting import eventually

RUNS_NAMESPACE = "agent-runs"
RUNNER_TEMPLATE = "agent-runner"
WARM_POOL = "agent-runner"
CLAIMS = "sandboxclaims.extensions.agents.x-k8s.io"
WAIT = 60.0


def new_launch(timeout_seconds: int = 300) -> Launch:
    return Launch(
        run_id=uuid.uuid4().hex[:16],
        agent_id="agent-1",
        owner_id="ada@example.com",
        run_token=f"token-{uuid.uuid4().hex}",
        timeout_seconds=timeout_seconds,
        platform_url="http://127.0.0.1:8000",
    )


@dataclass
class Exits:
    """An executor's `on_exit` callback, remembering every sandbox end it was told of."""

    seen: list[SandboxExit] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, sandbox_exit: SandboxExit) -> None:
        self.seen.append(sandbox_exit)
        self.changed.set()

    def of(self, run_id: str) -> list[SandboxExit]:
        return [e for e in self.seen if e.run_id == run_id]

    async def wait_for(self, run_id: str, timeout: float = WAIT) -> SandboxExit:
        async with asyncio.timeout(timeout):
            while not self.of(run_id):
                self.changed.clear()
                await self.changed.wait()
        return self.of(run_id)[0]


class ExecutorBackend(Protocol):
    """One executor under test, and the sandbox's side of it, which the test plays."""

    def executor(self, on_exit: OnExit) -> Executor:
        """A new executor, as a newly started platform process makes it."""
        ...

    async def wait_running(self, run_id: str) -> None:
        """Until the run's runner runs in its sandbox."""
        ...

    async def end_sandbox(self, run_id: str, exit_code: int) -> None:
        """Play the run's runner exiting with `exit_code` without reporting a result."""
        ...

    async def leave_behind(self, launch: Launch) -> None:
        """A sandbox that runs, started by a platform process that has gone away since."""
        ...

    async def remove_sandbox(self, run_id: str) -> None:
        """The run's sandbox goes while no platform process watches it."""
        ...

    def sandbox_running(self, run_id: str) -> bool:
        """Whether any part of the run's sandbox still runs."""
        ...


# A runner that runs until the test tells it, through a FIFO in its scratch directory, with which
# code to exit.
_END_FIFO = "end"
FIFO_RUNNER = [
    sys.executable,
    "-c",
    "import os, sys\n"
    f"path = os.path.join(os.environ[{protocol.ENV_WORKSPACE!r}], '..', {_END_FIFO!r})\n"
    "os.mkfifo(path)\n"
    "with open(path) as fifo:\n"
    "    sys.exit(int(fifo.read()))\n",
]


async def _ignore_exit(_: SandboxExit) -> None:
    return None


def _open_writer(fifo: Path) -> int | None:
    """The FIFO opened to write, or None while its reader has not opened it yet."""
    try:  # without a reader, a non-blocking open fails at once instead of waiting
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ENXIO:
            return None
        raise


class LocalBackend:
    """The local executor: runners are subprocesses of this test process."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        # Where the executors keep a run's sandbox; every executor here shares the layout.
        self._layout = self.executor(_ignore_exit)
        self._left: dict[str, subprocess.Popen[bytes]] = {}

    def executor(self, on_exit: OnExit) -> LocalExecutor:
        return LocalExecutor(
            command=FIFO_RUNNER, data_dir=self._data_dir, on_exit=on_exit, grace_seconds=2
        )

    def _fifo(self, run_id: str) -> Path:
        return self._layout.scratch_dir(run_id) / _END_FIFO

    async def wait_running(self, run_id: str) -> None:
        await eventually(self._fifo(run_id).exists, f"the runner of run {run_id} to run")

    async def end_sandbox(self, run_id: str, exit_code: int) -> None:
        await self.wait_running(run_id)
        fifo = self._fifo(run_id)
        async with asyncio.timeout(WAIT):
            while (descriptor := _open_writer(fifo)) is None:
                await asyncio.sleep(0.05)
        try:
            os.write(descriptor, str(exit_code).encode())
        finally:
            os.close(descriptor)

    async def leave_behind(self, launch: Launch) -> None:
        """Start the runner and record it exactly as an executor does, then forget it."""
        scratch = self._layout.scratch_dir(launch.run_id)
        (scratch / "workspace").mkdir(parents=True)
        (scratch / "tmp").mkdir()
        runner = subprocess.Popen(
            FIFO_RUNNER,
            cwd=scratch,
            env=sandbox_environment(launch, scratch, os.environ, "bubblewrap"),
            start_new_session=True,
        )
        self._left[launch.run_id] = runner
        record = record_runner(
            runner.pid, started_at=time.time(), timeout_seconds=launch.timeout_seconds
        )
        assert record is not None, "the left-behind runner ended at once"
        record_path = self._layout.record_path(launch.run_id)
        record_path.parent.mkdir(parents=True, exist_ok=True)
        write_record(record_path, record)
        await self.wait_running(launch.run_id)

    async def remove_sandbox(self, run_id: str) -> None:
        runner = self._left[run_id]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
        await asyncio.to_thread(runner.wait, WAIT)

    def sandbox_running(self, run_id: str) -> bool:
        runner = self._left.get(run_id)
        if runner is not None and runner.poll() is None:
            return True
        return (
            self._layout.scratch_dir(run_id).exists() or self._layout.record_path(run_id).exists()
        )

    def stop_left_behind(self) -> None:
        for runner in self._left.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(WAIT)


def pods_of(plane: ControlPlane, run_id: str) -> list[dict[str, Any]]:
    listed = plane.get_json("pods", "-n", RUNS_NAMESPACE, "-l", f"{RUN_LABEL}={run_id}")
    items: list[dict[str, Any]] = listed["items"]
    return items


def running_pod(plane: ControlPlane, run_id: str) -> str | None:
    for pod in pods_of(plane, run_id):
        if (pod.get("status") or {}).get("phase") == "Running":
            name: str = pod["metadata"]["name"]
            return name
    return None


async def wait_running_pod(plane: ControlPlane, run_id: str) -> str:
    await eventually(
        lambda: running_pod(plane, run_id) is not None, f"the pod of run {run_id} to run"
    )
    name = await asyncio.to_thread(running_pod, plane, run_id)
    assert name is not None
    return name


def job_finished(plane: ControlPlane, run_id: str) -> bool:
    job = plane.get_json("job", job_name(run_id), "-n", RUNS_NAMESPACE)
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conditions)


def delete_run_jobs(plane: ControlPlane) -> None:
    """Remove every run's Job and its pods, waiting until they are gone."""
    plane.kubectl(
        "delete", "jobs", "--all", "-n", RUNS_NAMESPACE, "--cascade=foreground", "--timeout=60s"
    )


class KubernetesBackend:
    """The Kubernetes executor on the local control plane, as the platform's ServiceAccount;
    kwok plays the kubelet, so a pod runs until the test ends its container."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path) -> None:
        self.plane = plane
        self._kubeconfig = kubeconfig

    def executor(self, on_exit: OnExit) -> KubernetesExecutor:
        return connect_kubernetes(self._kubeconfig, on_exit)

    async def wait_running(self, run_id: str) -> None:
        await wait_running_pod(self.plane, run_id)

    async def end_sandbox(self, run_id: str, exit_code: int) -> None:
        pod = await wait_running_pod(self.plane, run_id)
        await asyncio.to_thread(
            self.plane.end_pod_container, pod, RUNS_NAMESPACE, exit_code=exit_code
        )

    async def leave_behind(self, launch: Launch) -> None:
        before = self.executor(_ignore_exit)
        try:
            await before.start(launch)
        finally:
            await before.aclose()  # the cluster keeps the Job running
        await self.wait_running(launch.run_id)

    async def remove_sandbox(self, run_id: str) -> None:
        await asyncio.to_thread(
            self.plane.kubectl,
            "delete", "job", job_name(run_id), "-n", RUNS_NAMESPACE,
            "--cascade=foreground", "--timeout=60s",
        )  # fmt: skip

    def sandbox_running(self, run_id: str) -> bool:
        if pods_of(self.plane, run_id):
            return True
        # A finished Job stays for inspection until its TTL; only an unfinished one runs.
        return self.plane.exists("job", job_name(run_id), RUNS_NAMESPACE) and not job_finished(
            self.plane, run_id
        )


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


def delete_run_claims(plane: ControlPlane) -> None:
    """Release every run's claim, so the pool and the quota start over full."""
    plane.kubectl("delete", CLAIMS, "--all", "-n", RUNS_NAMESPACE, "--timeout=60s")


# A warm pod's runner as the contract plays it: it takes the one handover the platform sends
# through the runner's own `handover` module, then runs, as a runner busy with its run would,
# until its pod ends.
HANDOVER_RUNNER = (
    sys.executable,
    "-c",
    "import os, signal\n"
    "from agent_runner import handover\n"
    "handover.await_handover(handover.bind(*handover.address(os.environ)))\n"
    "signal.pause()\n",
)


class AgentSandboxBackend:
    """The agent-sandbox executor on the local control plane with the real agent-sandbox
    controller: runs claim warm sandboxes from the `agent-runner` pool, as the platform's
    ServiceAccount. servers.sandbox_kubelet starts each warm pod's runner on the pod's address;
    a test ends the pod's container as a kubelet would report it."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path, kubelet: SandboxKubelet) -> None:
        self.plane = plane
        self._kubeconfig = kubeconfig
        self.kubelet = kubelet
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


def connect_kubernetes(
    kubeconfig: Path, on_exit: OnExit, unschedulable_timeout_seconds: float = 600
) -> KubernetesExecutor:
    return KubernetesExecutor(
        kubeconfig=kubeconfig,
        namespace=RUNS_NAMESPACE,
        template_name=RUNNER_TEMPLATE,
        on_exit=on_exit,
        ttl_seconds_after_finished=300,
        # The deadline tests wait for Kubernetes itself to end the run.
        deadline_margin_seconds=0,
        unschedulable_timeout_seconds=unschedulable_timeout_seconds,
    )


@contextlib.asynccontextmanager
async def local_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LocalBackend]:
    backend = LocalBackend(tmp_path / "data")
    try:
        yield backend
    finally:
        backend.stop_left_behind()


@contextlib.asynccontextmanager
async def kubernetes_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[KubernetesBackend]:
    plane: ControlPlane = request.getfixturevalue("control_plane")
    kubeconfig: Path = request.getfixturevalue("platform_kubeconfig")
    try:
        yield KubernetesBackend(plane, kubeconfig)
    finally:
        # Every test leaves the runs namespace empty, so the ResourceQuota never fills up.
        await asyncio.to_thread(delete_run_jobs, plane)


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
            await asyncio.to_thread(delete_run_claims, plane)


BackendFactory = Callable[
    [pytest.FixtureRequest, Path], AbstractAsyncContextManager[ExecutorBackend]
]


@dataclass(frozen=True)
class BackendEntry:
    open: BackendFactory
    marks: Sequence[pytest.MarkDecorator] = ()


EXECUTOR_BACKENDS: dict[str, BackendEntry] = {
    "local": BackendEntry(local_backend),
    "kubernetes": BackendEntry(kubernetes_backend, marks=(pytest.mark.cluster,)),
    "agent-sandbox": BackendEntry(agent_sandbox_backend, marks=(pytest.mark.cluster,)),
}

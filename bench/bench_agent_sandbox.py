"""Run start in the cluster: a Job per run against a claim on a warm pool, side by side.

On the local control plane (real kube-apiserver, scheduler, Job controller and agent-sandbox
controller; kwok in place of kubelets) the real platform runs with each executor in turn; the
real runner plays each pod's container (tests/servers/sandbox_kubelet.py) and reaches the
scripted Messages API through the gateway. For each run: POST, then the time until its event
stream shows the runner's first event; p50 and max over sequential runs, the warm pool given
the time to refill between them. Every run must succeed, or no figure is reported.

What the figure leaves out, and what dominates on GKE: kwok makes a pod Running the moment it is
scheduled, no node is provisioned, no image pulled, no gVisor sandbox booted. The Job figure
is the platform's work, the Job controller, the scheduler and the runner's start; the warm
pool's is the platform's work, the controller's binding and the handover. docs/architecture.md
gives the figures to expect on GKE.

Run: `python -m bench agent_sandbox`; with `--quick`, one run on each executor.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from cluster.cluster_setup import RUNS_NAMESPACE, platform_kubeconfig_of, prepared_control_plane
from servers.control_plane import ControlPlane
from servers.messages_api import MessagesApiServer, Reply, Text
from servers.platform import RunningPlatform, running_platform
from servers.sandbox_kubelet import SandboxKubelet, running_sandbox_kubelet
from servers.waiting import wait_for

WAIT_SECONDS = 120.0
LEFT_OUT = (
    "kwok makes pods Running at once: no node provisioning, no image pull, no gVisor boot; "
    "see docs/architecture.md for GKE figures"
)


def _executor_env(executor: str, kubeconfig: Path, api: MessagesApiServer) -> dict[str, str]:
    return {
        "AGENT_PLATFORM_EXECUTOR": executor,
        "AGENT_PLATFORM_KUBECONFIG": str(kubeconfig),
        "AGENT_PLATFORM_RUNS_NAMESPACE": RUNS_NAMESPACE,
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-bench-upstream",
        "AGENT_PLATFORM_LOG_LEVEL": "WARNING",
    }


def _first_event_ms(http: httpx.Client, agent_id: str, task: str) -> tuple[str, float]:
    started = time.perf_counter()
    run_id: str = http.post(f"/api/agents/{agent_id}/runs", json={"task": task}).json()["id"]
    with http.stream("GET", f"/api/runs/{run_id}/events/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                return run_id, (time.perf_counter() - started) * 1000
    raise RuntimeError(f"run {run_id} ended without an event")


def _status(http: httpx.Client, run_id: str) -> str:
    status: str = http.get(f"/api/runs/{run_id}").json()["status"]
    return status


def _finished(http: httpx.Client, run_id: str) -> bool:
    return _status(http, run_id) not in ("queued", "running")


class RunDidNotSucceed(RuntimeError):
    """A measured run failed: its first event may be the platform's verdict, not the runner's."""


@contextmanager
def _platform_with(
    executor: str, plane: ControlPlane, api: MessagesApiServer, work: Path
) -> Iterator[tuple[RunningPlatform, SandboxKubelet]]:
    env = _executor_env(executor, platform_kubeconfig_of(plane), api)
    with ExitStack() as stack:
        platform = stack.enter_context(running_platform(work / executor, env))
        kubelet = stack.enter_context(
            running_sandbox_kubelet(
                plane, RUNS_NAMESPACE, platform.base_url, work / f"{executor}-pods", job_pods=True
            )
        )
        yield platform, kubelet


def _latencies(
    executor: str, plane: ControlPlane, api: MessagesApiServer, work: Path, runs: int
) -> dict[str, float]:
    script = api.add_script([Reply([Text("started")])])
    samples: list[float] = []
    with (
        _platform_with(executor, plane, api, work) as (platform, kubelet),
        httpx.Client(
            base_url=platform.base_url, headers=platform.headers, timeout=WAIT_SECONDS
        ) as http,
    ):
        agent_id: str = http.post("/api/agents", json={"name": executor}).json()["id"]
        for _ in range(runs):
            if executor == "agent-sandbox":
                wait_for(
                    lambda: bool(kubelet.waiting_warm_pods()),
                    timeout=WAIT_SECONDS,
                    what="a warm sandbox",
                )
            run_id, elapsed = _first_event_ms(http, agent_id, f"go {script}")
            wait_for(partial(_finished, http, run_id), timeout=WAIT_SECONDS, what="the run to end")
            if (status := _status(http, run_id)) != "succeeded":
                raise RunDidNotSucceed(
                    f"run {run_id} on the {executor} executor ended {status}; see its events "
                    "and the platform's log before trusting any figure"
                )
            samples.append(elapsed)
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "max_ms": round(max(samples), 1),
    }


def run(quick: bool = False) -> dict[str, Any]:
    runs = 1 if quick else 10
    api = MessagesApiServer().start()
    try:
        with (
            tempfile.TemporaryDirectory() as scratch,
            prepared_control_plane(Path(scratch) / "control-plane") as plane,
        ):
            work = Path(scratch)
            job = _latencies("kubernetes", plane, api, work, runs)
            warm = _latencies("agent-sandbox", plane, api, work, runs)
    finally:
        api.stop()
    return {
        "post_to_first_event": {"job": job, "warm_pool": warm},
        "runs_each": runs,
        "left_out": LEFT_OUT,
        "targets": {
            "a warm pool starts runs sooner than Jobs (p50)": warm["p50_ms"] < job["p50_ms"]
        },
    }

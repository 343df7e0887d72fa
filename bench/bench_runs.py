"""Runs through the real platform: start latency, and 50 runs at once.

The platform runs as a subprocess with the local executor, each run a real `agent_runner`
subprocess reaching the scripted Messages API server through the gateway.

- Start latency: POST a run, then subscribe to its event stream; the time until the first
  runner event arrives, p50 and p99 over 50 runs one after another. Target: p50 < 250 ms.
- Concurrency: 50 runs started together (each a bash call, then an answer) must all succeed;
  the peak RSS (VmHWM) of every runner process is sampled and reported.

Run: `python -m bench runs`; with `--quick`, one run alone and 2 at once.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from agent_runner import protocol
from servers.messages_api import MessagesApiServer, Reply, Text, ToolUse
from servers.platform import RunningPlatform, running_platform

TARGET_P50_MS = 250.0
RUNS = 50
CONCURRENT = 50
QUICK_RUNS = 1
QUICK_CONCURRENT = 2
RUN_ID = f"{protocol.ENV_RUN_ID}=".encode()
WAIT_SECONDS = 300.0


def _first_event_ms(http: httpx.Client, agent_id: str, task: str) -> tuple[str, float]:
    started = time.perf_counter()
    run_id: str = http.post(f"/api/agents/{agent_id}/runs", json={"task": task}).json()["id"]
    with http.stream("GET", f"/api/runs/{run_id}/events/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                return run_id, (time.perf_counter() - started) * 1000
    raise RuntimeError(f"run {run_id} ended without an event")


def _wait_finished(http: httpx.Client, run_ids: list[str]) -> dict[str, str]:
    deadline = time.monotonic() + WAIT_SECONDS
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        runs = http.get("/api/runs", params={"limit": 500}).json()["items"]
        statuses = {r["id"]: r["status"] for r in runs if r["id"] in run_ids}
        if len(statuses) == len(run_ids) and all(
            s not in ("queued", "running") for s in statuses.values()
        ):
            return statuses
        time.sleep(0.1)  # polling a condition with a deadline
    raise TimeoutError(f"runs did not finish in {WAIT_SECONDS}s: {statuses}")


class RunnerMemory:
    """Samples the peak RSS (VmHWM) of every runner process while it lives."""

    def __init__(self) -> None:
        self.peaks_kib: dict[str, int] = {}  # by run id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RunnerMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    # A runner is the process the executor gave a run id; its tools are not.
                    environ = (proc / "environ").read_bytes().split(b"\0")
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                run_id = next(
                    (v[len(RUN_ID) :].decode() for v in environ if v.startswith(RUN_ID)), None
                )
                for line in status.splitlines():
                    if run_id and line.startswith("VmHWM:"):
                        kib = int(line.split()[1])
                        self.peaks_kib[run_id] = max(kib, self.peaks_kib.get(run_id, 0))


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _start_latency(platform: RunningPlatform, api: MessagesApiServer, runs: int) -> dict[str, Any]:
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=60) as http:
        agent = http.post("/api/agents", json={"name": "latency"}).json()["id"]
        marker = api.add_script([Reply([Text("ok")])])
        latencies: list[float] = []
        for _ in range(runs):
            run_id, ms = _first_event_ms(http, agent, f"{marker} say ok")
            latencies.append(ms)
            _wait_finished(http, [run_id])
    return {
        "runs": runs,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "target_p50_ms": TARGET_P50_MS,
    }


def _concurrent(platform: RunningPlatform, api: MessagesApiServer, runs: int) -> dict[str, Any]:
    marker = api.add_script(
        [Reply([ToolUse("bash", {"command": "echo hi > hi.txt"})]), Reply([Text("done")])]
    )
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=60) as http:
        agents = [
            http.post("/api/agents", json={"name": f"c{i}"}).json()["id"] for i in range(runs)
        ]
        with RunnerMemory() as memory:
            started = time.perf_counter()
            run_ids = [
                http.post(f"/api/agents/{a}/runs", json={"task": f"{marker} go"}).json()["id"]
                for a in agents
            ]
            statuses = _wait_finished(http, run_ids)
            elapsed = time.perf_counter() - started
    peaks_mib = [kib / 1024 for run, kib in memory.peaks_kib.items() if run in run_ids]
    return {
        "runs": runs,
        "succeeded": sum(1 for s in statuses.values() if s == "succeeded"),
        "seconds": round(elapsed, 2),
        "runners_sampled": len(peaks_mib),
        "runner_peak_rss_mib_max": round(max(peaks_mib), 1) if peaks_mib else None,
        "runner_peak_rss_mib_median": round(statistics.median(peaks_mib), 1) if peaks_mib else None,
    }


def run(quick: bool = False) -> dict[str, Any]:
    runs = QUICK_RUNS if quick else RUNS
    concurrent = QUICK_CONCURRENT if quick else CONCURRENT
    api = MessagesApiServer().start()
    try:
        env = {
            "AGENT_PLATFORM_ANTHROPIC_BASE_URL": api.base_url,
            "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-bench-upstream",
            "AGENT_PLATFORM_MAX_CONCURRENT_RUNS": str(max(concurrent, 1)),
            "AGENT_PLATFORM_LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory() as data, running_platform(Path(data), env) as platform:
            latency = _start_latency(platform, api, runs)
            together = _concurrent(platform, api, concurrent)
    finally:
        api.stop()
    return {
        "start_latency": latency,
        "concurrent": together,
        "targets": {
            f"run start p50 < {TARGET_P50_MS:g} ms": latency["p50_ms"] < TARGET_P50_MS,
            f"{concurrent} concurrent runs all succeed": together["succeeded"] == concurrent,
        },
    }

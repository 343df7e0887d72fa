"""The local sandbox's cost: run start and tool calls, with bubblewrap and without, side by side.

- Run start: two real platforms (local executor), one with the default sandbox and one with
  `AGENT_PLATFORM_LOCAL_SANDBOX=none`, take runs in turn; POST → first event of each, p50 and
  p99. Target: p50 < 250 ms with the sandbox on.
- Tool call: the runner's bash tool runs `true`, and its editor writes a file, under
  bubblewrap and unconfined, alternating call by call; p50 and p99 of each, and the ratio.

Run: `python -m bench sandbox`; with `--quick`, one run with the sandbox on and 10 tool calls in
each mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from agent_runner.tools import BashTool, Bubblewrap, EditorTool, ToolSandbox, Unconfined
from servers.messages_api import MessagesApiServer, Reply, Text
from servers.platform import running_platform

TARGET_P50_MS = 250.0
WAIT_SECONDS = 60.0


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(_percentile(values, 0.99), 2),
    }


def _first_event_ms(http: httpx.Client, agent_id: str, task: str) -> float:
    started = time.perf_counter()
    run_id = http.post(f"/api/agents/{agent_id}/runs", json={"task": task}).json()["id"]
    elapsed = None
    with http.stream("GET", f"/api/runs/{run_id}/events/stream") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and elapsed is None:
                elapsed = (time.perf_counter() - started) * 1000
    # The stream ends with the run: the next run of the agent starts on a quiet platform.
    if elapsed is None:
        raise RuntimeError(f"run {run_id} ended without an event")
    return elapsed


def _run_start(runs: int, modes: list[str]) -> dict[str, Any]:
    """Run start on one platform per sandbox mode, `runs` runs each, in turn."""
    api = MessagesApiServer().start()
    marker = api.add_script([Reply([Text("ok")])])
    env = {
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-bench-upstream",
        "AGENT_PLATFORM_LOG_LEVEL": "WARNING",
    }
    latencies: dict[str, list[float]] = {mode: [] for mode in modes}
    try:
        with contextlib.ExitStack() as stack:
            clients: dict[str, httpx.Client] = {}
            for mode in modes:
                data = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                platform = stack.enter_context(
                    running_platform(data, {**env, "AGENT_PLATFORM_LOCAL_SANDBOX": mode})
                )
                clients[mode] = stack.enter_context(
                    httpx.Client(
                        base_url=platform.base_url, headers=platform.headers, timeout=WAIT_SECONDS
                    )
                )
            agents = {
                mode: http.post("/api/agents", json={"name": "start"}).json()["id"]
                for mode, http in clients.items()
            }
            for _ in range(runs):
                for mode, http in clients.items():
                    latencies[mode].append(_first_event_ms(http, agents[mode], f"{marker} ok"))
    finally:
        api.stop()
    return {"runs": runs, **{mode: _summary(values) for mode, values in latencies.items()}}


async def _timed(
    tool: Callable[[dict[str, Any]], Awaitable[object]], given: dict[str, Any]
) -> float:
    started = time.perf_counter()
    await tool(given)
    return (time.perf_counter() - started) * 1000


async def _tool_calls(calls: int) -> dict[str, Any]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    with tempfile.TemporaryDirectory() as on_dir, tempfile.TemporaryDirectory() as off_dir:
        sandboxes: dict[str, ToolSandbox] = {
            "bubblewrap": Bubblewrap(Path(on_dir)),
            "none": Unconfined(Path(off_dir)),
        }
        bash = {mode: BashTool(sandbox, env) for mode, sandbox in sandboxes.items()}
        editor = {mode: EditorTool(sandbox, env) for mode, sandbox in sandboxes.items()}
        timings: dict[str, dict[str, list[float]]] = {
            "bash": {mode: [] for mode in sandboxes},
            "editor_write": {mode: [] for mode in sandboxes},
        }
        for index in range(calls):
            for mode in sandboxes:
                timings["bash"][mode].append(await _timed(bash[mode], {"command": "true"}))
                write = {"command": "create", "path": "f.txt", "file_text": f"{index}\n"}
                timings["editor_write"][mode].append(await _timed(editor[mode], write))
    result: dict[str, Any] = {"calls": calls}
    for tool, by_mode in timings.items():
        on, off = _summary(by_mode["bubblewrap"]), _summary(by_mode["none"])
        result[tool] = {
            "bubblewrap": on,
            "none": off,
            "p50_ratio": round(on["p50_ms"] / off["p50_ms"], 2),
        }
    return result


def run(quick: bool = False) -> dict[str, Any]:
    # Quick, the unconfined platform is left out: it differs from the other by one setting.
    start = _run_start(1, ["bubblewrap"]) if quick else _run_start(30, ["bubblewrap", "none"])
    tools = asyncio.run(_tool_calls(10 if quick else 300))
    return {
        "run_start": start,
        "tool_call": tools,
        "targets": {
            f"run start p50 < {TARGET_P50_MS:g} ms with the sandbox on": (
                start["bubblewrap"]["p50_ms"] < TARGET_P50_MS
            ),
        },
    }

"""The LLM gateway's overhead on a streamed reply.

The same streamed reply (a modelled Claude: 300 ms to the first event, then 100 text deltas
10 ms apart) is fetched alternately straight from the scripted Messages API server and through
the real platform's gateway (a subprocess, with a live run token), with plain httpx streaming.
Time to first byte and total time are compared as median ratios, gateway / direct.
Target: both ratios at most 1.05.

Run: `python -m bench gateway`; with `--quick`, 2 rounds of a short reply.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from agent_platform.executors.runner_process import read_record
from agent_runner import protocol
from servers.messages_api import MessagesApiServer, Reply, Text
from servers.platform import RunningPlatform, running_platform

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 1.05
ROUNDS = 15
QUICK_ROUNDS = 2
# A runner that only holds its run open, so that this benchmark can use the run's gateway.
HOLDING_RUNNER = ROOT / "tests" / "agent_platform" / "scripted_runner.py"
# Claude streams a few tokens per delta, tens of deltas a second.
REPLY = Reply([Text("some tokens " * 100, chunks=100)], first_event_delay=0.3, event_interval=0.01)
QUICK_REPLY = Reply([Text("some tokens " * 5, chunks=5)])


def _timed_stream(
    http: httpx.Client, url: str, headers: dict[str, str], body: bytes
) -> tuple[float, float]:
    started = time.perf_counter()
    first = 0.0
    with http.stream("POST", url, headers=headers, content=body) as answer:
        answer.raise_for_status()
        for _ in answer.iter_raw():
            first = first or time.perf_counter() - started
    return first, time.perf_counter() - started


async def _run_token(platform: RunningPlatform) -> str:
    """Start a held run and read its run token."""
    async with httpx.AsyncClient(base_url=platform.base_url, headers=platform.headers) as http:
        limits = {"max_tokens": 10_000_000, "timeout_seconds": 3600}
        agent = (await http.post("/api/agents", json={"name": "gw", "limits": limits})).json()
        run = (await http.post(f"/api/agents/{agent['id']}/runs", json={"task": "hang"})).json()
    # The executor records the runner it started; the run is running a moment before that.
    path = platform.data_dir / "executor" / "local" / f"{run['id']}.json"
    deadline = time.monotonic() + 60
    while (record := read_record(path)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the held run's runner was not recorded in {path}")
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    # The held runner was handed its token in its environment, as every sandbox is.
    environ = Path(f"/proc/{record.pid}/environ").read_bytes().split(b"\0")
    prefix = f"{protocol.ENV_RUN_TOKEN}=".encode()
    return next(v[len(prefix) :].decode() for v in environ if v.startswith(prefix))


def run(quick: bool = False) -> dict[str, Any]:
    rounds = QUICK_ROUNDS if quick else ROUNDS
    api = MessagesApiServer().start()
    try:
        marker = api.add_script([QUICK_REPLY if quick else REPLY])
        body = json.dumps(
            {
                "model": "claude-bench",
                "max_tokens": 1024,
                "stream": True,
                "messages": [{"role": "user", "content": f"{marker} stream"}],
            }
        ).encode()
        env = {
            "AGENT_PLATFORM_ANTHROPIC_BASE_URL": api.base_url,
            "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-bench-upstream",
            "AGENT_PLATFORM_RUNNER_COMMAND": json.dumps([sys.executable, str(HOLDING_RUNNER)]),
            "AGENT_PLATFORM_LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory() as data, running_platform(Path(data), env) as platform:
            token = asyncio.run(_run_token(platform))
            common = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
            direct = (f"{api.base_url}/v1/messages", {**common, "x-api-key": "sk-bench-upstream"})
            gateway = (
                f"{platform.base_url}/llm/v1/messages",
                {**common, "authorization": f"Bearer {token}"},
            )
            timings: dict[str, list[tuple[float, float]]] = {"direct": [], "gateway": []}
            with httpx.Client(timeout=60) as http:
                _timed_stream(http, *gateway, body)  # warm both connections up
                _timed_stream(http, *direct, body)
                for _ in range(rounds):
                    timings["direct"].append(_timed_stream(http, *direct, body))
                    timings["gateway"].append(_timed_stream(http, *gateway, body))
    finally:
        api.stop()
    medians = {
        path: {
            "ttfb_ms": round(statistics.median(t[0] for t in samples) * 1000, 2),
            "total_ms": round(statistics.median(t[1] for t in samples) * 1000, 2),
        }
        for path, samples in timings.items()
    }
    ttfb_ratio = medians["gateway"]["ttfb_ms"] / medians["direct"]["ttfb_ms"]
    total_ratio = medians["gateway"]["total_ms"] / medians["direct"]["total_ms"]
    return {
        "rounds": rounds,
        **medians,
        "ttfb_ratio": round(ttfb_ratio, 3),
        "total_ratio": round(total_ratio, 3),
        "target_ratio": TARGET_RATIO,
        "targets": {
            f"gateway time to first byte ≤ {TARGET_RATIO}x direct": ttfb_ratio <= TARGET_RATIO,
            f"gateway total time ≤ {TARGET_RATIO}x direct": total_ratio <= TARGET_RATIO,
        },
    }

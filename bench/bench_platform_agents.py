"""`GET /api/agents` with 200 client connections open at once.

The platform is a subprocess with SQLite; its user has 10 agents. 200 keep-alive connections
are opened with a burst of 200 simultaneous requests (reported, not targeted), then each
connection asks for the list once a second at its own phase (200 requests/s) for 10 s.
Also reported: the platform's CPU time per request, which other load on the machine does not
inflate as it does latency. Targets: p99 < 25 ms and no errors.

Run: `python -m bench platform_agents`; with `--quick`, 10 connections for 0.5 s.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from servers.platform import RunningPlatform, running_platform

CONNECTIONS = 200
AGENTS = 10
INTERVAL_SECONDS = 1.0
DURATION_SECONDS = 10.0
QUICK_CONNECTIONS = 10
QUICK_DURATION_SECONDS = 0.5
TARGET_P99_MS = 25.0


async def _timed_get(http: httpx.AsyncClient, latencies: list[float], errors: list[str]) -> None:
    started = time.perf_counter()
    try:
        answer = await http.get("/api/agents")
        if answer.status_code != 200 or len(answer.json()["items"]) != AGENTS:
            errors.append(f"{answer.status_code}: {answer.text[:200]}")
    except httpx.HTTPError as error:
        errors.append(repr(error))
    latencies.append(time.perf_counter() - started)


async def _connection(
    http: httpx.AsyncClient, until: float, latencies: list[float], errors: list[str]
) -> None:
    next_at = time.perf_counter() + random.uniform(0, INTERVAL_SECONDS)
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # this client's pace
        next_at += INTERVAL_SECONDS
        await _timed_get(http, latencies, errors)


def _ms(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 2)


async def _measure(
    platform: RunningPlatform, connections: int, duration_seconds: float
) -> dict[str, Any]:
    # One TLS context for all, though nothing here is TLS: httpx builds one per client, slowly.
    tls = ssl.create_default_context()
    clients = [
        httpx.AsyncClient(
            base_url=platform.base_url,
            headers=platform.headers,
            timeout=30,
            limits=httpx.Limits(max_connections=1),
            verify=tls,
        )
        for _ in range(connections)
    ]
    try:
        for i in range(AGENTS):
            await clients[0].post("/api/agents", json={"name": f"agent-{i}"})
        burst: list[float] = []
        errors: list[str] = []
        await asyncio.gather(*(_timed_get(http, burst, errors) for http in clients))
        latencies: list[float] = []
        until = time.perf_counter() + duration_seconds
        cpu_before = platform.cpu_seconds()
        await asyncio.gather(*(_connection(http, until, latencies, errors) for http in clients))
        cpu = platform.cpu_seconds() - cpu_before
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    p99 = _ms(latencies, 0.99)
    return {
        "connections": connections,
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / duration_seconds),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "latency_p99_ms": p99,
        "errors": len(errors),
        "platform_cpu_ms_per_request": round(cpu / len(latencies) * 1000, 2),
        "burst_of_200_p50_ms": round(statistics.median(burst) * 1000, 2),
        "burst_of_200_p99_ms": _ms(burst, 0.99),
        "targets": {
            f"p99 < {TARGET_P99_MS:g} ms": p99 < TARGET_P99_MS,
            "no errors": not errors,
        },
    }


def run(quick: bool = False) -> dict[str, Any]:
    connections = QUICK_CONNECTIONS if quick else CONNECTIONS
    duration_seconds = QUICK_DURATION_SECONDS if quick else DURATION_SECONDS
    with tempfile.TemporaryDirectory() as scratch:
        env = {"AGENT_PLATFORM_LOG_LEVEL": "WARNING"}
        with running_platform(Path(scratch) / "platform", env) as platform:
            return asyncio.run(_measure(platform, connections, duration_seconds))

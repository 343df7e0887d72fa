"""Event flow through one platform process with SQLite.

100 runs post event batches concurrently, as runners do: a batch of 50 events every 500 ms
each, every run at its own phase (10,000 events/s offered); every run has one SSE subscriber,
and one run has 20 more. Three processes, so that no side's work delays another's: the
platform, the posting runners, and the subscribers (this process); each connection has its own
client. Reported: events/s ingested and delivered over the whole flow; the p50/p99 latency
from the moment a batch is posted to the moment a subscriber receives each of its events (both
ends read the system-wide monotonic clock); and the platform's CPU time per event, which other
load on the machine does not inflate as it does wall-clock figures. Targets on a 2-core
machine: >= 5,000 events/s, p99 < 50 ms.

Run: `python -m bench platform_events`; with `--quick`, 4 runs post 2 batches each.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import ssl
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from agent_platform.store.sqlite import SqliteStore
from servers.platform import RunningPlatform, running_platform

from bench.event_flow import (
    BATCH_INTERVAL_SECONDS,
    fetch_assignment,
    post_batches,
    running_runs,
    subscribe,
)


@dataclass(frozen=True)
class Size:
    """How much event flow one measurement offers."""

    runs: int
    hot_run_extra_subscribers: int
    batches_per_run: int


FULL = Size(runs=100, hot_run_extra_subscribers=20, batches_per_run=10)
QUICK = Size(runs=4, hot_run_extra_subscribers=2, batches_per_run=2)
TARGET_EVENTS_PER_SECOND = 5000
TARGET_P99_MS = 50.0


def _client(base_url: str, tls: ssl.SSLContext, **options: Any) -> httpx.AsyncClient:
    """A client for one connection: httpx scans its whole pool on every request."""
    # One TLS context for all, though nothing here is TLS: httpx builds one per client, slowly.
    return httpx.AsyncClient(base_url=base_url, timeout=60, verify=tls, **options)


async def _sqlite_running_runs(
    platform: RunningPlatform, agent_id: str, count: int
) -> list[tuple[str, str]]:
    store = await SqliteStore.open(platform.data_dir / "platform.db")
    try:
        return await running_runs(store, agent_id, count)
    finally:
        await store.aclose()


async def _post_all(
    base_url: str, runs: list[tuple[str, str]], batches: int
) -> tuple[int, float, float]:
    tls = ssl.create_default_context()
    clients = [_client(base_url, tls) for _ in runs]
    try:
        await asyncio.gather(
            *(
                fetch_assignment(http, run_id, token)
                for http, (run_id, token) in zip(clients, runs, strict=True)
            )
        )
        started = time.monotonic()
        phases = [started + random.uniform(0, BATCH_INTERVAL_SECONDS) for _ in runs]
        posted = await asyncio.gather(
            *(
                post_batches(http, run_id, token, first_at, batches)
                for http, (run_id, token), first_at in zip(clients, runs, phases, strict=True)
            )
        )
        return sum(posted), started, time.monotonic()
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))


def post_events(
    base_url: str, runs: list[tuple[str, str]], batches: int
) -> tuple[int, float, float]:
    """In the posting process: every run's batches; the events posted, and when it began and
    ended on the monotonic clock."""
    return asyncio.run(_post_all(base_url, runs, batches))


async def _measure(
    platform: RunningPlatform, posting: ProcessPoolExecutor, size: Size
) -> dict[str, Any]:
    tls = ssl.create_default_context()
    async with _client(platform.base_url, tls, headers=platform.headers) as http:
        agent = (await http.post("/api/agents", json={"name": "bench"})).json()
    runs = await _sqlite_running_runs(platform, agent["id"], size.runs)
    watchers = [run_id for run_id, _ in runs] + [runs[0][0]] * size.hot_run_extra_subscribers
    clients = [_client(platform.base_url, tls, headers=platform.headers) for _ in watchers]
    latencies: list[float] = []
    connected = [asyncio.Event() for _ in watchers]
    subscribers = [
        asyncio.create_task(subscribe(http, run_id, latencies, ready))
        for http, run_id, ready in zip(clients, watchers, connected, strict=True)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 60)
        cpu_before = platform.cpu_seconds()
        loop = asyncio.get_running_loop()
        posted, started, ingested_at = await loop.run_in_executor(
            posting, post_events, platform.base_url, runs, size.batches_per_run
        )
        delivered = await asyncio.wait_for(asyncio.gather(*subscribers), 120)
        cpu = platform.cpu_seconds() - cpu_before
    finally:
        for task in subscribers:
            task.cancel()
        await asyncio.gather(*(http.aclose() for http in clients))
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99)] * 1000
    events_delivered = sum(count for count, _ in delivered) - len(subscribers)
    ingested_rate = posted / (ingested_at - started)
    delivered_rate = events_delivered / (max(at for _, at in delivered) - started)
    return {
        "runs": size.runs,
        "subscribers": len(subscribers),
        "events_ingested": posted,
        "events_delivered": events_delivered,
        "ingested_per_second": round(ingested_rate),
        "delivered_per_second": round(delivered_rate),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "latency_p99_ms": round(p99, 2),
        "platform_cpu_seconds": round(cpu, 2),
        "platform_cpu_us_per_event": round(cpu / posted * 1e6, 1),
        "targets": {
            f"ingested >= {TARGET_EVENTS_PER_SECOND} events/s": ingested_rate
            >= TARGET_EVENTS_PER_SECOND,
            f"delivered >= {TARGET_EVENTS_PER_SECOND} events/s": delivered_rate
            >= TARGET_EVENTS_PER_SECOND,
            f"p99 ingestion-to-delivery < {TARGET_P99_MS:g} ms": p99 < TARGET_P99_MS,
        },
    }


def run(quick: bool = False) -> dict[str, Any]:
    spawn = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory() as scratch,
        ProcessPoolExecutor(1, mp_context=spawn) as posting,
    ):
        # Started, with this module imported, before any subscriber connects: posting then
        # begins as soon as they are all connected, not a second later.
        posting_ready = posting.submit(post_events, "", [], 0)
        env = {"AGENT_PLATFORM_LOG_LEVEL": "WARNING"}
        with running_platform(Path(scratch) / "platform", env) as platform:
            posting_ready.result()
            return asyncio.run(_measure(platform, posting, QUICK if quick else FULL))

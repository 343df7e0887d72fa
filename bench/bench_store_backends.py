"""Event ingestion and fan-out on each store backend, with the platform_events harness.

The same flow as bench_platform_events at a fifth of the runs (20 runs, each posting a batch of
50 events every 500 ms, one SSE subscriber per run): on SQLite, on the Firestore emulator
through one replica, and on the emulator across two replicas (runners post to one, subscribers
listen on the other, so every event crosses through the store). The emulator is a single JVM
on this machine, not Firestore: its figures only compare backends and releases with each other.
Targets: every posted event reaches every subscriber once, on every backend.

Run: `python -m bench store_backends`; with `--quick`, 2 runs post 2 batches each through one
replica on the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from agent_platform.store import Store
from agent_platform.store.firestore import FirestoreStore
from agent_platform.store.sqlite import SqliteStore
from servers.firestore_emulator import HOST_VARIABLE, FirestoreEmulator, running_emulator
from servers.platform import RunningPlatform, running_platform

from bench.event_flow import post_batches, running_runs, subscribe

RUNS = 20
BATCHES_PER_RUN = 10
QUICK_RUNS = 2
QUICK_BATCHES_PER_RUN = 2


async def _measure(
    store: Store, ingest: RunningPlatform, deliver: RunningPlatform, quick: bool
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with (
        httpx.AsyncClient(
            base_url=ingest.base_url, headers=ingest.headers, timeout=120, limits=limits
        ) as posting,
        httpx.AsyncClient(
            base_url=deliver.base_url, headers=deliver.headers, timeout=120, limits=limits
        ) as watching,
    ):
        agent = (await posting.post("/api/agents", json={"name": "bench"})).json()
        runs = await running_runs(store, agent["id"], QUICK_RUNS if quick else RUNS)
        batches = QUICK_BATCHES_PER_RUN if quick else BATCHES_PER_RUN
        latencies: list[float] = []
        connected = [asyncio.Event() for _ in runs]
        subscribers = [
            asyncio.create_task(subscribe(watching, run_id, latencies, ready))
            for (run_id, _), ready in zip(runs, connected, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 60)
        started = time.perf_counter()
        first_at = time.monotonic()  # every run starts posting at once: the store's worst case
        posted = await asyncio.gather(
            *(post_batches(posting, run_id, token, first_at, batches) for run_id, token in runs)
        )
        ingest_seconds = time.perf_counter() - started
        delivered = await asyncio.wait_for(asyncio.gather(*subscribers), 300)
        deliver_seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    # Each subscriber also counts the result event, which carries no latency.
    delivered_events = sum(count for count, _ in delivered) - len(subscribers)
    return {
        "events_ingested": sum(posted),
        "events_delivered": delivered_events,
        "ingested_per_second": round(sum(posted) / ingest_seconds),
        "delivered_per_second": round(delivered_events / deliver_seconds),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "latency_p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
    }


@contextlib.contextmanager
def _emulator() -> Iterator[FirestoreEmulator]:
    with running_emulator() as emulator:
        os.environ[HOST_VARIABLE] = emulator.host
        try:
            yield emulator
        finally:
            os.environ.pop(HOST_VARIABLE, None)


def _firestore_env(emulator: FirestoreEmulator) -> dict[str, str]:
    """A database of its own for each measurement."""
    return {
        **emulator.env,
        "AGENT_PLATFORM_STORE": "firestore",
        "AGENT_PLATFORM_GCP_PROJECT": emulator.new_project(),
    }


async def _on_sqlite(scratch: Path, quick: bool) -> dict[str, Any]:
    env = {"AGENT_PLATFORM_LOG_LEVEL": "WARNING"}
    with running_platform(scratch / "sqlite", env) as platform:
        store = await SqliteStore.open(platform.data_dir / "platform.db")
        try:
            return await _measure(store, platform, platform, quick)
        finally:
            await store.aclose()


async def _on_firestore(
    scratch: Path, env: dict[str, str], replicas: int, quick: bool
) -> dict[str, Any]:
    env = {**env, "AGENT_PLATFORM_LOG_LEVEL": "WARNING"}
    store = FirestoreStore.open(env["AGENT_PLATFORM_GCP_PROJECT"])
    try:
        with running_platform(scratch / f"firestore-{replicas}-a", env) as first:
            if replicas == 1:
                return await _measure(store, first, first, quick)
            with running_platform(scratch / f"firestore-{replicas}-b", env) as second:
                return await _measure(store, second, first, quick)
    finally:
        await store.aclose()


async def _all(scratch: Path, quick: bool) -> dict[str, Any]:
    results = {}
    # Quick, only one replica on the emulator: SQLite's flow is bench_platform_events' too, and
    # a second replica adds only its start, the slowest part of this benchmark.
    if not quick:
        results["sqlite"] = await _on_sqlite(scratch, quick)
    with _emulator() as emulator:
        one = await _on_firestore(scratch, _firestore_env(emulator), 1, quick)
        results["firestore_emulator"] = one
        if not quick:
            two = await _on_firestore(scratch, _firestore_env(emulator), 2, quick)
            results["firestore_emulator_two_replicas"] = two
    return results


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        results: dict[str, Any] = asyncio.run(_all(Path(scratch), quick))
    results["targets"] = {
        f"{backend}: every event delivered once": figures["events_delivered"]
        == figures["events_ingested"]
        for backend, figures in results.items()
    }
    return results

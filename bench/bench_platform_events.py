"""Event flow through one platform process with SQLite.

100 runs post event batches concurrently, as runners do (a batch of 50 events every 500 ms
each: 10,000 events/s offered); every run has one SSE subscriber, and one run has 20 more. The
platform is a subprocess; posters and subscribers share this process. Reported: events/s
ingested and delivered over the whole flow; the p50/p99 latency from the moment an event is
posted to the moment a subscriber has parsed it; and the platform's CPU time per event, which
other load on the machine does not inflate as it does wall-clock figures. Targets on a 2-core
machine: >= 5,000 events/s, p99 < 50 ms.

Run: `python -m bench platform_events`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from agent_platform.auth import hash_secret, new_secret
from agent_platform.domain import Run, RunStatus, RunTransition, new_id, utcnow
from agent_platform.store.sqlite import SqliteStore
from agent_runner import protocol
from servers.platform import RunningPlatform, running_platform

RUNS = 100
HOT_RUN_EXTRA_SUBSCRIBERS = 20
BATCHES_PER_RUN = 10
EVENTS_PER_BATCH = 50
BATCH_INTERVAL_SECONDS = 0.5
TARGET_EVENTS_PER_SECOND = 5000
TARGET_P99_MS = 50.0


async def _running_runs(platform: RunningPlatform, agent_id: str) -> list[tuple[str, str]]:
    """Runs stored as running, with tokens this process holds: it plays their runners."""
    store = await SqliteStore.open(platform.data_dir / "platform.db")
    try:
        owner = await store.find_user_by_name("alice")
        assert owner is not None
        runs = []
        for _ in range(RUNS):
            run = Run(new_id("run"), agent_id, owner.id, "bench", RunStatus.RUNNING, utcnow())
            await store.create_run(run)
            token = new_secret("run")
            running = frozenset({RunStatus.RUNNING})
            await store.transition_run(
                RunTransition(
                    run.id, running, RunStatus.RUNNING, utcnow(), run_token_hash=hash_secret(token)
                )
            )
            runs.append((run.id, token))
        return runs
    finally:
        await store.aclose()


async def _subscribe(
    http: httpx.AsyncClient, run_id: str, latencies: list[float], connected: asyncio.Event
) -> int:
    received = 0
    async with http.stream("GET", f"/api/runs/{run_id}/events/stream") as answer:
        connected.set()
        buffer = b""
        async for chunk in answer.aiter_bytes():
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            now = time.perf_counter()
            for frame in frames:
                if frame.startswith(b":"):
                    continue
                data = json.loads(frame.rsplit(b"\ndata: ", 1)[1])
                received += 1
                if data["type"] == "result":
                    return received
                latencies.append(now - data["data"]["posted"])
    return received


async def _post(http: httpx.AsyncClient, run_id: str, token: str) -> int:
    path = protocol.EVENTS_PATH.format(run_id=run_id)
    headers = {"Authorization": f"Bearer {token}"}
    seq = 0
    next_at = time.perf_counter()
    for batch in range(BATCHES_PER_RUN):
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))  # the runner's pace
        next_at += BATCH_INTERVAL_SECONDS
        now = time.perf_counter()
        stamp = datetime.now(UTC).isoformat()
        events: list[dict[str, Any]] = []
        for _ in range(EVENTS_PER_BATCH):
            seq += 1
            events.append(
                {"seq": seq, "type": "text_delta", "data": {"posted": now}, "time": stamp}
            )
        if batch == BATCHES_PER_RUN - 1:
            seq += 1
            events.append(
                {"seq": seq, "type": "result", "data": {"outcome": "succeeded"}, "time": stamp}
            )
        answer = await http.post(path, json={"events": events}, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"posting events failed: {answer.status_code} {answer.text}")
    return seq - 1


async def _measure(platform: RunningPlatform) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
    async with httpx.AsyncClient(
        base_url=platform.base_url, headers=platform.headers, timeout=60, limits=limits
    ) as http:
        agent = (await http.post("/api/agents", json={"name": "bench"})).json()
        runs = await _running_runs(platform, agent["id"])
        watchers = [run_id for run_id, _ in runs] + [runs[0][0]] * HOT_RUN_EXTRA_SUBSCRIBERS
        latencies: list[float] = []
        connected = [asyncio.Event() for _ in watchers]
        subscribers = [
            asyncio.create_task(_subscribe(http, run_id, latencies, ready))
            for run_id, ready in zip(watchers, connected, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 60)
        started = time.perf_counter()
        cpu_before = platform.cpu_seconds()
        posted = await asyncio.gather(*(_post(http, run_id, token) for run_id, token in runs))
        ingest_seconds = time.perf_counter() - started
        delivered = await asyncio.wait_for(asyncio.gather(*subscribers), 120)
        deliver_seconds = time.perf_counter() - started
        cpu = platform.cpu_seconds() - cpu_before
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99)] * 1000
    ingested_rate = sum(posted) / ingest_seconds
    delivered_rate = (sum(delivered) - len(subscribers)) / deliver_seconds
    return {
        "runs": RUNS,
        "subscribers": len(subscribers),
        "events_ingested": sum(posted),
        "events_delivered": sum(delivered) - len(subscribers),
        "ingested_per_second": round(ingested_rate),
        "delivered_per_second": round(delivered_rate),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "latency_p99_ms": round(p99, 2),
        "platform_cpu_seconds": round(cpu, 2),
        "platform_cpu_us_per_event": round(cpu / sum(posted) * 1e6, 1),
        "targets": {
            f"ingested >= {TARGET_EVENTS_PER_SECOND} events/s": ingested_rate
            >= TARGET_EVENTS_PER_SECOND,
            f"delivered >= {TARGET_EVENTS_PER_SECOND} events/s": delivered_rate
            >= TARGET_EVENTS_PER_SECOND,
            f"p99 ingestion-to-delivery < {TARGET_P99_MS:g} ms": p99 < TARGET_P99_MS,
        },
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        env = {"AGENT_PLATFORM_LOG_LEVEL": "WARNING"}
        with running_platform(Path(scratch) / "platform", env) as platform:
            return asyncio.run(_measure(platform))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

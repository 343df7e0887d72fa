"""A run's events as its runner posts them and its subscribers receive them.

The event benchmarks play both ends against a real platform: a runner posts a batch of
`EVENTS_PER_BATCH` events every `BATCH_INTERVAL_SECONDS`, each stamped with the system-wide
monotonic time it was posted, and ends with a result event; a subscriber follows the run's SSE
stream to that result and records each event's delay from posting to delivery.

The runners post from a process of their own (`post_events`, run in a spawned worker), so that
neither side's work delays the other's, and each connection has its own client. Both sides are
measuring instruments: while the flow runs, neither collects garbage (`no_collections`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import ssl
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from agent_platform.auth import hash_secret, new_secret
from agent_platform.domain import Run, RunStatus, RunTransition, new_id, utcnow
from agent_platform.store import Store
from agent_runner import protocol
from servers.platform import RunningPlatform

EVENTS_PER_BATCH = 50
BATCH_INTERVAL_SECONDS = 0.5


async def running_runs(store: Store, agent_id: str, count: int) -> list[tuple[str, str]]:
    """Runs stored as running, with tokens the caller holds: it plays their runners."""
    owner = await store.find_user_by_name("alice")
    if owner is None:
        raise RuntimeError("the platform has no user alice; start it with running_platform")
    runs = []
    for _ in range(count):
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


async def subscribe(
    http: httpx.AsyncClient, run_id: str, latencies: list[float], connected: asyncio.Event
) -> tuple[int, float]:
    """Follow one run to its result: how many events arrived, and when the last one did."""
    received = 0
    async with http.stream("GET", f"/api/runs/{run_id}/events/stream") as answer:
        connected.set()
        buffer = b""
        async for chunk in answer.aiter_bytes():
            now = time.monotonic()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                if frame.startswith(b":"):
                    continue
                data = json.loads(frame.rsplit(b"\ndata: ", 1)[1])
                received += 1
                if data["type"] == "result":
                    return received, now
                latencies.append(now - data["data"]["posted"])
    raise RuntimeError(f"the stream of run {run_id} ended before its result")


async def fetch_assignment(http: httpx.AsyncClient, run_id: str, token: str) -> None:
    """What a runner asks first; it opens the connection the runner's batches then reuse."""
    path = protocol.ASSIGNMENT_PATH.format(run_id=run_id)
    answer = await http.get(path, headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200:
        raise RuntimeError(f"fetching the assignment failed: {answer.status_code} {answer.text}")


async def post_batches(
    http: httpx.AsyncClient, run_id: str, token: str, first_at: float, batches: int
) -> int:
    """Post `batches` batches from `first_at` (monotonic) on, the last with the result.

    Returns the number of events posted before the result.
    """
    path = protocol.EVENTS_PATH.format(run_id=run_id)
    headers = {"Authorization": f"Bearer {token}"}
    seq = 0
    next_at = first_at
    for batch in range(batches):
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))  # the runner's pace
        next_at += BATCH_INTERVAL_SECONDS
        now = time.monotonic()
        stamp = datetime.now(UTC).isoformat()
        events: list[dict[str, Any]] = []
        for _ in range(EVENTS_PER_BATCH):
            seq += 1
            events.append(
                {"seq": seq, "type": "text_delta", "data": {"posted": now}, "time": stamp}
            )
        if batch == batches - 1:
            seq += 1
            events.append(
                {"seq": seq, "type": "result", "data": {"outcome": "succeeded"}, "time": stamp}
            )
        answer = await http.post(path, json={"events": events}, headers=headers)
        if answer.status_code != 200:
            raise RuntimeError(f"posting events failed: {answer.status_code} {answer.text}")
    return seq - 1


@contextmanager
def no_collections() -> Iterator[None]:
    """Keep this side's garbage collector out of the figures it measures.

    A full collection in the subscribing process, over the objects that every connection and
    received event leave, held up delivery of every event behind it by up to 100 ms, and grew
    with each repetition. What exists before the flow is frozen out of collections, and none
    runs during it.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


def client(base_url: str, tls: ssl.SSLContext, **options: Any) -> httpx.AsyncClient:
    """A client for one connection: httpx scans its whole pool on every request."""
    # One TLS context for all, though nothing here is TLS: httpx builds one per client, slowly.
    return httpx.AsyncClient(base_url=base_url, timeout=120, verify=tls, **options)


async def _post_all(
    base_url: str, runs: list[tuple[str, str]], batches: int, together: bool
) -> tuple[int, float, float]:
    tls = ssl.create_default_context()
    clients = [client(base_url, tls) for _ in runs]
    try:
        await asyncio.gather(
            *(
                fetch_assignment(http, run_id, token)
                for http, (run_id, token) in zip(clients, runs, strict=True)
            )
        )
        started = time.monotonic()
        phases = [
            started + (0.0 if together else random.uniform(0, BATCH_INTERVAL_SECONDS)) for _ in runs
        ]
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
    base_url: str, runs: list[tuple[str, str]], batches: int, together: bool = False
) -> tuple[int, float, float]:
    """In the posting process: every run's batches, each run at its own phase or, `together`,
    all at once; the events posted, and when posting began and ended on the monotonic clock."""
    with no_collections():
        return asyncio.run(_post_all(base_url, runs, batches, together))


async def create_agent(platform: RunningPlatform) -> str:
    """An agent of alice's for the runs of a flow; its id."""
    async with client(
        platform.base_url, ssl.create_default_context(), headers=platform.headers
    ) as http:
        agent: dict[str, Any] = (await http.post("/api/agents", json={"name": "bench"})).json()
    return str(agent["id"])


async def measure_flow(
    runs: list[tuple[str, str]],
    watched: list[str],
    batches: int,
    *,
    ingest: RunningPlatform,
    deliver: RunningPlatform,
    posting: ProcessPoolExecutor,
    together: bool = False,
) -> dict[str, Any]:
    """`runs` post `batches` each to `ingest`, from `posting`'s process, while one subscriber per
    entry of `watched` (run ids) follows its run on `deliver`: the flow's figures.

    Throughput is counted from the first post; latency over every event each subscriber
    received; CPU over the platform processes (one, or both) during the flow.
    """
    tls = ssl.create_default_context()
    clients = [client(deliver.base_url, tls, headers=deliver.headers) for _ in watched]
    latencies: list[float] = []
    connected = [asyncio.Event() for _ in watched]
    subscribers = [
        asyncio.create_task(subscribe(http, run_id, latencies, ready))
        for http, run_id, ready in zip(clients, watched, connected, strict=True)
    ]
    platforms = {ingest.base_url: ingest, deliver.base_url: deliver}.values()
    try:
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in connected)), 60)
        with no_collections():
            cpu_before = sum(platform.cpu_seconds() for platform in platforms)
            posted, started, ingested_at = await asyncio.get_running_loop().run_in_executor(
                posting, post_events, ingest.base_url, runs, batches, together
            )
            delivered = await asyncio.wait_for(asyncio.gather(*subscribers), 300)
            cpu = sum(platform.cpu_seconds() for platform in platforms) - cpu_before
    finally:
        for task in subscribers:
            task.cancel()
        await asyncio.gather(*(http.aclose() for http in clients))
    ordered = sorted(latencies)
    # Each subscriber also counts the result event, which carries no latency.
    events_delivered = sum(count for count, _ in delivered) - len(subscribers)
    return {
        "runs": len(runs),
        "subscribers": len(subscribers),
        "events_ingested": posted,
        "events_delivered": events_delivered,
        "ingested_per_second": round(posted / (ingested_at - started)),
        "delivered_per_second": round(
            events_delivered / (max(at for _, at in delivered) - started)
        ),
        "latency_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "latency_p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 2),
        "platform_cpu_seconds": round(cpu, 2),
        "platform_cpu_us_per_event": round(cpu / posted * 1e6, 1),
    }

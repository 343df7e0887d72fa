"""A run's events as its runner posts them and its subscribers receive them.

The event benchmarks play both ends against a real platform: a runner posts a batch of
`EVENTS_PER_BATCH` events every `BATCH_INTERVAL_SECONDS`, each stamped with the system-wide
monotonic time it was posted, and ends with a result event; a subscriber follows the run's SSE
stream to that result and records each event's delay from posting to delivery.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from agent_platform.auth import hash_secret, new_secret
from agent_platform.domain import Run, RunStatus, RunTransition, new_id, utcnow
from agent_platform.store import Store
from agent_runner import protocol

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

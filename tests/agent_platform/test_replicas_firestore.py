"""Two platform processes behind one Firestore, as two API replicas behind the load balancer.

Each replica is the real `agent-platform serve` with its own data directory; they share only
the Firestore emulator, as pods share only Firestore in the cloud.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_platform.auth import hash_secret, new_secret
from agent_platform.domain import Run, RunStatus, RunTransition, new_id, utcnow
from agent_platform.executors.runner_process import is_running, read_record
from agent_platform.store.firestore import FirestoreStore
from agent_runner import protocol
from servers.firestore_emulator import FirestoreEmulator
from servers.platform import RunningPlatform, event, result_event, running_platform

SCRIPTED_RUNNER = Path(__file__).with_name("scripted_runner.py")
WAIT_SECONDS = 30.0
LEASE_SECONDS = 2.0


def environment(emulator: FirestoreEmulator) -> dict[str, str]:
    return {
        **emulator.env,
        "AGENT_PLATFORM_STORE": "firestore",
        "AGENT_PLATFORM_GCP_PROJECT": emulator.new_project(),
        "AGENT_PLATFORM_RUNNER_COMMAND": json.dumps([sys.executable, str(SCRIPTED_RUNNER)]),
        "AGENT_PLATFORM_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
    }


@pytest.fixture(scope="module")
def pair_env(firestore_emulator: FirestoreEmulator) -> dict[str, str]:
    """One database for the replicas that every test of this module but one shares."""
    return environment(firestore_emulator)


@pytest.fixture
def shared_env(firestore_emulator: FirestoreEmulator) -> dict[str, str]:
    return environment(firestore_emulator)


@pytest.fixture
async def store(pair_env: dict[str, str]) -> AsyncIterator[FirestoreStore]:
    opened = FirestoreStore.open(pair_env["AGENT_PLATFORM_GCP_PROJECT"])
    yield opened
    await opened.aclose()


@pytest.fixture(scope="module")
def replica_a(
    tmp_path_factory: pytest.TempPathFactory, pair_env: dict[str, str]
) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("a"), pair_env) as platform:
        yield platform


@pytest.fixture(scope="module")
def replica_b(
    tmp_path_factory: pytest.TempPathFactory, pair_env: dict[str, str]
) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("b"), pair_env) as platform:
        yield platform


def client_of(replica: RunningPlatform) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=replica.base_url, headers=replica.headers, timeout=WAIT_SECONDS
    )


async def create_agent(replica: RunningPlatform) -> dict[str, Any]:
    async with client_of(replica) as client:
        answer = await client.post("/api/agents", json={"name": "helper"})
    assert answer.status_code == 201, answer.text
    agent: dict[str, Any] = answer.json()
    return agent


async def reported_run(store: FirestoreStore, agent: dict[str, Any]) -> tuple[str, str]:
    """A running run whose runner is the test: its id and run token."""
    owner = await store.find_user_by_name("alice")
    assert owner is not None
    run = Run(new_id("run"), agent["id"], owner.id, "t", RunStatus.QUEUED, utcnow())
    await store.create_run(run)
    token = new_secret("run")
    started = await store.transition_run(
        RunTransition(
            run.id,
            frozenset({RunStatus.QUEUED}),
            RunStatus.RUNNING,
            utcnow(),
            run_token_hash=hash_secret(token),
        )
    )
    assert started is not None
    return run.id, token


async def subscribe(
    replica: RunningPlatform, run_id: str, connected: asyncio.Event, after: int = 0
) -> list[dict[str, Any]]:
    """Every event the replica's SSE stream delivers, until the stream ends."""
    received = []
    async with (
        client_of(replica) as client,
        client.stream(
            "GET", f"/api/runs/{run_id}/events/stream", params={"after": after}
        ) as answer,
    ):
        assert answer.status_code == 200
        connected.set()
        async for line in answer.aiter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line.removeprefix("data: ")))
    return received


async def post_events(
    replica: RunningPlatform, run_id: str, token: str, events: list[dict[str, Any]]
) -> None:
    async with httpx.AsyncClient(
        base_url=replica.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as runner:
        answer = await runner.post(
            protocol.EVENTS_PATH.format(run_id=run_id), json={"events": events}
        )
    assert answer.status_code == 200, answer.text


async def wait_for_run(replica: RunningPlatform, run_id: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    async with client_of(replica) as client:
        while True:
            run: dict[str, Any] = (await client.get(f"/api/runs/{run_id}")).json()
            if run["status"] in statuses:
                return run
            assert time.monotonic() < deadline, f"the run stayed {run['status']}"
            await asyncio.sleep(0.05)  # polling a condition with a deadline


async def test_a_subscriber_on_one_replica_gets_every_event_posted_to_another_once_in_order(
    store: FirestoreStore, replica_a: RunningPlatform, replica_b: RunningPlatform
) -> None:
    run_id, token = await reported_run(store, await create_agent(replica_a))
    connected = asyncio.Event()
    watching = asyncio.create_task(subscribe(replica_a, run_id, connected))
    await asyncio.wait_for(connected.wait(), WAIT_SECONDS)

    batches = [[event(seq) for seq in range(start, start + 10)] for start in range(1, 41, 10)]
    for batch in batches:
        await post_events(replica_b, run_id, token, batch)
        # A runner retrying a batch may reach the other replica: nothing is stored twice.
        await post_events(replica_a, run_id, token, batch)
    await post_events(replica_b, run_id, token, [result_event(41)])

    received = await asyncio.wait_for(watching, WAIT_SECONDS)
    assert [e["seq"] for e in received] == list(range(1, 42))
    assert received[-1]["type"] == "result"

    resumed = await asyncio.wait_for(
        subscribe(replica_b, run_id, asyncio.Event(), after=37), WAIT_SECONDS
    )
    assert [e["seq"] for e in resumed] == [38, 39, 40, 41]


async def test_a_run_started_by_one_replica_shows_on_the_other(
    replica_a: RunningPlatform, replica_b: RunningPlatform
) -> None:
    agent = await create_agent(replica_a)
    async with client_of(replica_b) as client:
        answer = await client.post(f"/api/agents/{agent['id']}/runs", json={"task": "succeed"})
        assert answer.status_code in (200, 201), answer.text
        run_id = answer.json()["id"]
    run = await wait_for_run(replica_a, run_id, {"succeeded", "failed"})
    assert run["status"] == "succeeded", run


def kill_sandboxes_of(replica: RunningPlatform) -> None:
    """Local sandboxes of a killed replica outlive it; nobody else may stop them."""
    for path in (replica.data_dir / "executor" / "local").glob("*.json"):
        record = read_record(path)
        if record is not None and is_running(record):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGKILL)


async def test_the_run_of_a_killed_replica_is_finished_by_the_survivor(
    tmp_path: Path, shared_env: dict[str, str]
) -> None:
    with running_platform(tmp_path / "a", shared_env) as doomed:
        try:
            await kill_mid_run(tmp_path, shared_env, doomed)
        finally:
            kill_sandboxes_of(doomed)


async def kill_mid_run(tmp_path: Path, shared_env: dict[str, str], doomed: RunningPlatform) -> None:
    agent = await create_agent(doomed)
    async with client_of(doomed) as client:
        answer = await client.post(f"/api/agents/{agent['id']}/runs", json={"task": "hang"})
        assert answer.status_code in (200, 201), answer.text
        run_id = answer.json()["id"]
    await wait_for_run(doomed, run_id, {"running"})
    with running_platform(tmp_path / "b", shared_env) as survivor:
        # The second replica, starting and then over several lease periods, leaves alone a
        # run the first one looks after: that one renews its lease.
        async with client_of(survivor) as client:
            deadline = time.monotonic() + 2.5 * LEASE_SECONDS
            while time.monotonic() < deadline:
                assert (await client.get(f"/api/runs/{run_id}")).json()["status"] == "running"
                await asyncio.sleep(0.2)  # sampling the status over several lease periods
        connected = asyncio.Event()
        watching = asyncio.create_task(subscribe(survivor, run_id, connected))
        await asyncio.wait_for(connected.wait(), WAIT_SECONDS)

        doomed.kill()

        run = await wait_for_run(survivor, run_id, {"failed", "succeeded", "cancelled"})
        received = await asyncio.wait_for(watching, WAIT_SECONDS)
        async with client_of(survivor) as client:
            stored = (await client.get(f"/api/runs/{run_id}/events")).json()["items"]
    assert run["status"] == "failed"
    assert "replica" in run["error"]
    results = [e for e in stored if e["type"] == "result"]
    assert len(results) == 1
    assert results[0]["data"]["outcome"] == "failed"
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert received[-1]["type"] == "result"

"""What the Firestore store does beyond the shared contract: its layout, TTL and batch limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from agent_platform.auth import hash_secret
from agent_platform.domain import (
    Agent,
    ApiToken,
    Run,
    RunStatus,
    StoredEvent,
    TokenKind,
    User,
    new_id,
    utcnow,
)
from agent_platform.settings import Settings
from agent_platform.store import open_store
from agent_platform.store.firestore import EVENT_RETENTION, FirestoreStore
from agent_runner.protocol import Limits
from google.cloud.firestore import AsyncClient
from servers.firestore_emulator import FirestoreEmulator


@pytest.fixture
def project(firestore_emulator: FirestoreEmulator) -> str:
    return firestore_emulator.new_project()


@pytest.fixture
async def store(project: str) -> AsyncIterator[FirestoreStore]:
    opened = FirestoreStore.open(project)
    yield opened
    await opened.aclose()


@pytest.fixture
def raw(project: str) -> AsyncClient:
    """The database as Firestore holds it, read without the store."""
    return AsyncClient(project=project)


async def an_agent(store: FirestoreStore) -> Agent:
    now = utcnow()
    user = User(new_id("usr"), new_id("name"), now)
    await store.create_user(user)
    agent = Agent(new_id("agt"), user.id, "a", "", "", "m", (), Limits(), now, now)
    await store.create_agent(agent)
    return agent


async def a_run(store: FirestoreStore, key: str | None = None) -> Run:
    agent = await an_agent(store)
    run = Run(
        new_id("run"),
        agent.id,
        agent.owner_id,
        "t",
        RunStatus.QUEUED,
        utcnow(),
        idempotency_key=key,
    )
    await store.create_run(run)
    return run


def events(run: Run, seqs: range, **data: object) -> list[StoredEvent]:
    return [StoredEvent(run.id, seq, "text_delta", {"n": seq, **data}, utcnow()) for seq in seqs]


async def test_documents_live_where_the_layout_says(
    store: FirestoreStore, raw: AsyncClient
) -> None:
    run = await a_run(store, key="k1")
    await store.create_token(
        ApiToken("tok_1", run.owner_id, "cli", TokenKind.API, hash_secret("s"), utcnow())
    )
    await store.append_events(run.id, events(run, range(1, 3)))
    await store.append_conversation(run.owner_id, run.agent_id, [{"role": "user", "content": "hi"}])

    user = await raw.collection("users").document(run.owner_id).get()
    assert user.exists
    assert (await raw.collection("agents").document(run.agent_id).get()).get(
        "owner_id"
    ) == run.owner_id
    stored_run = await raw.collection("runs").document(run.id).get()
    assert stored_run.get("status") == "queued"
    assert (await raw.collection("tokens").document(hash_secret("s")).get()).get("id") == "tok_1"
    event_ids = [d.id async for d in raw.collection(f"runs/{run.id}/events").stream()]
    assert event_ids == ["000000000001", "000000000002"]
    messages = [d.id async for d in raw.collection(f"agents/{run.agent_id}/conversation").stream()]
    assert messages == ["000000000001"]
    keys = [d.get("run_id") async for d in raw.collection("run_keys").stream()]
    assert keys == [run.id]
    names = [d.get("id") async for d in raw.collection("user_names").stream()]
    assert names == [run.owner_id]


async def test_events_expire_a_retention_period_after_they_happened(
    store: FirestoreStore, raw: AsyncClient
) -> None:
    run = await a_run(store)
    [event] = events(run, range(1, 2))
    await store.append_events(run.id, [event])
    stored = await raw.document(f"runs/{run.id}/events/000000000001").get()
    assert stored.get("expire_at") == event.time + EVENT_RETENTION
    assert timedelta(days=30) == EVENT_RETENTION


async def test_nested_lists_in_events_and_messages_round_trip(store: FirestoreStore) -> None:
    # Firestore arrays cannot hold arrays; tool inputs and outputs can.
    run = await a_run(store)
    await store.append_events(run.id, events(run, range(1, 2), grid=[[1, 2], [3, [4]]]))
    [stored] = await store.list_events(run.id)
    assert stored.data["grid"] == [[1, 2], [3, [4]]]
    message = {"role": "assistant", "content": [{"type": "tool_use", "input": {"m": [[1]]}}]}
    await store.append_conversation(run.owner_id, run.agent_id, [message])
    assert await store.get_conversation(run.owner_id, run.agent_id) == [message]


async def test_a_batch_larger_than_one_transaction_is_stored_whole(store: FirestoreStore) -> None:
    run = await a_run(store)
    batch = events(run, range(1, 651))
    stored = await store.append_events(run.id, batch)
    assert [e.seq for e in stored] == list(range(1, 651))
    assert await store.append_events(run.id, batch) == []
    assert await store.last_event_seq(run.id) == 650


async def test_two_replicas_posting_one_batch_store_each_event_once(project: str) -> None:
    replicas = [FirestoreStore.open(project), FirestoreStore.open(project)]
    try:
        run = await a_run(replicas[0])
        batch = events(run, range(1, 41))
        results = await asyncio.gather(*(r.append_events(run.id, batch) for r in replicas))
        seqs = sorted(e.seq for result in results for e in result)
        assert seqs == list(range(1, 41))
        assert [e.seq for e in await replicas[1].list_events(run.id)] == list(range(1, 41))
    finally:
        for replica in replicas:
            await replica.aclose()


async def test_the_settings_select_firestore(project: str, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        store="firestore",
        gcp_project=project,
    )
    opened = await open_store(settings)
    try:
        assert isinstance(opened, FirestoreStore)
        await opened.ping()
        run = await a_run(opened)
        assert await opened.get_run_unscoped(run.id) == run
    finally:
        await opened.aclose()

"""The contract every store backend passes; backends come from the `store` fixture."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from agent_platform.domain import (
    Agent,
    ApiToken,
    Run,
    RunStatus,
    RunTransition,
    StoredEvent,
    TokenKind,
    User,
    new_id,
    utcnow,
)
from agent_platform.store import Store, StoreError
from agent_runner.protocol import Limits, Outcome, RunResult, Usage


def a_user(name: str) -> User:
    return User(id=new_id("usr"), name=name, created_at=utcnow())


def an_agent(owner: str, name: str = "helper", **changes: Any) -> Agent:
    now = utcnow()
    agent = Agent(
        id=new_id("agt"),
        owner_id=owner,
        name=name,
        description="d",
        system_prompt="be brief",
        model="claude-test",
        allowed_tools=("bash",),
        limits=Limits(max_turns=3),
        created_at=now,
        updated_at=now,
    )
    return replace(agent, **changes)


def a_run(agent: Agent, key: str | None = None, task: str = "do it") -> Run:
    return Run(
        id=new_id("run"),
        agent_id=agent.id,
        owner_id=agent.owner_id,
        task=task,
        status=RunStatus.QUEUED,
        created_at=utcnow(),
        idempotency_key=key,
    )


def an_event(run: Run, seq: int, kind: str = "text_delta") -> StoredEvent:
    return StoredEvent(run.id, seq, kind, {"text": str(seq)}, utcnow())


def start(run: Run, token_hash: str = "h") -> RunTransition:  # noqa: S107
    return RunTransition(
        run.id,
        frozenset({RunStatus.QUEUED}),
        RunStatus.RUNNING,
        utcnow(),
        run_token_hash=token_hash,
    )


async def test_users_are_found_by_id_and_name(store: Store) -> None:
    user = a_user("alice")
    await store.create_user(user)
    assert await store.get_user(user.id) == user
    assert await store.find_user_by_name("alice") == user
    assert await store.find_user_by_name("nobody") is None
    assert [u.name for u in await store.list_users()] == ["alice"]


async def test_a_second_user_with_the_same_name_is_refused(store: Store) -> None:
    await store.create_user(a_user("alice"))
    with pytest.raises(StoreError, match="alice"):
        await store.create_user(a_user("alice"))


async def test_tokens_are_found_by_hash_and_deleted_only_by_their_user(store: Store) -> None:
    now = utcnow()
    token = ApiToken("tok_1", "usr_a", "cli", TokenKind.API, "hash-1", now, now + timedelta(1))
    await store.create_token(token)
    assert await store.find_token("hash-1") == token
    assert await store.list_tokens("usr_a") == [token]
    assert not await store.delete_token("usr_b", "tok_1")
    assert await store.delete_token("usr_a", "tok_1")
    assert await store.find_token("hash-1") is None


async def test_a_one_time_token_is_consumed_by_one_caller_only(store: Store) -> None:
    await store.create_token(ApiToken("tok_l", "usr_a", "l", TokenKind.LOGIN, "once", utcnow()))
    assert await store.consume_token("once", TokenKind.API) is None
    results = await asyncio.gather(
        *(store.consume_token("once", TokenKind.LOGIN) for _ in range(5))
    )
    assert sum(r is not None for r in results) == 1
    assert await store.find_token("once") is None


async def test_agents_are_visible_to_their_owner_only(store: Store) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    assert await store.get_agent("usr_a", agent.id) == agent
    assert await store.get_agent("usr_b", agent.id) is None
    assert await store.list_agents("usr_b") == []
    assert not await store.update_agent(replace(agent, owner_id="usr_b", name="stolen"))
    assert not await store.delete_agent("usr_b", agent.id)
    assert await store.get_agent("usr_a", agent.id) == agent


async def test_agents_are_listed_newest_first_up_to_the_limit(store: Store) -> None:
    base = utcnow()
    for i in range(3):
        await store.create_agent(an_agent("usr_a", f"a{i}", created_at=base + timedelta(seconds=i)))
    assert [a.name for a in await store.list_agents("usr_a")] == ["a2", "a1", "a0"]
    assert [a.name for a in await store.list_agents("usr_a", limit=2)] == ["a2", "a1"]


async def test_an_agent_update_replaces_its_fields(store: Store) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    changed = replace(agent, name="renamed", allowed_tools=(), limits=Limits(max_turns=9))
    assert await store.update_agent(changed)
    assert await store.get_agent("usr_a", agent.id) == changed


async def test_deleting_an_agent_deletes_its_runs_events_and_conversation(store: Store) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    run, _ = await store.create_run(a_run(agent))
    await store.append_events(run.id, [an_event(run, 1)])
    await store.append_conversation("usr_a", agent.id, [{"role": "user", "content": "hi"}])
    assert await store.delete_agent("usr_a", agent.id)
    assert await store.get_run("usr_a", run.id) is None
    assert await store.list_events(run.id) == []
    assert await store.get_conversation("usr_a", agent.id) == []


async def test_a_run_is_created_once_per_owner_and_idempotency_key(store: Store) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    first, created = await store.create_run(a_run(agent, key="k1"))
    again, created_again = await store.create_run(a_run(agent, key="k1", task="other"))
    assert created
    assert not created_again
    assert again == first
    other_owner = an_agent("usr_b")
    _, created_for_b = await store.create_run(a_run(other_owner, key="k1"))
    assert created_for_b
    assert len(await store.list_runs("usr_a")) == 1


async def test_concurrent_creations_with_one_key_make_one_run(store: Store) -> None:
    agent = an_agent("usr_a")
    results = await asyncio.gather(*(store.create_run(a_run(agent, key="k")) for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert len({run.id for run, _ in results}) == 1


async def test_runs_are_visible_to_their_owner_only(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    assert await store.get_run("usr_a", run.id) == run
    assert await store.get_run("usr_b", run.id) is None
    assert await store.list_runs("usr_b") == []
    assert await store.get_run_unscoped(run.id) == run


async def test_runs_are_listed_by_agent_and_status(store: Store) -> None:
    one, two = an_agent("usr_a"), an_agent("usr_a")
    r1, _ = await store.create_run(a_run(one))
    r2, _ = await store.create_run(replace(a_run(two), created_at=r1.created_at + timedelta(1)))
    await store.transition_run(start(r2))
    assert [r.id for r in await store.list_runs("usr_a")] == [r2.id, r1.id]
    assert [r.id for r in await store.list_runs("usr_a", agent_id=one.id)] == [r1.id]
    running = await store.list_runs("usr_a", statuses=[RunStatus.RUNNING])
    assert [r.id for r in running] == [r2.id]
    assert [r.id for r in await store.list_runs_in({RunStatus.QUEUED})] == [r1.id]
    assert await store.count_runs_in({RunStatus.QUEUED, RunStatus.RUNNING}) == 2


async def test_only_one_of_concurrent_transitions_wins(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    results = await asyncio.gather(*(store.transition_run(start(run, f"h{i}")) for i in range(6)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].status is RunStatus.RUNNING
    assert winners[0].started_at is not None


async def test_a_transition_from_another_status_changes_nothing(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    finish = RunTransition(
        run.id, frozenset({RunStatus.RUNNING}), RunStatus.SUCCEEDED, utcnow(), error=None
    )
    assert await store.transition_run(finish) is None
    assert await store.get_run_unscoped(run.id) == run
    missing = replace(finish, run_id="run_missing")
    assert await store.transition_run(missing) is None


async def test_a_started_run_is_found_by_its_token_hash(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    assert await store.find_run_by_token("secret-hash") is None
    await store.transition_run(start(run, "secret-hash"))
    found = await store.find_run_by_token("secret-hash")
    assert found is not None
    assert found.id == run.id
    assert found.status is RunStatus.RUNNING


async def test_finishing_a_run_keeps_usage_and_extends_the_conversation(store: Store) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    await store.append_conversation("usr_a", agent.id, [{"role": "user", "content": "earlier"}])
    run, _ = await store.create_run(a_run(agent))
    await store.transition_run(start(run))
    await store.settle_tokens(run.id, None, Usage(input_tokens=100, output_tokens=1))
    messages = ({"role": "user", "content": "do it"}, {"role": "assistant", "content": "ok"})
    done = await store.transition_run(
        RunTransition(
            run.id,
            frozenset({RunStatus.RUNNING}),
            RunStatus.FAILED,
            utcnow(),
            error="boom",
            usage=Usage(input_tokens=40, output_tokens=7),
            new_messages=messages,
        )
    )
    assert done is not None
    assert done.status is RunStatus.FAILED
    assert done.error == "boom"
    assert done.finished_at is not None
    assert done.usage == Usage(input_tokens=100, output_tokens=7)
    assert await store.get_run_unscoped(run.id) == done
    conversation = await store.get_conversation("usr_a", agent.id)
    assert conversation == [{"role": "user", "content": "earlier"}, *messages]


def cancel(run: Run) -> RunTransition:
    return RunTransition(
        run.id, frozenset({RunStatus.RUNNING}), RunStatus.CANCELLED, utcnow(), error="cancelled"
    )


async def test_a_run_the_platform_finishes_gets_its_result_after_its_last_event(
    store: Store,
) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    await store.transition_run(start(run))
    await store.append_events(run.id, [an_event(run, 1), an_event(run, 2)])
    await store.settle_tokens(run.id, None, Usage(input_tokens=30, output_tokens=4))

    finished = await store.finish_run(cancel(run), Outcome.CANCELLED)

    assert finished is not None
    done, result = finished
    assert done.status is RunStatus.CANCELLED
    assert await store.get_run_unscoped(run.id) == done
    assert (result.seq, result.type, result.time) == (3, "result", done.finished_at)
    # What the run used is in its result, as a runner's own result would say.
    assert RunResult.model_validate(result.data) == RunResult(
        outcome=Outcome.CANCELLED,
        error="cancelled",
        usage=Usage(input_tokens=30, output_tokens=4),
    )
    assert await store.list_events(run.id, after=2) == [result]


async def test_a_run_finished_already_is_not_finished_again(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    await store.transition_run(start(run))
    tries = await asyncio.gather(
        *(store.finish_run(cancel(run), Outcome.CANCELLED) for _ in range(4))
    )
    assert len([t for t in tries if t is not None]) == 1
    assert [e.type for e in await store.list_events(run.id)] == ["result"]
    assert (
        await store.finish_run(replace(cancel(run), run_id="run_missing"), Outcome.FAILED) is None
    )


async def test_a_result_its_runner_stored_stands_when_the_platform_finishes_the_run(
    store: Store,
) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    run, _ = await store.create_run(a_run(agent))
    await store.transition_run(start(run))
    said = [{"role": "user", "content": "do it"}, {"role": "assistant", "content": "done"}]
    reported = RunResult(outcome=Outcome.SUCCEEDED, usage=Usage(input_tokens=9), new_messages=said)
    data = reported.model_dump(mode="json")
    runner_result = replace(an_event(run, 2, "result"), data=data)
    await store.append_events(run.id, [an_event(run, 1), runner_result])

    finished = await store.finish_run(cancel(run), Outcome.CANCELLED)

    assert finished is not None
    done, result = finished
    assert (done.status, done.error, done.usage) == (RunStatus.SUCCEEDED, None, reported.usage)
    assert result == runner_result
    assert await store.list_events(run.id, after=1) == [runner_result]
    assert await store.get_conversation("usr_a", agent.id) == said


async def test_usage_adds_up(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    await store.settle_tokens(run.id, None, Usage(input_tokens=1, output_tokens=2))
    updated = await store.settle_tokens(
        run.id, None, Usage(input_tokens=3, cache_read_input_tokens=4)
    )
    assert updated is not None
    assert updated.usage == Usage(input_tokens=4, output_tokens=2, cache_read_input_tokens=4)
    assert await store.settle_tokens("run_missing", None, Usage()) is None


async def test_events_are_stored_once_per_seq(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    first = await store.append_events(run.id, [an_event(run, 1), an_event(run, 2)])
    assert [e.seq for e in first] == [1, 2]
    again = await store.append_events(run.id, [an_event(run, 2, "changed"), an_event(run, 3)])
    assert [e.seq for e in again] == [3]
    stored = await store.list_events(run.id)
    assert [(e.seq, e.type) for e in stored] == [
        (1, "text_delta"),
        (2, "text_delta"),
        (3, "text_delta"),
    ]
    assert stored[0].data == {"text": "1"}
    assert [e.seq for e in await store.list_events(run.id, after=1, limit=1)] == [2]
    assert await store.last_event_seq(run.id) == 3
    assert await store.last_event_seq("run_none") == 0


async def test_an_events_data_and_time_read_back_as_stored(store: Store) -> None:
    run, _ = await store.create_run(a_run(an_agent("usr_a")))
    data: dict[str, Any] = {
        "beyond_64_bits": 2**70 + 1,  # not a float's: a store that made it one would be caught
        "float": 0.1,
        "large": 1e300,
        "text": 'h\u00e9llo "quoted" \\ \n\t \u0001 \U0001f600 \u2028',
        "nested": {"list": [1, {"empty": {}}, []], "none": None, "flag": True},
    }
    offset = timezone(timedelta(hours=2))
    events = [
        replace(an_event(run, 1), data=data),
        replace(an_event(run, 2), time=datetime(2026, 1, 2, 3, 4, 5, tzinfo=offset)),
    ]
    await store.append_events(run.id, events)
    stored = await store.list_events(run.id)
    # As text, so that a value of another type (True as 1, an int as a float) is told apart.
    assert json.dumps(stored[0].data) == json.dumps(data)
    # The same instant; the offset is not kept by every store (Firestore answers in UTC).
    assert [e.time for e in stored] == [e.time for e in events]


async def test_batches_posted_at_once_store_each_event_once_for_one_caller(store: Store) -> None:
    runs = [(await store.create_run(a_run(an_agent("usr_a"))))[0] for _ in range(4)]
    # Per run: 1-10, an overlapping 6-15, and a re-send of 1-10, all in flight together.
    batches = [
        (run, [an_event(run, seq) for seq in range(first, first + 10)])
        for run in runs
        for first in (1, 6, 1)
    ]
    results = await asyncio.gather(*(store.append_events(run.id, evs) for run, evs in batches))
    for run in runs:
        told = [
            e.seq for (r, _), new in zip(batches, results, strict=True) if r is run for e in new
        ]
        assert sorted(told) == list(range(1, 16))
        assert [e.seq for e in await store.list_events(run.id)] == list(range(1, 16))


async def test_a_batch_a_store_cannot_write_fails_alone(store: Store) -> None:
    honest, _ = await store.create_run(a_run(an_agent("usr_a")))
    hostile, _ = await store.create_run(a_run(an_agent("usr_b")))
    unwritable = replace(an_event(hostile, 1), data={"text": "\ud800"})  # half a surrogate pair
    # In flight together, as batches that would share one write.
    stored, refused = await asyncio.gather(
        store.append_events(honest.id, [an_event(honest, seq) for seq in (1, 2)]),
        store.append_events(hostile.id, [unwritable]),
        return_exceptions=True,
    )
    assert not isinstance(stored, BaseException)
    assert [e.seq for e in stored] == [1, 2]
    assert [e.seq for e in await store.list_events(honest.id)] == [1, 2]
    # SQLite writes JSON text and refuses it; Firestore keeps strings as they are. (The API
    # refuses such events before any store sees them.)
    if isinstance(refused, Exception):
        assert await store.list_events(hostile.id) == []


async def test_a_conversation_belongs_to_its_agents_owner(store: Store) -> None:
    agent = an_agent("usr_a")
    await store.create_agent(agent)
    await store.append_conversation("usr_a", agent.id, [{"role": "user", "content": "1"}])
    await store.append_conversation("usr_a", agent.id, [{"role": "assistant", "content": "2"}])
    assert [m["content"] for m in await store.get_conversation("usr_a", agent.id)] == ["1", "2"]
    assert await store.get_conversation("usr_b", agent.id) == []
    with pytest.raises(StoreError):
        await store.append_conversation("usr_b", agent.id, [{"role": "user", "content": "x"}])


async def test_the_store_answers_a_ping(store: Store) -> None:
    await store.ping()


async def test_a_write_is_seen_by_the_next_read_while_other_reads_overlap(store: Store) -> None:
    async def writer(run_id: str) -> None:
        for seq in range(1, 11):
            assert await store.last_event_seq(run_id) == seq - 1
            await store.append_events(run_id, [StoredEvent(run_id, seq, "t", {}, utcnow())])

    async def reader(run_id: str) -> None:
        for _ in range(20):
            await store.list_events(run_id, limit=3)

    runs = [f"run_{i}" for i in range(10)]
    await asyncio.gather(*map(writer, runs), *map(reader, runs))

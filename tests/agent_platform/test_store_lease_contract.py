"""The store contract of run leases, which let a surviving replica finish a dead one's runs."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from agent_platform.domain import (
    Agent,
    Lease,
    Run,
    RunStatus,
    RunTransition,
    User,
    new_id,
    utcnow,
)
from agent_platform.store import Store
from agent_runner.protocol import Limits


async def a_running_run(store: Store, lease: Lease | None) -> Run:
    now = utcnow()
    user = User(new_id("usr"), new_id("name"), now)
    await store.create_user(user)
    agent = Agent(new_id("agt"), user.id, "a", "", "", "m", (), Limits(), now, now)
    await store.create_agent(agent)
    run = Run(new_id("run"), agent.id, user.id, "t", RunStatus.QUEUED, now)
    await store.create_run(run)
    started = await store.transition_run(
        RunTransition(
            run.id, frozenset({RunStatus.QUEUED}), RunStatus.RUNNING, utcnow(), lease=lease
        )
    )
    assert started is not None
    return started


def failing(run: Run, *, lease_expired_by: datetime | None) -> RunTransition:
    return RunTransition(
        run.id,
        frozenset({RunStatus.RUNNING}),
        RunStatus.FAILED,
        utcnow(),
        error="its replica was lost",
        lease_expired_by=lease_expired_by,
    )


async def test_a_started_run_keeps_the_lease_it_was_given(store: Store) -> None:
    lease = Lease("replica-a", utcnow() + timedelta(seconds=30))
    run = await a_running_run(store, lease)
    assert run.lease == lease
    stored = await store.get_run_unscoped(run.id)
    assert stored is not None
    assert stored.lease == lease


async def test_a_holder_renews_only_its_own_running_runs(store: Store) -> None:
    soon = utcnow() + timedelta(seconds=5)
    mine = await a_running_run(store, Lease("replica-a", soon))
    theirs = await a_running_run(store, Lease("replica-b", soon))
    later = soon + timedelta(seconds=30)

    assert await store.renew_leases("replica-a", later) == [mine.id]

    renewed = await store.get_run_unscoped(mine.id)
    untouched = await store.get_run_unscoped(theirs.id)
    assert renewed is not None
    assert renewed.lease == Lease("replica-a", later)
    assert untouched is not None
    assert untouched.lease == Lease("replica-b", soon)


async def test_a_finished_run_is_not_renewed(store: Store) -> None:
    run = await a_running_run(store, Lease("replica-a", utcnow() + timedelta(seconds=5)))
    assert await store.transition_run(failing(run, lease_expired_by=None)) is not None
    assert await store.renew_leases("replica-a", utcnow() + timedelta(minutes=1)) == []


async def test_only_running_runs_with_a_lease_that_ran_out_are_expired(store: Store) -> None:
    now = utcnow()
    expired = await a_running_run(store, Lease("replica-a", now - timedelta(seconds=1)))
    await a_running_run(store, Lease("replica-b", now + timedelta(seconds=30)))
    await a_running_run(store, None)
    ended = await a_running_run(store, Lease("replica-a", now - timedelta(seconds=2)))
    await store.transition_run(failing(ended, lease_expired_by=None))

    assert [run.id for run in await store.list_expired_leases(now)] == [expired.id]


async def test_expired_leases_are_listed_oldest_first(store: Store) -> None:
    now = utcnow()
    newer = await a_running_run(store, Lease("replica-a", now - timedelta(seconds=1)))
    older = await a_running_run(store, Lease("replica-b", now - timedelta(seconds=9)))
    listed = await store.list_expired_leases(now)
    assert [run.id for run in listed] == [older.id, newer.id]
    assert [run.id for run in await store.list_expired_leases(now, limit=1)] == [older.id]


async def test_a_live_lease_keeps_a_survivor_from_finishing_the_run(store: Store) -> None:
    now = utcnow()
    run = await a_running_run(store, Lease("replica-a", now + timedelta(seconds=30)))
    assert await store.transition_run(failing(run, lease_expired_by=now)) is None
    stored = await store.get_run_unscoped(run.id)
    assert stored is not None
    assert stored.status is RunStatus.RUNNING


async def test_one_of_concurrent_survivors_finishes_a_run_whose_lease_ran_out(
    store: Store,
) -> None:
    now = utcnow()
    run = await a_running_run(store, Lease("replica-a", now - timedelta(seconds=1)))
    results = await asyncio.gather(
        *(store.transition_run(failing(run, lease_expired_by=now)) for _ in range(3))
    )
    finished = [r for r in results if r is not None]
    assert len(finished) == 1
    assert finished[0].status is RunStatus.FAILED
    assert finished[0].error == "its replica was lost"


async def test_a_lease_is_handed_over_with_a_transition(store: Store) -> None:
    now = utcnow()
    run = await a_running_run(store, Lease("replica-a", now - timedelta(seconds=1)))
    taken = Lease("replica-b", now + timedelta(seconds=30))
    change = replace(
        failing(run, lease_expired_by=now), status=RunStatus.RUNNING, error=None, lease=taken
    )
    moved = await store.transition_run(change)
    assert moved is not None
    assert moved.lease == taken
    assert await store.list_expired_leases(now) == []

"""The store contract of token reservations, which hold a run's budget against parallel calls."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from agent_platform.domain import Reservation, Run, RunStatus, TokenHold, new_id, utcnow
from agent_platform.store import Store
from agent_runner.protocol import Usage

BUDGET = 1_000
REPLICA = "replica-a"


async def a_run(store: Store) -> Run:
    run = Run(new_id("run"), new_id("agt"), new_id("usr"), "t", RunStatus.RUNNING, utcnow())
    created, _ = await store.create_run(run)
    return created


def a_hold(holder: str = REPLICA, minutes: float = 10) -> TokenHold:
    return TokenHold(new_id("hold"), holder, utcnow() + timedelta(minutes=minutes))


async def reserve(
    store: Store,
    run_id: str,
    *,
    least: int,
    most: int,
    hold: TokenHold | None = None,
    now: datetime | None = None,
) -> Reservation | None:
    return await store.reserve_tokens(
        run_id,
        hold or a_hold(),
        budget=BUDGET,
        least=least,
        most=most,
        now=now or utcnow(),
    )


async def test_a_reservation_takes_what_is_free_up_to_what_is_asked(store: Store) -> None:
    run = await a_run(store)
    assert await reserve(store, run.id, least=100, most=300) == (
        Reservation(granted=300, used=0, held=0)
    )
    await store.settle_tokens(run.id, None, Usage(input_tokens=200, output_tokens=50))
    # 1000 - 250 used - 300 held: 450 free, less than asked, more than needed.
    assert await reserve(store, run.id, least=100, most=600) == (
        Reservation(granted=450, used=250, held=300)
    )
    assert await reserve(store, run.id, least=1, most=10) == (
        Reservation(granted=0, used=250, held=750)
    )
    assert await reserve(store, "run_missing", least=1, most=10) is None


async def test_settling_releases_the_reservation_and_counts_the_usage(store: Store) -> None:
    run = await a_run(store)
    hold = a_hold()
    first = await reserve(store, run.id, least=1, most=800, hold=hold)
    assert first is not None
    assert first.granted == 800
    settled = await store.settle_tokens(run.id, hold.id, Usage(input_tokens=90, output_tokens=10))
    assert settled is not None
    assert settled.usage.total_tokens == 100
    assert await reserve(store, run.id, least=900, most=2_000) == (
        Reservation(granted=900, used=100, held=0)
    )
    assert await store.settle_tokens("run_missing", hold.id, Usage()) is None


async def test_parallel_reservations_never_exceed_the_budget(store: Store) -> None:
    run = await a_run(store)
    holds = [a_hold() for _ in range(30)]
    reservations = await asyncio.gather(
        *(reserve(store, run.id, least=60, most=150, hold=hold) for hold in holds)
    )
    granted = {
        hold.id: r.granted for hold, r in zip(holds, reservations, strict=True) if r and r.granted
    }
    assert granted
    assert all(60 <= tokens <= 150 for tokens in granted.values())
    assert sum(granted.values()) <= BUDGET
    # Settled with less than was reserved: what they did not use is free again.
    await asyncio.gather(
        *(store.settle_tokens(run.id, hold_id, Usage(output_tokens=10)) for hold_id in granted)
    )
    after = await reserve(store, run.id, least=1, most=BUDGET)
    assert after == Reservation(granted=BUDGET - 10 * len(granted), used=10 * len(granted), held=0)


async def test_a_call_cancelled_at_any_point_leaves_the_store_usable(store: Store) -> None:
    # A runner that leaves mid-request cancels the request's task, wherever it is.
    run = await a_run(store)
    for turns in range(6):
        settling = asyncio.create_task(store.settle_tokens(run.id, None, Usage(output_tokens=1)))
        for _ in range(turns):
            await asyncio.sleep(0)
        settling.cancel()
        await asyncio.gather(settling, return_exceptions=True)
    reservation = await reserve(store, run.id, least=1, most=10)
    assert reservation is not None
    assert reservation.granted == 10
    assert reservation.used <= 6


async def test_a_hold_past_its_end_counts_as_used_and_is_held_no_more(store: Store) -> None:
    run = await a_run(store)
    lost = a_hold(minutes=1)
    assert await reserve(store, run.id, least=1, most=300, hold=lost) == (
        Reservation(granted=300, used=0, held=0)
    )
    # Before its end the hold stands; after it, its call may have been billed it all.
    assert await reserve(store, run.id, least=1, most=100) == (
        Reservation(granted=100, used=0, held=300)
    )
    later = utcnow() + timedelta(minutes=2)
    assert await reserve(store, run.id, least=1, most=BUDGET, now=later) == (
        Reservation(granted=600, used=300, held=100)
    )
    # A late reply of the lost call is not counted twice.
    settled = await store.settle_tokens(run.id, lost.id, Usage(input_tokens=50, output_tokens=5))
    assert settled is not None
    assert settled.usage.total_tokens == 300


async def test_a_restarted_replicas_holds_are_written_off_and_no_one_elses(store: Store) -> None:
    run = await a_run(store)
    mine, theirs = a_hold(REPLICA), a_hold("replica-b")
    await reserve(store, run.id, least=1, most=200, hold=mine)
    await reserve(store, run.id, least=1, most=300, hold=theirs)
    await store.write_off_holds(run.id, holder=REPLICA, now=utcnow())
    assert await reserve(store, run.id, least=1, most=BUDGET) == (
        Reservation(granted=500, used=200, held=300)
    )
    after = await store.get_run_unscoped(run.id)
    assert after is not None
    assert after.usage == Usage(output_tokens=200)
    # The other replica's call is still in flight, and settles as usual.
    settled = await store.settle_tokens(run.id, theirs.id, Usage(input_tokens=20, output_tokens=5))
    assert settled is not None
    assert settled.usage.total_tokens == 225
    await store.write_off_holds("run_missing", holder=REPLICA, now=utcnow())

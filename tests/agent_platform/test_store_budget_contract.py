"""The store contract of token reservations, which hold a run's budget against parallel calls."""

from __future__ import annotations

import asyncio

from agent_platform.domain import Reservation, Run, RunStatus, new_id, utcnow
from agent_platform.store import Store
from agent_runner.protocol import Usage

BUDGET = 1_000


async def a_run(store: Store) -> Run:
    run = Run(new_id("run"), new_id("agt"), new_id("usr"), "t", RunStatus.RUNNING, utcnow())
    created, _ = await store.create_run(run)
    return created


async def test_a_reservation_takes_what_is_free_up_to_what_is_asked(store: Store) -> None:
    run = await a_run(store)
    assert await store.reserve_tokens(run.id, budget=BUDGET, least=100, most=300) == (
        Reservation(granted=300, used=0, held=0)
    )
    await store.settle_tokens(run.id, 0, Usage(input_tokens=200, output_tokens=50))
    # 1000 - 250 used - 300 held: 450 free, less than asked, more than needed.
    assert await store.reserve_tokens(run.id, budget=BUDGET, least=100, most=600) == (
        Reservation(granted=450, used=250, held=300)
    )
    assert await store.reserve_tokens(run.id, budget=BUDGET, least=1, most=10) == (
        Reservation(granted=0, used=250, held=750)
    )
    assert await store.reserve_tokens("run_missing", budget=BUDGET, least=1, most=10) is None


async def test_settling_releases_the_reservation_and_counts_the_usage(store: Store) -> None:
    run = await a_run(store)
    first = await store.reserve_tokens(run.id, budget=BUDGET, least=1, most=800)
    assert first is not None
    assert first.granted == 800
    settled = await store.settle_tokens(run.id, 800, Usage(input_tokens=90, output_tokens=10))
    assert settled is not None
    assert settled.usage.total_tokens == 100
    assert await store.reserve_tokens(run.id, budget=BUDGET, least=900, most=2_000) == (
        Reservation(granted=900, used=100, held=0)
    )
    assert await store.settle_tokens("run_missing", 900, Usage()) is None


async def test_parallel_reservations_never_exceed_the_budget(store: Store) -> None:
    run = await a_run(store)
    reservations = await asyncio.gather(
        *(store.reserve_tokens(run.id, budget=BUDGET, least=60, most=150) for _ in range(30))
    )
    granted = [r.granted for r in reservations if r is not None and r.granted]
    assert granted
    assert all(60 <= tokens <= 150 for tokens in granted)
    assert sum(granted) <= BUDGET
    # Settled with less than was reserved: what they did not use is free again.
    await asyncio.gather(
        *(store.settle_tokens(run.id, tokens, Usage(output_tokens=10)) for tokens in granted)
    )
    after = await store.reserve_tokens(run.id, budget=BUDGET, least=1, most=BUDGET)
    assert after == Reservation(granted=BUDGET - 10 * len(granted), used=10 * len(granted), held=0)


async def test_a_call_cancelled_at_any_point_leaves_the_store_usable(store: Store) -> None:
    # A runner that leaves mid-request cancels the request's task, wherever it is.
    run = await a_run(store)
    for turns in range(6):
        settling = asyncio.create_task(store.settle_tokens(run.id, 0, Usage(output_tokens=1)))
        for _ in range(turns):
            await asyncio.sleep(0)
        settling.cancel()
        await asyncio.gather(settling, return_exceptions=True)
    reservation = await store.reserve_tokens(run.id, budget=BUDGET, least=1, most=10)
    assert reservation is not None
    assert reservation.granted == 10
    assert reservation.used <= 6

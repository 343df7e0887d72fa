"""A replica's side of run leases, on the embedded store: renew its own, finish the abandoned."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from agent_platform.domain import Lease, Run, RunStatus, RunTransition, new_id, utcnow
from servers.platform import (
    Caller,
    Served,
    create_agent,
    start_run,
    wait_for_status,
)

LEASE_SECONDS = 0.6


@pytest.fixture
def platform_settings() -> dict[str, Any]:
    return {"run_lease_seconds": LEASE_SECONDS}


async def leased_run(served: Served, caller: Caller, agent_id: str, lease: Lease) -> str:
    """A running run that another replica started and leased."""
    store = served.services.store
    run = Run(new_id("run"), agent_id, caller.user.id, "t", RunStatus.QUEUED, utcnow())
    await store.create_run(run)
    started = await store.transition_run(
        RunTransition(
            run.id, frozenset({RunStatus.QUEUED}), RunStatus.RUNNING, utcnow(), lease=lease
        )
    )
    assert started is not None
    return run.id


async def test_a_run_whose_lease_ran_out_is_finished_and_its_stream_ends(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    now = utcnow()
    abandoned = await leased_run(
        served, alice, agent["id"], Lease("gone", now - timedelta(seconds=1))
    )
    alive = await leased_run(served, alice, agent["id"], Lease("alive", now + timedelta(hours=1)))

    run = await wait_for_status(alice, abandoned, {"failed"})
    assert "replica" in run["error"]
    events = (await alice.http.get(f"/api/runs/{abandoned}/events")).json()["items"]
    assert [(e["type"], e["data"]["outcome"]) for e in events] == [("result", "failed")]
    # The sweep that finished one saw the other and left it: its replica renews its lease.
    assert (await alice.http.get(f"/api/runs/{alive}")).json()["status"] == "running"


async def test_a_replica_renews_the_lease_of_the_runs_it_started(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id = (await start_run(alice, agent["id"], "hang"))["id"]
    await wait_for_status(alice, run_id, {"running"})
    store = served.services.store

    first = await store.get_run_unscoped(run_id)
    assert first is not None
    assert first.lease is not None
    assert first.lease.holder == served.services.scheduler.replica_id

    # Past the end of its first term, the lease must have been renewed at least once.
    must_reach = first.lease.until + timedelta(seconds=LEASE_SECONDS)
    deadline = time.monotonic() + 10 * LEASE_SECONDS
    while True:
        current = await store.get_run_unscoped(run_id)
        assert current is not None
        assert current.lease is not None
        if current.lease.until > must_reach:
            break
        assert time.monotonic() < deadline, f"the lease stayed until {current.lease.until}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    # Renewed past its first term, the run is still the replica's and still running.
    assert (await alice.http.get(f"/api/runs/{run_id}")).json()["status"] == "running"
    await alice.http.post(f"/api/runs/{run_id}/cancel")
    await wait_for_status(alice, run_id, {"cancelled"})

"""The contract every executor passes: what the scheduler relies on when it starts, cancels and
finds runs again. Executors come from EXECUTOR_BACKENDS in tests/servers/executors.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from agent_platform.executors import Executor
from agent_runner.protocol import Outcome
from servers.executors import (
    EXECUTOR_BACKENDS,
    ExecutorBackend,
    Exits,
    new_launch,
)
from servers.waiting import eventually


@pytest.fixture(
    params=[pytest.param(name, marks=entry.marks) for name, entry in EXECUTOR_BACKENDS.items()]
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ExecutorBackend]:
    async with EXECUTOR_BACKENDS[request.param].open(request, tmp_path) as opened:
        yield opened


@pytest.fixture
def exits() -> Exits:
    return Exits()


@pytest.fixture
async def executor(backend: ExecutorBackend, exits: Exits) -> AsyncIterator[Executor]:
    running = backend.executor(exits)
    yield running
    await running.aclose()


@pytest.fixture
async def restarted(backend: ExecutorBackend, exits: Exits) -> AsyncIterator[Executor]:
    """The executor of a platform process started after another one went away."""
    running = backend.executor(exits)
    yield running
    await running.aclose()


async def test_a_sandbox_that_exits_is_reported_failed_with_its_exit_code(
    backend: ExecutorBackend, executor: Executor, exits: Exits
) -> None:
    run = new_launch()
    await executor.start(run)
    await backend.end_sandbox(run.run_id, exit_code=3)

    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.FAILED
    assert "exited with code 3" in ended.reason


async def test_a_cancelled_sandbox_is_reported_cancelled_once_and_stops(
    backend: ExecutorBackend, executor: Executor, exits: Exits
) -> None:
    run = new_launch()
    await executor.start(run)
    await backend.wait_running(run.run_id)

    await executor.cancel(run.run_id)

    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.CANCELLED
    await eventually(lambda: not backend.sandbox_running(run.run_id), "the sandbox to stop")
    assert len(exits.of(run.run_id)) == 1


async def test_a_sandbox_past_its_time_limit_is_reported_timed_out_and_stops(
    backend: ExecutorBackend, executor: Executor, exits: Exits
) -> None:
    run = new_launch(timeout_seconds=3)
    await executor.start(run)

    ended = await exits.wait_for(run.run_id, timeout=90)
    assert ended.outcome is Outcome.TIMED_OUT
    assert "3s" in ended.reason  # says which limit it passed
    await eventually(lambda: not backend.sandbox_running(run.run_id), "the sandbox to stop")


async def test_reconcile_reports_active_runs_without_a_sandbox_as_lost(
    backend: ExecutorBackend, restarted: Executor
) -> None:
    vanished, never_started = new_launch(), new_launch()
    await backend.leave_behind(vanished)
    await backend.remove_sandbox(vanished.run_id)

    found = await restarted.reconcile([vanished.run_id, never_started.run_id])

    assert sorted(found.lost) == sorted([vanished.run_id, never_started.run_id])
    assert list(found.adopted) == []
    assert list(found.orphans_removed) == []


async def test_reconcile_adopts_a_live_sandbox_and_reports_its_end(
    backend: ExecutorBackend, restarted: Executor, exits: Exits
) -> None:
    run = new_launch()
    await backend.leave_behind(run)

    found = await restarted.reconcile([run.run_id])
    assert list(found.adopted) == [run.run_id]
    assert list(found.lost) == []
    assert list(found.orphans_removed) == []
    assert backend.sandbox_running(run.run_id), "an adopted sandbox goes on running"

    await backend.end_sandbox(run.run_id, exit_code=3)
    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.FAILED


async def test_an_adopted_sandbox_can_be_cancelled(
    backend: ExecutorBackend, restarted: Executor, exits: Exits
) -> None:
    run = new_launch()
    await backend.leave_behind(run)
    await restarted.reconcile([run.run_id])

    await restarted.cancel(run.run_id)

    ended = await exits.wait_for(run.run_id)
    assert ended.outcome is Outcome.CANCELLED
    await eventually(lambda: not backend.sandbox_running(run.run_id), "the sandbox to stop")


async def test_reconcile_removes_the_sandboxes_of_runs_no_longer_active(
    backend: ExecutorBackend, restarted: Executor
) -> None:
    orphan = new_launch()
    await backend.leave_behind(orphan)

    found = await restarted.reconcile([])

    assert list(found.orphans_removed) == [orphan.run_id]
    assert list(found.lost) == []
    await eventually(lambda: not backend.sandbox_running(orphan.run_id), "the orphan to stop")


async def test_a_closed_executor_leaves_each_sandbox_reported_or_adoptable(
    backend: ExecutorBackend, executor: Executor, exits: Exits, restarted: Executor
) -> None:
    """Closing either stops a sandbox and reports it, or leaves it for the next process to
    adopt; a run never ends up with a sandbox no one watches nor a run no one finishes."""
    run = new_launch()
    await executor.start(run)
    await backend.wait_running(run.run_id)

    await executor.aclose()
    reported = list(exits.of(run.run_id))
    found = await restarted.reconcile([run.run_id])

    if reported:
        assert list(found.lost) == [run.run_id]
        assert not backend.sandbox_running(run.run_id)
    else:
        assert list(found.adopted) == [run.run_id]
        assert backend.sandbox_running(run.run_id)

"""The executor contract: how a run's sandbox is started, cancelled and found again.

The scheduler relies on every executor behaving as the `Executor` docstrings say;
tests/agent_platform/test_executor_contract.py holds each implementation to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from agent_runner.protocol import Outcome


@dataclass(frozen=True, slots=True, repr=False)
class Launch:
    """Everything a sandbox needs to start. The only place a run token travels."""

    run_id: str
    agent_id: str
    owner_id: str
    run_token: str
    timeout_seconds: int
    platform_url: str

    def __repr__(self) -> str:
        return f"Launch(run_id={self.run_id!r}, agent_id={self.agent_id!r}, run_token=<hidden>)"


@dataclass(frozen=True, slots=True)
class SandboxExit:
    """A sandbox ended. If its run is not finished yet, the platform finishes it with `outcome`."""

    run_id: str
    outcome: Outcome
    reason: str


OnExit = Callable[[SandboxExit], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What an executor found after a restart."""

    # Active runs that have no sandbox any more: the platform finishes them as failed.
    lost: Sequence[str] = field(default_factory=tuple)
    # Sandboxes of no active run, which the executor removed.
    orphans_removed: Sequence[str] = field(default_factory=tuple)
    # Active runs whose sandbox still runs: the executor watches it again as if it started it.
    adopted: Sequence[str] = field(default_factory=tuple)


class ExecutorError(Exception):
    """A sandbox could not be started; the message says why."""


class Executor(Protocol):
    async def start(self, launch: Launch) -> None:
        """Start a sandbox for the run; raise ExecutorError if it cannot start.

        From then on the sandbox's end is reported through `on_exit` exactly once: `failed`
        when the runner exits or dies (the reason says how), `timed_out` once the run passes
        `launch.timeout_seconds`.
        """

    async def cancel(self, run_id: str) -> None:
        """Stop the run's sandbox; its end is reported through `on_exit` as cancelled."""

    async def reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        """After a restart: adopt active runs' sandboxes, report lost ones, remove orphans.

        An adopted sandbox is watched, timed and cancellable as if this process started it.
        """

    async def aclose(self) -> None:
        """Stop watching sandboxes.

        Local sandboxes are stopped with the platform and reported through `on_exit`; cluster
        sandboxes keep running and `reconcile` finds them again. A crash stops nothing: a
        local runner then goes on too, and `reconcile` adopts it.
        """

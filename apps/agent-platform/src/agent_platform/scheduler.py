"""Turns queued runs into sandboxes, under a concurrency limit, and finishes them honestly.

The queue is the store: every replica takes queued runs oldest first, and a compare-and-set on
the status decides which one starts a run. Every terminal run gets a terminal RESULT event, so
that streams end, whether the runner reported it or the platform had to.

The replica that starts a run holds a lease on it and renews it while it lives; when a replica
dies, another one finds its runs' leases run out and finishes them, so that no run stays
`running` forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from agent_runner.protocol import Outcome, RunResult

from agent_platform.auth import hash_secret, new_secret
from agent_platform.bus import EventBus
from agent_platform.domain import (
    ACTIVE,
    Lease,
    Run,
    RunStatus,
    RunTransition,
    as_reported,
    status_of,
    utcnow,
)
from agent_platform.executors import Executor, ExecutorError, Launch, OnExit, SandboxExit
from agent_platform.metrics import Metrics
from agent_platform.store import Store

log = logging.getLogger(__name__)

# Other replicas may queue runs or free capacity without telling this one.
IDLE_RESCAN_SECONDS = 2.0
SANDBOX_LOST = "the run's sandbox was lost while the platform restarted"
REPLICA_STOPPED = "the platform replica running it stopped; start the task again"


class Scheduler:
    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        metrics: Metrics,
        executor_factory: Callable[[OnExit], Executor],
        max_concurrent_runs: int,
        public_url: str,
        replica_id: str,
        lease_seconds: float,
    ) -> None:
        self._store = store
        self._bus = bus
        self._metrics = metrics
        self._limit = max_concurrent_runs
        self._public_url = public_url
        self.executor = executor_factory(self.sandbox_exited)
        self._wake = asyncio.Event()
        # Runs whose sandbox this replica is starting, and whether a cancel came meanwhile.
        self._starting: dict[str, bool] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self.replica_id = replica_id
        self._lease = timedelta(seconds=lease_seconds)
        # Runs found without a sandbox at start while another replica's lease covered them, by
        # that lease: if it runs out unrenewed, its holder is gone and so was the sandbox.
        self._lost_under_lease: dict[str, Lease] = {}

    async def start(self) -> None:
        """Reconcile with the executor after a restart, then start taking queued runs."""
        running = await self._store.list_runs_in({RunStatus.RUNNING})
        now = utcnow()
        for run in running:
            # A process that starts has no gateway call in flight: the calls its previous life
            # held tokens for are lost, and may have been billed.
            await self._store.write_off_holds(run.id, holder=self.replica_id, now=now)
        found = await self.executor.reconcile([run.id for run in running])
        leases = {run.id: run.lease for run in running}
        for run_id in found.lost:
            lease = leases.get(run_id)
            if lease is not None and lease.holder != self.replica_id and not lease.expired(now):
                # Another replica, alive, may be starting its sandbox right now.
                self._lost_under_lease[run_id] = lease
                continue
            await self.finish(run_id, Outcome.FAILED, SANDBOX_LOST)
        adopted = set(found.adopted)
        for run in running:
            if run.id in adopted:
                await self._adopt(run)
        if found.orphans_removed:
            log.info("removed orphan sandboxes", extra={"runs": list(found.orphans_removed)})
        if found.adopted:
            log.info("adopted running sandboxes", extra={"runs": list(found.adopted)})
        self._loop_task = asyncio.create_task(self._loop())
        self._lease_task = asyncio.create_task(self._keep_leases())
        self.wake()

    async def _adopt(self, run: Run) -> None:
        """Hold the lease of a run whose sandbox outlived a platform process.

        A cluster Job outlives replicas: a replica replacing another in a rolling update takes
        over its runs before the old one stops renewing their leases. A local runner outlives
        a crash of its platform, which is the same replica when it starts again.
        """
        await self._store.transition_run(
            RunTransition(
                run_id=run.id,
                expected=frozenset({RunStatus.RUNNING}),
                status=RunStatus.RUNNING,
                at=run.started_at or utcnow(),
                lease=Lease(self.replica_id, utcnow() + self._lease),
            )
        )

    @property
    def started(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    async def aclose(self) -> None:
        for task in (self._loop_task, self._lease_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.executor.aclose()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_RESCAN_SECONDS)
            self._wake.clear()
            try:
                await self._fill()
            except Exception:
                log.exception("scheduling failed; retrying")

    async def _keep_leases(self) -> None:
        # Renewing three times per lease period survives two missed renewals.
        period = self._lease.total_seconds() / 3
        while True:
            try:
                await self._store.renew_leases(self.replica_id, utcnow() + self._lease)
                await self._finish_abandoned()
            except Exception:
                log.exception("keeping run leases failed; retrying")
            await asyncio.sleep(period)  # a period, not a wait for another task

    async def _finish_abandoned(self) -> None:
        """Finish the runs of replicas that stopped renewing their leases."""
        now = utcnow()
        for run in await self._store.list_expired_leases(now):
            lost = self._lost_under_lease.pop(run.id, None)
            finished = await self.finish(
                run.id,
                Outcome.FAILED,
                SANDBOX_LOST if lost is not None and lost == run.lease else REPLICA_STOPPED,
                frozenset({RunStatus.RUNNING}),
                lease_expired_by=now,
            )
            if finished is not None:
                holder = None if run.lease is None else run.lease.holder
                log.warning(
                    "finished the run of a lost replica",
                    extra={"run_id": run.id, "replica": holder},
                )
                # A sandbox that outlived its replica (a cluster Job) must not go on.
                await self.executor.cancel(run.id)

    async def _fill(self) -> None:
        running = await self._store.list_runs_in({RunStatus.RUNNING})
        free = self._limit - len(running)
        if free <= 0:
            return
        # One run at a time per agent: its runs share the workspace and the conversation, so a
        # second one waits, queued, for the first to end.
        busy = {run.agent_id for run in running}
        for run in await self._store.list_runs_in({RunStatus.QUEUED}):
            if run.agent_id in busy:
                continue
            busy.add(run.agent_id)
            await self._launch(run)
            free -= 1
            if free == 0:
                return

    async def _launch(self, run: Run) -> None:
        agent = await self._store.get_agent(run.owner_id, run.agent_id)
        if agent is None:
            await self.finish(run.id, Outcome.FAILED, "the run's agent no longer exists")
            return
        token = new_secret("run")
        now = utcnow()
        started = await self._store.transition_run(
            RunTransition(
                run_id=run.id,
                expected=frozenset({RunStatus.QUEUED}),
                status=RunStatus.RUNNING,
                at=now,
                run_token_hash=hash_secret(token),
                lease=Lease(self.replica_id, now + self._lease),
            )
        )
        if started is None:
            return  # cancelled meanwhile, or another replica took it
        launch = Launch(
            run_id=run.id,
            agent_id=run.agent_id,
            owner_id=run.owner_id,
            run_token=token,
            timeout_seconds=agent.limits.timeout_seconds,
            platform_url=self._public_url,
        )
        self._starting[run.id] = False
        try:
            await self.executor.start(launch)
        except ExecutorError as error:
            await self.finish(run.id, Outcome.FAILED, f"the sandbox did not start: {error}")
            return
        finally:
            cancelled_while_starting = self._starting.pop(run.id)
        self._metrics.runs_started.inc()
        log.info("run started", extra={"run_id": run.id, "agent_id": run.agent_id})
        if cancelled_while_starting:
            await self.executor.cancel(run.id)

    async def cancel(self, run: Run) -> None:
        """Cancel a queued run at once; ask the executor to stop a running one."""
        if run.status is RunStatus.QUEUED:
            expected = frozenset({RunStatus.QUEUED})
            if await self.finish(
                run.id, Outcome.CANCELLED, "cancelled before it started", expected
            ):
                return
        if run.id in self._starting:
            # Its sandbox is being started: cancel it as soon as it exists.
            self._starting[run.id] = True
            return
        current = await self._store.get_run_unscoped(run.id)
        if current is not None and current.status is RunStatus.RUNNING:
            await self.executor.cancel(run.id)

    async def sandbox_exited(self, exit: SandboxExit) -> None:
        await self.finish(exit.run_id, exit.outcome, exit.reason)

    async def complete(self, run_id: str, result: RunResult) -> Run | None:
        """Finish a run as its runner reported, with its usage and new conversation messages."""
        finished = await self._store.transition_run(as_reported(run_id, result, utcnow()))
        if finished is not None:
            self._finished(finished)
        return finished

    async def finish(
        self,
        run_id: str,
        outcome: Outcome,
        reason: str,
        expected: frozenset[RunStatus] = ACTIVE,
        *,
        lease_expired_by: datetime | None = None,
    ) -> Run | None:
        """Finish a run the runner could not report on; a no-op if it is finished already.

        A result its runner reported, stored but not yet applied, stands (`Store.finish_run`).
        """
        finished = await self._store.finish_run(
            RunTransition(
                run_id=run_id,
                expected=expected,
                status=status_of(outcome),
                at=utcnow(),
                error=reason,
                lease_expired_by=lease_expired_by,
            ),
            outcome,
        )
        if finished is None:
            return None
        run, result = finished
        self._bus.publish(run_id, [result])
        self._finished(run)
        return run

    def _finished(self, run: Run) -> None:
        self._metrics.runs_finished.labels(run.status.value).inc()
        log.info(
            "run finished", extra={"run_id": run.id, "status": run.status.value, "error": run.error}
        )
        self.wake()

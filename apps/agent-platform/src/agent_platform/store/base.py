"""The store contract: every operation the API, scheduler, gateway and executors need.

Every backend passes the same contract suites (tests/agent_platform/test_store_contract.py and
test_store_lease_contract.py). Methods that take an `owner_id` never return another owner's
objects: to them, those do not exist.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from agent_runner.protocol import Outcome, Usage

from agent_platform.domain import (
    Agent,
    ApiToken,
    Message,
    Reservation,
    Run,
    RunStatus,
    RunTransition,
    StoredEvent,
    TokenHold,
    TokenKind,
    User,
)


class StoreError(Exception):
    """The store cannot do what was asked; the message says why."""


class Store(Protocol):
    async def ping(self) -> None:
        """Raise if the store cannot serve requests (the readiness probe)."""

    async def aclose(self) -> None: ...

    # Users and their credentials.
    async def create_user(self, user: User) -> None:
        """Raise StoreError if a user with this id or name exists."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def find_user_by_name(self, name: str) -> User | None: ...

    async def list_users(self) -> list[User]: ...

    async def create_token(self, token: ApiToken) -> None: ...

    async def find_token(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, expired or not: the caller checks `expires_at`."""

    async def consume_token(self, token_hash: str, kind: TokenKind) -> ApiToken | None:
        """Delete and return a one-time token; of two concurrent callers only one gets it."""

    async def list_tokens(self, user_id: str) -> list[ApiToken]: ...

    async def delete_token(self, user_id: str, token_id: str) -> bool: ...

    # Agents.
    async def create_agent(self, agent: Agent) -> None: ...

    async def get_agent(self, owner_id: str, agent_id: str) -> Agent | None: ...

    async def list_agents(self, owner_id: str, *, limit: int = 100) -> list[Agent]:
        """Newest first."""

    async def update_agent(self, agent: Agent) -> bool:
        """Replace the agent with `agent.id` owned by `agent.owner_id`; False if there is none."""

    async def delete_agent(self, owner_id: str, agent_id: str) -> bool:
        """Delete the agent with its conversation, runs and their events."""

    # Runs.
    async def create_run(self, run: Run) -> tuple[Run, bool]:
        """Store a queued run; True if created.

        With an idempotency key already used by the same owner, store nothing and return the
        run created first, with False.
        """

    async def get_run(self, owner_id: str, run_id: str) -> Run | None: ...

    async def get_run_unscoped(self, run_id: str) -> Run | None:
        """For the platform's own machinery (scheduler, executors), never for a user request."""

    async def list_runs(
        self,
        owner_id: str,
        *,
        agent_id: str | None = None,
        statuses: Collection[RunStatus] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Newest first."""

    async def list_runs_in(
        self, statuses: Collection[RunStatus], *, limit: int = 1000
    ) -> list[Run]:
        """Runs of every owner in these statuses, oldest first: the scheduler's queue."""

    async def count_runs_in(self, statuses: Collection[RunStatus]) -> int: ...

    async def transition_run(self, change: RunTransition) -> Run | None:
        """Apply the transition if the run's status is in `change.expected`; None otherwise."""

    async def finish_run(
        self, change: RunTransition, outcome: Outcome
    ) -> tuple[Run, StoredEvent] | None:
        """`transition_run` to an end its runner did not report, with the run's result event.

        The event follows the run's last one, in the same write as the status: a finished run
        always has its result, whenever it is read, even if the platform stops right after.

        Only a runner's result event is stored before its run is finished, just before. So a
        running run whose last event is a result was reported and not yet finished: the
        platform stopped, or the runner exited, in between. That result stands: the run
        finishes `as_reported`, and that event is the one returned.
        """

    async def find_run_by_token(self, token_hash: str) -> Run | None: ...

    async def renew_leases(self, holder: str, until: datetime) -> list[str]:
        """Extend to `until` the lease of every running run `holder` holds; their ids."""

    async def list_expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        """Running runs whose lease ran out by `now`, oldest lease first."""

    async def reserve_tokens(
        self, run_id: str, hold: TokenHold, *, budget: int, least: int, most: int, now: datetime
    ) -> Reservation | None:
        """Set aside tokens of the run's budget for one gateway call; None if there is no run.

        As many as are free up to `most`, or none (`granted` 0) if fewer than `least` are. The
        run's usage and the tokens set aside for its calls never exceed `budget` together,
        however many calls reserve at once; under contention a backend may grant fewer than
        were free. Holds expired by `now` are written off first (see `write_off_holds`).
        """

    async def settle_tokens(self, run_id: str, hold_id: str | None, usage: Usage) -> Run | None:
        """Release a call's hold and add the usage it was billed, in one change.

        The gateway's record of usage; None if there is no such run. A hold written off
        meanwhile already counted all its tokens as used, so its usage is not added again.
        """

    async def write_off_holds(self, run_id: str, *, holder: str | None, now: datetime) -> None:
        """Count as used, and release, the run's holds expired by `now` or held by `holder`.

        Their output tokens are what the calls may have been billed at most.
        """

    # Events, seq-numbered per run.
    async def append_events(self, run_id: str, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        """Store events not stored yet, by (run_id, seq); return those newly stored, by seq."""

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events with seq > after, in seq order."""

    async def last_event_seq(self, run_id: str) -> int:
        """The highest stored seq of the run, 0 when there is none."""

    # The conversation an agent's next run continues from.
    async def get_conversation(self, owner_id: str, agent_id: str) -> list[Message]: ...

    async def append_conversation(
        self, owner_id: str, agent_id: str, messages: Sequence[Message]
    ) -> None: ...

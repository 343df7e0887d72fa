"""The platform's objects as plain data: users, tokens, agents, runs, events, conversations."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from agent_runner.protocol import EventType, Limits, Outcome, RunResult, Usage

# One Messages API message param (`{"role": ..., "content": ...}`).
Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    created_at: datetime
    is_admin: bool = False


class TokenKind(StrEnum):
    API = "api"  # a bearer token for scripts and the CLI
    SESSION = "session"  # a browser session, carried in an HttpOnly cookie
    LOGIN = "login"  # a one-time code in a login URL, exchanged for a session


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A credential of a user. Only the SHA-256 of the secret is ever stored."""

    id: str
    user_id: str
    name: str
    kind: TokenKind
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    owner_id: str
    name: str
    description: str
    system_prompt: str
    model: str
    allowed_tools: tuple[str, ...]
    limits: Limits
    created_at: datetime
    updated_at: datetime


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL: Final = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
)
ACTIVE: Final = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


def status_of(outcome: Outcome) -> RunStatus:
    """The terminal run status an outcome reported by a runner or an executor stands for."""
    return RunStatus(outcome.value)


@dataclass(frozen=True, slots=True)
class Lease:
    """Which replica looks after a running run, and until when unless it renews the lease.

    A run whose lease ran out lost its replica; another replica finishes it.
    """

    holder: str
    until: datetime

    def expired(self, now: datetime) -> bool:
        return self.until <= now


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    agent_id: str
    owner_id: str
    task: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    idempotency_key: str | None = None
    lease: Lease | None = None


def _larger(a: Usage, b: Usage) -> Usage:
    """Per counter, the larger of the two."""
    return Usage.model_validate({k: max(v, getattr(b, k)) for k, v in a.model_dump().items()})


@dataclass(frozen=True, slots=True)
class RunTransition:
    """A compare-and-set on a run's status, with what changes together with it.

    The store applies it only if the run's current status is in `expected`, atomically with the
    other fields: that is how two replicas can never both start, or both finish, one run.
    `applied_to` says how the run changes; the store writes that, the token hash and the
    messages.
    """

    run_id: str
    expected: frozenset[RunStatus]
    status: RunStatus
    at: datetime
    error: str | None = None
    # Set when a run starts: the hash of the run-scoped token handed to its sandbox.
    run_token_hash: str | None = None
    # Set when a run ends: usage reported by the runner; the store keeps, per counter, the
    # larger of this and what the gateway has recorded, since both count the same calls.
    usage: Usage | None = None
    # Set when a run ends: messages appended to the agent's conversation.
    new_messages: tuple[Message, ...] = ()
    # Set to hand the run to a replica, which renews the lease while it looks after the run.
    lease: Lease | None = None
    # Set to apply the transition only if the run has no lease or it ran out by this time: how
    # a surviving replica finishes a run whose replica died, and never one that is alive.
    lease_expired_by: datetime | None = None

    def applied_to(self, run: Run) -> Run | None:
        """The run as this transition leaves it; None if the transition does not apply to it."""
        if run.status not in self.expected:
            return None
        if self.lease_expired_by is not None and not (
            run.lease is None or run.lease.expired(self.lease_expired_by)
        ):
            return None
        return replace(
            run,
            status=self.status,
            started_at=self.at if self.status is RunStatus.RUNNING else run.started_at,
            finished_at=self.at if self.status in TERMINAL else run.finished_at,
            error=self.error,
            usage=run.usage if self.usage is None else _larger(run.usage, self.usage),
            lease=run.lease if self.lease is None else self.lease,
        )


def as_reported(run_id: str, result: RunResult, at: datetime) -> RunTransition:
    """Finishing a running run as its runner's result says: outcome, usage, new messages."""
    return RunTransition(
        run_id=run_id,
        expected=frozenset({RunStatus.RUNNING}),
        status=status_of(result.outcome),
        at=at,
        error=result.error,
        usage=result.usage,
        new_messages=tuple(result.new_messages),
    )


def finishing(
    change: RunTransition, last: StoredEvent | None
) -> tuple[RunTransition, StoredEvent | None]:
    """How `Store.finish_run` finishes a run whose last stored event is `last`.

    As `change` says; or, when `last` is its runner's result, stored and not yet applied, as
    that result says: then `last` comes back too, as the run's result.
    """
    if last is None or last.type != EventType.RESULT:
        return change, None
    return as_reported(change.run_id, RunResult.model_validate(last.data), change.at), last


@dataclass(frozen=True, slots=True)
class Reservation:
    """What a run's token budget set aside for one call to Claude, and what it held already.

    The gateway reserves a call's most expensive outcome before forwarding it and settles the
    reservation with the usage of the reply, so calls in flight together cannot overrun the
    budget: what is used and what is set aside never exceed it.
    """

    granted: int  # tokens set aside for this call; 0 when fewer than it needs were free
    used: int  # the run's recorded usage, in tokens
    held: int  # tokens set aside for the run's other calls in flight


@dataclass(frozen=True)
class TokenHold:
    """Who sets a run's tokens aside for one gateway call, and until when they count as held.

    A call that outlives `until` was lost with the replica serving it (the gateway ends every
    call before then): the reply's usage will never be settled, and the API may have billed it
    all, so its tokens count as used. The same holds for the holds of a replica that starts
    again, since a fresh process has no call in flight.
    """

    id: str
    holder: str  # the replica serving the call
    until: datetime


@dataclass(frozen=True, slots=True)
class StoredEvent:
    run_id: str
    seq: int
    type: str
    data: dict[str, Any]
    time: datetime


def result_event(run: Run, outcome: Outcome, seq: int, at: datetime) -> StoredEvent:
    """The result event of a run the platform finished because its runner could not report one."""
    result = RunResult(outcome=outcome, error=run.error, usage=run.usage)
    return StoredEvent(run.id, seq, EventType.RESULT.value, result.model_dump(mode="json"), at)


def new_id(prefix: str) -> str:
    """A random id that says what it names: `agt_…`, `run_…`, `usr_…`."""
    return f"{prefix}_{secrets.token_hex(10)}"


def utcnow() -> datetime:
    return datetime.now(UTC)

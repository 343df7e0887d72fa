"""In-process fan-out of newly stored events to the subscribers of a run.

The bus only wakes subscribers early: the store stays the source of truth, and a subscriber that
falls behind, or misses what another replica stored, reads the store again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence

from agent_platform.domain import StoredEvent

# Past this many unread events a subscriber stops buffering and reads the store instead.
MAX_PENDING = 5000


class Subscription:
    def __init__(self) -> None:
        self._pending: list[StoredEvent] = []
        self._overflowed = False
        self._ready = asyncio.Event()

    def _offer(self, events: Sequence[StoredEvent]) -> None:
        if self._overflowed or len(self._pending) + len(events) > MAX_PENDING:
            self._overflowed = True
            self._pending.clear()
        else:
            self._pending.extend(events)
        self._ready.set()

    async def next(self, wait_seconds: float) -> list[StoredEvent]:
        """Events published since the last call; empty when the store must be read instead."""
        if not self._pending and not self._overflowed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_seconds):  # no task per wait, unlike wait_for
                    await self._ready.wait()
        events, self._pending = self._pending, []
        self._overflowed = False
        return events


class EventBus:
    def __init__(self) -> None:
        self._subscribers: defaultdict[str, set[Subscription]] = defaultdict(set)

    @contextlib.contextmanager
    def subscribe(self, run_id: str) -> Iterator[Subscription]:
        subscription = Subscription()
        self._subscribers[run_id].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers[run_id]
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[run_id]

    def publish(self, run_id: str, events: Sequence[StoredEvent]) -> None:
        """Hand events that are already stored to the run's subscribers."""
        if events:
            for subscription in self._subscribers.get(run_id, ()):
                subscription._offer(events)

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

"""A run's events as one ordered stream: the stored ones after a seq, then the live ones.

Each event is delivered exactly once and in seq order, whether it comes from the store or the
bus; the stream ends after the terminal RESULT event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from agent_runner.protocol import EventType

from agent_platform.bus import EventBus
from agent_platform.domain import StoredEvent
from agent_platform.store import Store

PAGE = 500


async def follow(
    store: Store, bus: EventBus, run_id: str, *, after: int = 0, poll_seconds: float = 1.0
) -> AsyncGenerator[StoredEvent, None]:
    # Subscribe before reading the store, so nothing stored in between is missed.
    with bus.subscribe(run_id) as subscription:
        last = after
        while True:
            page = await store.list_events(run_id, after=last, limit=PAGE)
            for event in page:
                yield event
                last = event.seq
                if event.type == EventType.RESULT:
                    return
            if len(page) == PAGE:
                continue
            if not page:
                run = await store.get_run_unscoped(run_id)
                if run is None or (run.status.is_terminal and await _drained(store, run_id, last)):
                    return
            while live := await subscription.next(poll_seconds):
                in_order = True
                for event in live:
                    if event.seq <= last:
                        continue
                    if event.seq != last + 1:
                        in_order = False
                        break
                    yield event
                    last = event.seq
                    if event.type == EventType.RESULT:
                        return
                if not in_order:
                    break


async def _drained(store: Store, run_id: str, last: int) -> bool:
    return await store.last_event_seq(run_id) <= last

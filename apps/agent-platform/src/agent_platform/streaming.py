"""A run's events as one ordered stream: the stored ones after a seq, then the live ones.

Each event is delivered exactly once and in seq order, whether it comes from the store or the
bus; the stream ends after the terminal RESULT event. Events come in lists, as they were
stored together, so that a busy stream costs one write per batch rather than per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from agent_runner.protocol import EventType

from agent_platform.bus import EventBus
from agent_platform.domain import StoredEvent
from agent_platform.store import Store

PAGE = 500


def _through_result(events: list[StoredEvent]) -> tuple[list[StoredEvent], bool]:
    """The events up to and including the terminal one, and whether it was there."""
    for position, event in enumerate(events):
        if event.type == EventType.RESULT:
            return events[: position + 1], True
    return events, False


async def follow(
    store: Store, bus: EventBus, run_id: str, *, after: int = 0, poll_seconds: float = 1.0
) -> AsyncGenerator[list[StoredEvent], None]:
    # Subscribe before reading the store, so nothing stored in between is missed.
    with bus.subscribe(run_id) as subscription:
        last = after
        while True:
            page = await store.list_events(run_id, after=last, limit=PAGE)
            if page:
                events, ended = _through_result(page)
                yield events
                last = events[-1].seq
                if ended:
                    return
                if len(page) == PAGE:
                    continue
            else:
                run = await store.get_run_unscoped(run_id)
                if run is None or (run.status.is_terminal and await _drained(store, run_id, last)):
                    return
            while live := await subscription.next(poll_seconds):
                fresh = [event for event in live if event.seq > last]
                if not fresh:
                    continue
                in_order = [e.seq for e in fresh] == list(range(last + 1, last + 1 + len(fresh)))
                if not in_order:
                    break  # a gap: what is missing is in the store
                events, ended = _through_result(fresh)
                yield events
                last = events[-1].seq
                if ended:
                    return


async def _drained(store: Store, run_id: str, last: int) -> bool:
    return await store.last_event_seq(run_id) <= last


async def until_stopped(
    batches: AsyncGenerator[list[StoredEvent], None],
    stopping: asyncio.Event,
    *,
    idle_seconds: float | None = None,
) -> AsyncGenerator[list[StoredEvent] | None, None]:
    """`batches` until they end or `stopping` is set; None after each `idle_seconds` idle."""
    stop = asyncio.ensure_future(stopping.wait())
    pending: asyncio.Task[list[StoredEvent]] | None = None
    try:
        while not stopping.is_set():
            pending = pending or asyncio.ensure_future(anext(batches))
            done, _ = await asyncio.wait(
                {pending, stop}, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if pending in done:
                try:
                    events = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield events
            elif not done:
                yield None
    finally:
        stop.cancel()
        if pending is not None:
            pending.cancel()
            await asyncio.wait({pending})
        await batches.aclose()

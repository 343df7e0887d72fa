"""Events leave the runner in order, batched, and survive the platform being away.

`emit` never blocks and never fails: events are numbered and buffered in memory. A background
task sends what is buffered in batches and drops only what the platform acknowledged, so a
platform restart delays events but loses none; the platform ignores a re-sent sequence number,
so sending twice after a lost acknowledgement is harmless.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import httpx

from agent_runner.platform_client import PlatformError
from agent_runner.protocol import MAX_EVENTS_PER_BATCH, BatchAck, Event, EventBatch, EventType
from agent_runner.unicode_text import valid_unicode_data

Send = Callable[[EventBatch], Awaitable[BatchAck]]

_FIRST_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 2.0


class Reporter:
    def __init__(self, send: Send, *, delivered: int = 0) -> None:
        """`delivered`: events already acknowledged (the announcement), numbered from 1."""
        self._send = send
        self._pending: list[Event] = []
        self._seq = delivered
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._rejected: str | None = None
        self._task: asyncio.Task[None] | None = None

    def emit(self, event_type: EventType, data: dict[str, Any]) -> None:
        self._seq += 1
        self._pending.append(
            # Text the protocol refuses (a file name that is not UTF-8, say) is mended, not
            # raised: emitting never fails.
            Event(
                seq=self._seq,
                type=event_type,
                data=valid_unicode_data(data),
                time=datetime.now(UTC),
            )
        )
        self._drained.clear()
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._deliver())

    async def _deliver(self) -> None:
        backoff = _FIRST_BACKOFF
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and self._rejected is None:
                batch = EventBatch(events=self._pending[:MAX_EVENTS_PER_BATCH])
                try:
                    ack = await self._send(batch)
                except (httpx.TransportError, httpx.HTTPStatusError):
                    # The platform is away: keep everything and try again a little later,
                    # or sooner when new events arrive.
                    try:
                        async with asyncio.timeout(backoff):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                except PlatformError as exc:
                    self._rejected = str(exc)
                    print(f"agent-runner: events are no longer accepted: {exc}", file=sys.stderr)
                    break
                remaining = [e for e in self._pending if e.seq > ack.acked_seq]
                if len(remaining) == len(self._pending):
                    # Nothing was taken: back off rather than resend in a tight loop.
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                backoff = _FIRST_BACKOFF
                self._pending = remaining
            if not self._pending or self._rejected is not None:
                self._drained.set()

    async def close(self, within: float) -> bool:
        """Wait until every event is acknowledged (or refused); False if time ran out."""
        try:
            async with asyncio.timeout(within):
                await self._drained.wait()
        except TimeoutError:
            return False
        finally:
            if self._task is not None:
                self._task.cancel()
        return not self._pending

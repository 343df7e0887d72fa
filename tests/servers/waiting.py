"""Waiting on a condition with a deadline: how tests synchronise, never by sleeping.

`wait_for` polls from plain code. `eventually` polls from a coroutine and checks the condition
in a thread, so that a slow check (a process, a cluster query) does not stall the event loop
the code under test runs on. Both fail with an AssertionError naming what was awaited.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Generous: a deadline only matters when the awaited thing never comes, and the machine the
# tests run on may be busy.
WAIT_SECONDS = 60.0


def wait_for(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = 0.05,
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


async def eventually(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = 0.1,
) -> None:
    """Poll `condition` in a thread until it holds; fail naming `what` after `timeout` s."""
    try:
        async with asyncio.timeout(timeout):
            while not await asyncio.to_thread(condition):
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from None

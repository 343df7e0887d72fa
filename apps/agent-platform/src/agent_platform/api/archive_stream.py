"""Sending a workspace archive, or one file of it, in chunks while the archive stays open.

The archive is opened (and, for a file, the file found) before the response starts, so a
missing or damaged one still gets its status code; the chunks follow, read off the event loop,
and the archive is closed when the last is sent or the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import IO

from agent_platform.workspaces import CHUNK_BYTES


async def chunks(opened: AsyncExitStack, reader: IO[bytes], first: bytes) -> AsyncIterator[bytes]:
    """`first`, then the rest of `reader`; `opened` is closed at the end however it ends."""
    try:
        if first:
            yield first
        while chunk := await asyncio.to_thread(reader.read, CHUNK_BYTES):
            yield chunk
    finally:
        await opened.aclose()

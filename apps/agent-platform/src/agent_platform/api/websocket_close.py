"""Closing a WebSocket with a code and a reason that always fits in the close frame.

A close frame is a control frame of at most 125 bytes, two of them the code (RFC 6455 5.5), so a
reason longer than 123 bytes makes the protocol library fail and the socket drop with no code at
all; a caller would then not know why it was refused.
"""

from __future__ import annotations

from typing import Final

from fastapi import WebSocket

MAX_REASON_BYTES: Final = 123


def close_reason(reason: str) -> str:
    """`reason` cut to the frame's limit, on a character boundary."""
    return reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.close(code, close_reason(reason))

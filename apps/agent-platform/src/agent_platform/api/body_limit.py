"""Refuse request bodies above a size before they are read into memory.

Each family of routes has its own limit and says no in the shape its callers read: the API's
JSON error, the runner's workspace answer, the Anthropic error the SDK raises.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """The largest body the routes whose path matches `path` take, and their refusal."""

    path: re.Pattern[str]
    max_bytes: int
    # The 413 answer, given the limit.
    refusal: Callable[[int], Response]


def limit_for(limits: Sequence[RouteLimit], path: str) -> RouteLimit:
    """The first limit whose pattern matches the path; the last one should match any path."""
    for limit in limits:
        if limit.path.match(path):
            return limit
    return limits[-1]


class BodyLimit:
    def __init__(self, app: ASGIApp, limits: Sequence[RouteLimit]) -> None:
        self._app = app
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        limit = limit_for(self._limits, scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit.max_bytes:
            await limit.refusal(limit.max_bytes)(scope, receive, send)
            return
        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    refused = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the app's answer to the aborted read is replaced by a 413
            started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):
            await self._app(scope, limited_receive, guarded_send)
        if refused and not started:
            await limit.refusal(limit.max_bytes)(scope, receive, send)

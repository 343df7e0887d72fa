"""A run's events: a page of stored ones, or a live stream (SSE or WebSocket) resumable by seq."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Final

from agent_runner.protocol import MAX_SEQ
from fastapi import APIRouter, Header, HTTPException, Query, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator
from starlette.websockets import WebSocketDisconnect

from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.api.runs import RUN_NOT_FOUND, owned_run
from agent_platform.api.schemas import EventList, EventOut
from agent_platform.api.websocket_close import close
from agent_platform.auth import CsrfRejected, IdentityUnavailable, Unauthenticated, identify
from agent_platform.domain import StoredEvent
from agent_platform.streaming import follow, until_stopped

router = APIRouter(tags=["events"])
# A comment line on an idle SSE stream, so that proxies keep it open.
KEEPALIVE_SECONDS = 15.0
AFTER_HELP: Final = "Only events with a greater seq"
# A WebSocket refusal of a malformed request: 4000 plus the HTTP status, like the others here.
WS_BAD_REQUEST: Final = 4400


class BadSeq(ValueError):
    """A resume point that is not a seq; the message says what one looks like."""


def parse_seq(raw: str, name: str) -> int:
    """A seq written in ASCII digits, within what the stores hold; BadSeq otherwise.

    `str.isdigit` and `int` accept other scripts' digits and more ("²"), and an unbounded number
    overflows the stores' 64-bit integers: both are refused here, before any query.
    """
    digits = raw.lstrip("0") or "0"
    # The length before `int`, which raises ValueError on numbers of over 4,300 digits.
    if (
        raw.isascii()
        and raw.isdigit()
        and len(digits) <= len(str(MAX_SEQ))
        and int(digits) <= MAX_SEQ
    ):
        return int(digits)
    raise BadSeq(f"{name} must be a seq: ASCII digits, from 0 to {MAX_SEQ}")


def _after_query(raw: object) -> object:
    return parse_seq(raw, "after") if isinstance(raw, str) else raw


After = Annotated[
    int, BeforeValidator(_after_query), Query(ge=0, le=MAX_SEQ, description=AFTER_HELP)
]


def _json(event: StoredEvent) -> str:
    return EventOut.json_of(event)


@router.get("/api/runs/{run_id}/events", responses=RUN_NOT_FOUND)
async def list_events(
    run_id: str,
    user: UserDep,
    services: ServicesDep,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> EventList:
    """Stored events of a run, in seq order."""
    await owned_run(services, user, run_id)
    events = await services.store.list_events(run_id, after=after, limit=limit)
    return EventList(items=[EventOut.of(e) for e in events])


@router.get(
    "/api/runs/{run_id}/events/stream",
    response_class=StreamingResponse,
    responses={**RUN_NOT_FOUND, 200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    run_id: str,
    user: UserDep,
    services: ServicesDep,
    after: Annotated[str | None, Query(description=f"{AFTER_HELP}: 0 to {MAX_SEQ}")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events: each event's `id` is its seq; reconnecting resumes after it.

    A malformed `after` or `Last-Event-ID` is refused with 400 before the stream starts.
    """
    await owned_run(services, user, run_id)
    try:
        resume = max(
            parse_seq(after, "after") if after is not None else 0,
            parse_seq(last_event_id, "Last-Event-ID") if last_event_id is not None else 0,
        )
    except BadSeq as error:
        raise HTTPException(400, str(error)) from error

    async def frames() -> AsyncIterator[str]:
        services.metrics.subscribers.inc()
        batches = follow(services.store, services.bus, run_id, after=resume)
        try:
            async for events in until_stopped(
                batches, services.stopping, idle_seconds=KEEPALIVE_SECONDS
            ):
                if events is None:
                    yield ": keepalive\n\n"
                else:
                    yield "".join(
                        f"id: {e.seq}\nevent: {e.type}\ndata: {_json(e)}\n\n" for e in events
                    )
        finally:
            services.metrics.subscribers.dec()

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.websocket("/api/runs/{run_id}/events/ws")
async def events_websocket(
    websocket: WebSocket, run_id: str, after: Annotated[str | None, Query()] = None
) -> None:
    """The same stream over a WebSocket: one JSON event per message, closed after the result.

    When the server stops, the socket closes with 1012: reconnect with `after` to resume.
    Refusals close the socket with 4400 (a malformed `after`), 4401 (no valid credential),
    4403 (cross-origin), 4404, or 1013 when the credential cannot be checked now; the close
    reason says why.
    """
    services = websocket.app.state.services
    await websocket.accept()
    try:
        user = await identify(services.identity_sources, websocket)
    except Unauthenticated:
        await close(websocket, 4401, "a valid credential is required")
        return
    except CsrfRejected:
        await close(websocket, 4403, "cross-origin WebSocket refused")
        return
    except IdentityUnavailable:
        await close(websocket, 1013, "the credential cannot be checked now; try again shortly")
        return
    try:
        resume = 0 if after is None else parse_seq(after, "after")
    except BadSeq as error:
        await close(websocket, WS_BAD_REQUEST, str(error))
        return
    if await services.store.get_run(user.id, run_id) is None:
        await close(websocket, 4404, "you have no run with this id")
        return
    services.metrics.subscribers.inc()
    batches = follow(services.store, services.bus, run_id, after=resume)
    try:
        async for events in until_stopped(batches, services.stopping):
            for event in events or ():
                await websocket.send_text(_json(event))
        if services.stopping.is_set():
            await close(websocket, 1012, "the server is restarting; reconnect to resume")
        else:
            await close(websocket, 1000, "the run has finished")
    except WebSocketDisconnect:
        pass
    finally:
        services.metrics.subscribers.dec()

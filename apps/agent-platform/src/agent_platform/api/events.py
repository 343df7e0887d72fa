"""A run's events: a page of stored ones, or a live stream (SSE or WebSocket) resumable by seq."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, WebSocket
from fastapi.responses import StreamingResponse
from starlette.websockets import WebSocketDisconnect

from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.api.runs import RUN_NOT_FOUND, owned_run
from agent_platform.api.schemas import EventList, EventOut
from agent_platform.auth import CsrfRejected, IdentityUnavailable, Unauthenticated, identify
from agent_platform.domain import StoredEvent
from agent_platform.streaming import follow, until_stopped

router = APIRouter(tags=["events"])
# A comment line on an idle SSE stream, so that proxies keep it open.
KEEPALIVE_SECONDS = 15.0
After = Annotated[int, Query(ge=0, description="Only events with a greater seq")]


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
    after: After = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Server-sent events: each event's `id` is its seq; reconnecting resumes after it."""
    await owned_run(services, user, run_id)
    if last_event_id is not None:
        if not last_event_id.isdigit():
            raise HTTPException(422, "Last-Event-ID must be the seq of the last event received")
        after = max(after, int(last_event_id))

    async def frames() -> AsyncIterator[str]:
        services.metrics.subscribers.inc()
        batches = follow(services.store, services.bus, run_id, after=after)
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
async def events_websocket(websocket: WebSocket, run_id: str, after: After = 0) -> None:
    """The same stream over a WebSocket: one JSON event per message, closed after the result.

    When the server stops, the socket closes with 1012: reconnect with `after` to resume.
    Refusals close the socket with 4401 (no valid credential), 4403 (cross-origin), 4404, or
    1013 when the credential cannot be checked now.
    """
    services = websocket.app.state.services
    await websocket.accept()
    try:
        user = await identify(services.identity_sources, websocket)
    except Unauthenticated:
        await websocket.close(4401, "a valid credential is required")
        return
    except CsrfRejected:
        await websocket.close(4403, "cross-origin WebSocket refused")
        return
    except IdentityUnavailable:
        await websocket.close(1013, "the credential cannot be checked now; try again shortly")
        return
    if await services.store.get_run(user.id, run_id) is None:
        await websocket.close(4404, f"you have no run {run_id}")
        return
    services.metrics.subscribers.inc()
    batches = follow(services.store, services.bus, run_id, after=after)
    try:
        async for events in until_stopped(batches, services.stopping):
            for event in events or ():
                await websocket.send_text(_json(event))
        if services.stopping.is_set():
            await websocket.close(1012, "the server is restarting; reconnect to resume")
        else:
            await websocket.close(1000, "the run has finished")
    except WebSocketDisconnect:
        pass
    finally:
        services.metrics.subscribers.dec()

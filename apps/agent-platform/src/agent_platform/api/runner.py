"""What a runner calls with its run-scoped token: its assignment, and its events."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from agent_runner import protocol
from agent_runner.protocol import Assignment, BatchAck, EventBatch
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from agent_platform.api.deps import PathRunDep, ReportingPathRunDep, ServicesDep
from agent_platform.api.schemas import Responses
from agent_platform.ingestion import BatchRejected, ingest


class _EventBatchRequest(Request):
    """A post of events, whose JSON body is read straight into an `EventBatch`.

    FastAPI decodes a body into Python objects and then validates those: twice the work of
    pydantic reading the JSON text itself, on the route every event arrives by. `json()` returns
    the model, which FastAPI's validation of the body passes as it is. A body that is not a
    valid batch is returned decoded, for FastAPI to report what is wrong with it as with any
    other body.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json: Any = EventBatch.model_validate_json(body)
            except ValidationError:
                self._json = json.loads(body)
        return self._json


class _EventBatchRoute(APIRoute):
    """The events route, whose requests are `_EventBatchRequest`s."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_batch(request: Request) -> Response:
            return await handle(_EventBatchRequest(request.scope, request.receive))

        return handle_batch


router = APIRouter(tags=["runner"])
TOKEN_REFUSED: Responses = {401: {"description": "the run token is unknown or not this run's"}}


@router.get(protocol.ASSIGNMENT_PATH, responses=TOKEN_REFUSED)
async def assignment(run: PathRunDep, services: ServicesDep) -> Assignment:
    """The task and everything needed to pursue it."""
    agent = await services.store.get_agent(run.owner_id, run.agent_id)
    if agent is None:
        raise HTTPException(404, f"the agent of run {run.id} no longer exists")
    return Assignment(
        run_id=run.id,
        agent_id=agent.id,
        task=run.task,
        model=agent.model,
        system_prompt=agent.system_prompt,
        allowed_tools=list(agent.allowed_tools),
        limits=agent.limits,
        conversation=await services.store.get_conversation(run.owner_id, agent.id),
    )


async def report_events(
    batch: EventBatch, run: ReportingPathRunDep, services: ServicesDep
) -> Response:
    """Store a batch of events; re-sending stored ones is harmless. A RESULT ends the run."""
    try:
        ack = await ingest(
            store=services.store,
            bus=services.bus,
            scheduler=services.scheduler,
            metrics=services.metrics,
            run=run,
            batch=batch,
        )
    except BatchRejected as error:
        raise HTTPException(error.status, str(error)) from None
    # Rendered here: the busiest route need not have its answer validated again on the way out.
    return Response(ack.model_dump_json(), media_type="application/json")


router.add_api_route(
    protocol.EVENTS_PATH,
    report_events,
    methods=["POST"],
    response_model=BatchAck,
    responses={**TOKEN_REFUSED, 409: {"description": "events are missing, or the run is over"}},
    route_class_override=_EventBatchRoute,
)

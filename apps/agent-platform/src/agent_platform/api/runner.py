"""What a runner calls with its run-scoped token: its assignment, and its events."""

from __future__ import annotations

from agent_runner import protocol
from agent_runner.protocol import Assignment, BatchAck, EventBatch
from fastapi import APIRouter, HTTPException

from agent_platform.api.deps import LiveRunDep, ReportingRunDep, ServicesDep
from agent_platform.api.schemas import Responses
from agent_platform.domain import Run
from agent_platform.ingestion import BatchRejected, ingest

router = APIRouter(tags=["runner"])
TOKEN_REFUSED: Responses = {401: {"description": "the run token is unknown or not this run's"}}


def _same_run(run: Run, run_id: str) -> None:
    if run.id != run_id:
        raise HTTPException(401, "this run token belongs to another run")


@router.get(protocol.ASSIGNMENT_PATH, responses=TOKEN_REFUSED)
async def assignment(run_id: str, run: LiveRunDep, services: ServicesDep) -> Assignment:
    """The task and everything needed to pursue it."""
    _same_run(run, run_id)
    agent = await services.store.get_agent(run.owner_id, run.agent_id)
    if agent is None:
        raise HTTPException(404, f"the agent of run {run_id} no longer exists")
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


@router.post(
    protocol.EVENTS_PATH,
    responses={**TOKEN_REFUSED, 409: {"description": "events are missing, or the run is over"}},
)
async def report_events(
    run_id: str, batch: EventBatch, run: ReportingRunDep, services: ServicesDep
) -> BatchAck:
    """Store a batch of events; re-sending stored ones is harmless. A RESULT ends the run."""
    _same_run(run, run_id)
    try:
        return await ingest(
            store=services.store,
            bus=services.bus,
            scheduler=services.scheduler,
            metrics=services.metrics,
            run=run,
            batch=batch,
        )
    except BatchRejected as error:
        raise HTTPException(error.status, str(error)) from None

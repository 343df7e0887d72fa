"""Runs: one task given to an agent, queued, executed in a sandbox, finished."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response

from agent_platform.api.agents import NOT_FOUND, owned_agent
from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.api.schemas import Responses, RunCreate, RunList, RunOut
from agent_platform.domain import Run, RunStatus, User, new_id, utcnow
from agent_platform.services import Services

router = APIRouter(tags=["runs"])
RUN_NOT_FOUND: Responses = {404: {"description": "no such run of yours"}}
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat a request with the same key to get the run it created, not a new one",
    ),
]


async def owned_run(services: Services, user: User, run_id: str) -> Run:
    run = await services.store.get_run(user.id, run_id)
    if run is None:
        raise HTTPException(404, f"you have no run {run_id}")
    return run


@router.post(
    "/api/agents/{agent_id}/runs",
    status_code=201,
    responses={
        **NOT_FOUND,
        200: {"description": "the run this Idempotency-Key created earlier", "model": RunOut},
        409: {"description": "the Idempotency-Key was used for a different request"},
    },
)
async def start_run(
    agent_id: str,
    body: RunCreate,
    user: UserDep,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> RunOut:
    """Queue a task for the agent; it starts as soon as a slot is free."""
    await owned_agent(services, user, agent_id)
    run, created = await services.store.create_run(
        Run(
            id=new_id("run"),
            agent_id=agent_id,
            owner_id=user.id,
            task=body.task,
            status=RunStatus.QUEUED,
            created_at=utcnow(),
            idempotency_key=idempotency_key,
        )
    )
    if not created:
        if (run.agent_id, run.task) != (agent_id, body.task):
            raise HTTPException(
                409,
                "this Idempotency-Key was already used to start a different run; "
                "use a new key for a new request",
            )
        response.status_code = 200
        return RunOut.of(run)
    services.scheduler.wake()
    return RunOut.of(run)


@router.get("/api/agents/{agent_id}/runs", responses=NOT_FOUND)
async def list_agent_runs(
    agent_id: str,
    user: UserDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RunList:
    await owned_agent(services, user, agent_id)
    runs = await services.store.list_runs(user.id, agent_id=agent_id, limit=limit)
    return RunList(items=[RunOut.of(r) for r in runs])


@router.get("/api/runs")
async def list_runs(
    user: UserDep,
    services: ServicesDep,
    status: Annotated[list[RunStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RunList:
    """Your runs, newest first, optionally only those in the given statuses."""
    runs = await services.store.list_runs(user.id, statuses=status, limit=limit)
    return RunList(items=[RunOut.of(r) for r in runs])


@router.get("/api/runs/{run_id}", responses=RUN_NOT_FOUND)
async def get_run(run_id: str, user: UserDep, services: ServicesDep) -> RunOut:
    return RunOut.of(await owned_run(services, user, run_id))


@router.post("/api/runs/{run_id}/cancel", status_code=202, responses=RUN_NOT_FOUND)
async def cancel_run(run_id: str, user: UserDep, services: ServicesDep) -> RunOut:
    """Cancel a queued run at once, or stop a running one; a finished run stays as it is."""
    run = await owned_run(services, user, run_id)
    if not run.status.is_terminal:
        await services.scheduler.cancel(run)
    return RunOut.of(await owned_run(services, user, run_id))

"""Agents: what a user creates once and gives tasks to."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from fastapi import APIRouter, HTTPException, Response

from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.api.schemas import (
    AgentCreate,
    AgentList,
    AgentOut,
    AgentUpdate,
    Conversation,
    Responses,
)
from agent_platform.domain import ACTIVE, Agent, User, new_id, utcnow
from agent_platform.services import Services

router = APIRouter(prefix="/api/agents", tags=["agents"])
NOT_FOUND: Responses = {404: {"description": "no such agent of yours"}}


async def owned_agent(services: Services, user: User, agent_id: str) -> Agent:
    agent = await services.store.get_agent(user.id, agent_id)
    if agent is None:
        raise HTTPException(404, f"you have no agent {agent_id}")
    return agent


@router.post("", status_code=201)
async def create_agent(body: AgentCreate, user: UserDep, services: ServicesDep) -> AgentOut:
    now = utcnow()
    agent = Agent(
        id=new_id("agt"),
        owner_id=user.id,
        name=body.name,
        description=body.description,
        system_prompt=body.system_prompt,
        model=body.model or services.settings.default_model,
        allowed_tools=tuple(body.allowed_tools),
        limits=body.limits,
        created_at=now,
        updated_at=now,
    )
    await services.store.create_agent(agent)
    return AgentOut.of(agent)


@router.get("")
async def list_agents(user: UserDep, services: ServicesDep) -> AgentList:
    """Your agents, each with its newest run."""
    agents = await services.store.list_agents(user.id)
    # One read per agent, all at once: the answer waits for the slowest, not for their sum.
    newest = await asyncio.gather(
        *(services.store.list_runs(user.id, agent_id=agent.id, limit=1) for agent in agents)
    )
    return AgentList(
        items=[
            AgentOut.of(agent, runs[0] if runs else None)
            for agent, runs in zip(agents, newest, strict=True)
        ]
    )


@router.get("/{agent_id}", responses=NOT_FOUND)
async def get_agent(agent_id: str, user: UserDep, services: ServicesDep) -> AgentOut:
    return AgentOut.of(await owned_agent(services, user, agent_id))


@router.patch("/{agent_id}", responses=NOT_FOUND)
async def update_agent(
    agent_id: str, body: AgentUpdate, user: UserDep, services: ServicesDep
) -> AgentOut:
    agent = await owned_agent(services, user, agent_id)
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        nulls = sorted(k for k, v in changes.items() if v is None)
        raise HTTPException(422, f"these fields cannot be null: {', '.join(nulls)}")
    updated = replace(
        agent,
        name=body.name or agent.name,
        description=agent.description if body.description is None else body.description,
        system_prompt=agent.system_prompt if body.system_prompt is None else body.system_prompt,
        model=body.model or agent.model,
        allowed_tools=agent.allowed_tools
        if body.allowed_tools is None
        else tuple(body.allowed_tools),
        limits=body.limits or agent.limits,
        updated_at=utcnow(),
    )
    if not await services.store.update_agent(updated):
        raise HTTPException(404, f"you have no agent {agent_id}")
    return AgentOut.of(updated)


@router.delete(
    "/{agent_id}",
    status_code=204,
    responses={**NOT_FOUND, 409: {"description": "the agent has active runs"}},
)
async def delete_agent(agent_id: str, user: UserDep, services: ServicesDep) -> Response:
    """Delete the agent with its runs, their events, its conversation and its workspace."""
    await owned_agent(services, user, agent_id)
    if await services.store.list_runs(user.id, agent_id=agent_id, statuses=ACTIVE, limit=1):
        raise HTTPException(409, "the agent has queued or running runs; cancel them first")
    # The workspace first: should the blob store fail, the agent is still there to delete
    # again, rather than gone with its files left behind where nothing lists them.
    await services.blobs.delete(agent_id)
    if not await services.store.delete_agent(user.id, agent_id):
        raise HTTPException(404, f"you have no agent {agent_id}")
    return Response(status_code=204)


@router.get("/{agent_id}/conversation", responses=NOT_FOUND)
async def get_conversation(agent_id: str, user: UserDep, services: ServicesDep) -> Conversation:
    """The messages the agent's next run continues from."""
    await owned_agent(services, user, agent_id)
    return Conversation(messages=await services.store.get_conversation(user.id, agent_id))

"""The API's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from agent_runner.protocol import TOOL_NAMES, ErrorBody, Limits, Usage
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import to_json

from agent_platform.domain import Agent, ApiToken, Run, RunStatus, StoredEvent, User

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


def _known_tool(name: str) -> str:
    if name not in TOOL_NAMES:
        raise ValueError(f"unknown tool {name!r}; known tools are {', '.join(sorted(TOOL_NAMES))}")
    return name


# The runner's tool names: an agent saved with any other would fail each of its runs.
Tool = Annotated[
    str, AfterValidator(_known_tool), WithJsonSchema({"type": "string", "enum": sorted(TOOL_NAMES)})
]
# The tools an agent gets when its creator does not choose: the runner's shell and text editor,
# by the names Anthropic documents.
DEFAULT_TOOLS = ["bash", "str_replace_based_edit_tool"]


# Documented answers other than the route's success, for the OpenAPI spec.
Responses = dict[int | str, dict[str, Any]]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentCreate(Body):
    name: Name
    description: str = Field(default="", max_length=2000)
    system_prompt: str = Field(default="", max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_tools: list[Tool] = Field(default_factory=lambda: list(DEFAULT_TOOLS), max_length=50)
    limits: Limits = Field(default_factory=Limits)


class AgentUpdate(Body):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=2000)
    system_prompt: str | None = Field(default=None, max_length=100_000)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    allowed_tools: list[Tool] | None = Field(default=None, max_length=50)
    limits: Limits | None = None


class AgentOut(BaseModel):
    id: str
    name: str
    description: str
    system_prompt: str
    model: str
    allowed_tools: list[str]
    limits: Limits
    created_at: datetime
    updated_at: datetime
    # The newest run of the agent, where the answer lists agents: what the dashboard shows.
    latest_run: RunOut | None = None

    @classmethod
    def of(cls, agent: Agent, latest_run: Run | None = None) -> AgentOut:
        return cls(
            latest_run=None if latest_run is None else RunOut.of(latest_run),
            id=agent.id,
            name=agent.name,
            description=agent.description,
            system_prompt=agent.system_prompt,
            model=agent.model,
            allowed_tools=list(agent.allowed_tools),
            limits=agent.limits,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )


class AgentList(BaseModel):
    items: list[AgentOut]


class RunCreate(Body):
    task: str = Field(min_length=1, max_length=100_000, pattern=r"\S")


class RunOut(BaseModel):
    id: str
    agent_id: str
    task: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    usage: Usage

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls(
            id=run.id,
            agent_id=run.agent_id,
            task=run.task,
            status=run.status,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            error=run.error,
            usage=run.usage,
        )


class RunList(BaseModel):
    items: list[RunOut]


class EventOut(BaseModel):
    seq: int
    type: str
    data: dict[str, Any]
    time: datetime

    @classmethod
    def of(cls, event: StoredEvent) -> EventOut:
        return cls(seq=event.seq, type=event.type, data=event.data, time=event.time)

    @staticmethod
    def json_of(event: StoredEvent) -> str:
        """`of(event)` as JSON, without building the model: a stream renders every event for
        every subscriber, and the model's validation of `data` tripled the cost."""
        fields = {"seq": event.seq, "type": event.type, "data": event.data, "time": event.time}
        # NaN and infinities, which JSON cannot spell, as null: as the model would write them.
        return to_json(fields, inf_nan_mode="null").decode()


class EventList(BaseModel):
    items: list[EventOut]


class Conversation(BaseModel):
    messages: list[dict[str, Any]]


class UserOut(BaseModel):
    id: str
    name: str
    is_admin: bool

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, name=user.name, is_admin=user.is_admin)


class TokenCreate(Body):
    name: Name


class TokenOut(BaseModel):
    id: str
    name: str
    kind: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            kind=token.kind.value,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )


class TokenCreated(TokenOut):
    # Shown once: only its hash is kept.
    secret: str


class TokenList(BaseModel):
    items: list[TokenOut]


class Error(ErrorBody):
    """Every error's body: the runner protocol's `ErrorBody`, named for the API's schema."""

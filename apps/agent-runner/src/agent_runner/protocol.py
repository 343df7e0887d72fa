"""The wire format between the platform and a runner: the only module both sides import.

A runner knows three things, handed to it through its environment: the run id, the platform's
base URL and a run-scoped bearer token. With them it reads its assignment, reaches Claude through
the platform's LLM gateway, moves the agent's workspace and reports events. It never sees the
Anthropic key or the platform's store.

The gateway speaks the Messages API, with two promises a runner relies on. Each call's tokens
(its request's size in bytes, bounding its input, plus `max_tokens`) are reserved against the
run's budget before it goes upstream: a call that does not fit is refused with 403
`budget_exhausted` once the budget is spent, or 429 while the run's other calls in flight hold
it. And a streamed reply that breaks off upstream, or ends before `message_stop`, ends with an
`error` event instead: the runner asks for it again (`agent_runner.conversation.retry_delay`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agent_runner.unicode_text import is_valid_unicode_data

# The names (environment, paths, event types) are defined without pydantic; shared from here.
from agent_runner.wire_names import (
    ASSIGNMENT_PATH,
    ENV_HANDOVER_HOST,
    ENV_HANDOVER_PORT,
    ENV_PLATFORM_URL,
    ENV_RUN_ID,
    ENV_RUN_TOKEN,
    ENV_RUN_TOKEN_FILE,
    ENV_TOOL_SANDBOX,
    ENV_WORKSPACE,
    EVENTS_PATH,
    GATEWAY_PREFIX,
    HANDOVER_PATH,
    HANDOVER_RUN_ID,
    HANDOVER_RUN_TOKEN,
    SANDBOX_BUBBLEWRAP,
    SANDBOX_NONE,
    TOOL_NAMES,
    WORKSPACE_PATH,
    EventType,
)

__all__ = [
    "ASSIGNMENT_PATH",
    "ENV_HANDOVER_HOST",
    "ENV_HANDOVER_PORT",
    "ENV_PLATFORM_URL",
    "ENV_RUN_ID",
    "ENV_RUN_TOKEN",
    "ENV_RUN_TOKEN_FILE",
    "ENV_TOOL_SANDBOX",
    "ENV_WORKSPACE",
    "EVENTS_PATH",
    "GATEWAY_PREFIX",
    "HANDOVER_PATH",
    "HANDOVER_RUN_ID",
    "HANDOVER_RUN_TOKEN",
    "MAX_EVENTS_PER_BATCH",
    "MAX_SEQ",
    "SANDBOX_BUBBLEWRAP",
    "SANDBOX_NONE",
    "TOOL_NAMES",
    "WORKSPACE_PATH",
    "Assignment",
    "BatchAck",
    "ErrorBody",
    "Event",
    "EventBatch",
    "EventType",
    "Limits",
    "Outcome",
    "RunResult",
    "Usage",
    "Wire",
]

MAX_EVENTS_PER_BATCH: Final = 500
# Stores keep a seq as a signed 64-bit integer (SQLite's INTEGER, Firestore's integer).
MAX_SEQ: Final = 2**63 - 1


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outcome(StrEnum):
    """How a run ended, as the runner saw it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class Limits(Wire):
    max_turns: int = Field(default=20, ge=1, le=500)
    max_tokens: int = Field(default=200_000, ge=1_000, le=10_000_000)
    timeout_seconds: int = Field(default=600, ge=5, le=86_400)


class Usage(Wire):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens
            + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


class Assignment(Wire):
    """What a runner fetches at start: the task and everything needed to pursue it."""

    run_id: str
    agent_id: str
    task: str
    model: str
    system_prompt: str
    allowed_tools: list[str]
    limits: Limits
    # Messages API message params from the agent's earlier runs, oldest first.
    conversation: list[dict[str, Any]]


class Event(Wire):
    """One step of a run. `seq` starts at 1 and is gap-free per run; re-sending is harmless."""

    seq: int = Field(ge=1, le=MAX_SEQ)
    type: EventType
    data: dict[str, Any] = Field(default_factory=dict)
    time: datetime

    @field_validator("data")
    @classmethod
    def _encodable(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Data that can be stored and streamed as JSON: its text is valid Unicode.

        JSON's escapes can spell half of a surrogate pair, which no UTF-8 encoder writes: such
        an event is refused where it arrives, since no JSON text could store or stream it.
        Pydantic's own JSON parser refuses them already, so JSON text is not checked twice.
        """
        if info.mode == "json" or is_valid_unicode_data(data):
            return data
        raise ValueError("event data must be valid Unicode text: no lone surrogates")


class EventBatch(Wire):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class BatchAck(Wire):
    """The platform's answer: every event up to `acked_seq` is stored."""

    acked_seq: int


class RunResult(Wire):
    """The data of the terminal RESULT event."""

    outcome: Outcome
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    # Messages this run added to the agent's conversation, for the next run to continue from.
    new_messages: list[dict[str, Any]] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error the platform answers a runner with, except the LLM gateway's.

    `error` is the HTTP status phrase in snake case (`unauthorized`, `content_too_large`),
    `message` says what to fix, `details` lists the fields at fault of an invalid request.
    Extra keys are allowed so the platform may add some without breaking older runners.

    The gateway under `GATEWAY_PREFIX` answers instead in the Anthropic Messages API's own
    shape, `{"type": "error", "error": {"type", "message"}}`: the runner reaches it through
    the Anthropic SDK, which parses that shape to raise its typed errors with the message.
    """

    error: str
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)

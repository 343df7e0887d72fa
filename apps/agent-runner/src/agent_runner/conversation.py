"""The agent's decision logic, as pure functions over plain data.

What to send Claude next (system prompt, tools, the conversation with prompt-caching
breakpoints), whether the run goes on after a turn, and how the conversation is left valid for
the agent's next run however this one ends. No I/O here: the loop in `agent` does that.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Final

from agent_runner.protocol import Limits, Outcome, Usage

# The per-request output cap; the run's token budget can lower it.
MAX_OUTPUT_TOKENS: Final = 8_192
# A reply cut mid-stream is asked for again this many times in all, waiting longer each time,
# like the SDK's own retries of a failed request (which end once a reply starts streaming).
STREAM_ATTEMPTS: Final = 4
RETRY_FIRST_SECONDS: Final = 0.5
RETRY_MAX_SECONDS: Final = 8.0
# The error events of a stream that are worth another try: the API's own trouble.
TRANSIENT_STREAM_ERRORS: Final = frozenset({"api_error", "overloaded_error"})
# Cached prefixes: the system prompt, plus the latest user turns so that each request reads the
# conversation so far from the cache and writes only its newest turn (the API allows four).
CACHED_TURNS: Final = 2
_EPHEMERAL: Final = {"type": "ephemeral"}

WORKSPACE_NOTE: Final = (
    "You work in a workspace directory that persists between your runs; the bash tool starts "
    "there and the editor resolves relative paths against it. Files outside it are not yours."
)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    output: str
    is_error: bool


@dataclass(frozen=True)
class Finish:
    """The run is over: how it ended and, if it failed, why."""

    outcome: Outcome
    error: str | None = None
    kind: str | None = None


def user_task(task: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": task}]}


def system_blocks(system_prompt: str) -> list[dict[str, Any]]:
    text = (
        f"{system_prompt.strip()}\n\n{WORKSPACE_NOTE}" if system_prompt.strip() else WORKSPACE_NOTE
    )
    return [{"type": "text", "text": text, "cache_control": _EPHEMERAL}]


def with_cache_breakpoints(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of messages whose latest user turns end in a cache breakpoint."""
    marked = copy.deepcopy(messages)
    user_turns = [m for m in marked if m["role"] == "user"][-CACHED_TURNS:]
    for message in user_turns:
        content = message["content"]
        if isinstance(content, str):
            content = message["content"] = [{"type": "text", "text": content}]
        if content:
            content[-1]["cache_control"] = _EPHEMERAL
    return marked


def request(
    *,
    model: str,
    system_prompt: str,
    tools: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    limits: Limits,
    used: Usage,
) -> dict[str, Any]:
    """The keyword arguments of one Messages API call."""
    remaining = max(1, limits.max_tokens - used.total_tokens)
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": min(MAX_OUTPUT_TOKENS, remaining),
        "system": system_blocks(system_prompt),
        "messages": with_cache_breakpoints(messages),
    }
    if tools:  # an agent without tools only talks
        params["tools"] = tools
    return params


def assistant_message(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_results_message(results: list[ToolResult]) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": r.call_id,
                "content": r.output or "(no output)",
                "is_error": r.is_error,
            }
            for r in results
        ],
    }


def before_turn(turns_done: int, used: Usage, limits: Limits) -> Finish | None:
    """Whether the limits allow another call to Claude."""
    if turns_done >= limits.max_turns:
        return Finish(
            Outcome.FAILED,
            f"the agent used all {limits.max_turns} turns without finishing; "
            "raise the agent's max_turns or split the task",
            kind="max_turns",
        )
    if used.total_tokens >= limits.max_tokens:
        return Finish(
            Outcome.FAILED,
            f"the run's token budget of {limits.max_tokens} is exhausted "
            f"({used.total_tokens} used); raise the agent's max_tokens",
            kind="budget",
        )
    return None


def after_turn(stop_reason: str | None, calls: list[ToolCall]) -> Finish | None:
    """Whether Claude's latest reply ends the run; tool calls keep it going."""
    if calls:
        return None
    if stop_reason == "refusal":
        return Finish(Outcome.FAILED, "Claude declined the task", kind="refusal")
    return Finish(Outcome.SUCCEEDED)


def closed(messages: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """Messages that end validly: a trailing tool call gets an error result saying why not."""
    if not messages or messages[-1]["role"] != "assistant":
        return messages
    pending = [
        ToolResult(block["id"], reason, is_error=True)
        for block in messages[-1]["content"]
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]
    return [*messages, tool_results_message(pending)] if pending else messages


def retry_delay(attempts_made: int) -> float | None:
    """Seconds to wait before asking again for a reply cut mid-stream; None when out of tries."""
    if attempts_made >= STREAM_ATTEMPTS:
        return None
    return min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2.0 ** (attempts_made - 1))


def transient_stream_error(body: object) -> str | None:
    """The message of an error event that ended a stream, if its trouble may pass; else None."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") in TRANSIENT_STREAM_ERRORS:
        return f"{error['type']}: {error.get('message')}"
    return None


def describe_api_error(status: int | None, body: object, fallback: str) -> Finish:
    """A failed call to Claude, in words that say what happened and what to do."""
    error = body.get("error") if isinstance(body, dict) else None
    error_type = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    detail = str(message or fallback)
    if error_type == "budget_exhausted":
        return Finish(Outcome.FAILED, detail, kind="budget")
    if error_type == "not_configured":
        return Finish(Outcome.FAILED, detail, kind="not_configured")
    if status == 401:
        return Finish(
            Outcome.FAILED,
            f"the gateway rejected the run token ({detail}); the run is no longer live",
            kind="unauthorized",
        )
    if error_type == "overloaded_error" or status == 529:
        return Finish(
            Outcome.FAILED, f"Claude is overloaded and retries ran out: {detail}", kind="overloaded"
        )
    shown = f"HTTP {status}" if status else "stream"
    return Finish(Outcome.FAILED, f"Claude's API failed ({shown}): {detail}", kind="upstream")

"""The agent's pure decision logic: requests, caching breakpoints, limits, endings."""

from __future__ import annotations

from typing import Any

from agent_runner import conversation
from agent_runner.conversation import ToolCall
from agent_runner.protocol import Limits, Outcome, Usage


def _cached(message: dict[str, Any]) -> bool:
    return any("cache_control" in block for block in message["content"])


def test_system_prompt_is_cached_and_explains_the_workspace() -> None:
    (block,) = conversation.system_blocks("You are terse.")
    assert block["cache_control"] == {"type": "ephemeral"}
    assert block["text"].startswith("You are terse.")
    assert "workspace" in block["text"]


def test_only_the_latest_user_turns_carry_cache_breakpoints() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        conversation.user_task("second"),
        {"role": "assistant", "content": [{"type": "text", "text": "b"}]},
        conversation.user_task("third"),
    ]
    marked = conversation.with_cache_breakpoints(messages)
    assert [_cached(m) for m in marked] == [False, False, True, False, True]
    assert not any("cache_control" in b for m in messages[2:] for b in m["content"])


def test_request_caps_output_by_the_remaining_budget() -> None:
    limits = Limits(max_tokens=10_000)
    params = conversation.request(
        model="m",
        system_prompt="",
        tools=[],
        messages=[conversation.user_task("t")],
        limits=limits,
        used=Usage(input_tokens=9_000),
    )
    assert params["max_tokens"] == 1_000
    assert "tools" not in params  # an agent without tools sends none


def test_turn_limit_ends_the_run_as_failed_with_advice() -> None:
    finish = conversation.before_turn(3, Usage(), Limits(max_turns=3))
    assert finish is not None
    assert finish.outcome is Outcome.FAILED
    assert "max_turns" in (finish.error or "")


def test_exhausted_budget_ends_the_run_before_calling_claude() -> None:
    finish = conversation.before_turn(0, Usage(output_tokens=1_000), Limits(max_tokens=1_000))
    assert finish is not None
    assert finish.kind == "budget"


def test_tool_calls_continue_and_a_plain_reply_succeeds() -> None:
    assert conversation.after_turn("tool_use", [ToolCall("t1", "bash", {})]) is None
    done = conversation.after_turn("end_turn", [])
    assert done is not None
    assert done.outcome is Outcome.SUCCEEDED


def test_an_unanswered_tool_call_is_closed_with_an_error_result() -> None:
    messages = [
        conversation.user_task("t"),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "bash", "input": {}}],
        },
    ]
    closed = conversation.closed(messages, "the run ended: cancelled")
    assert closed[-1]["role"] == "user"
    (result,) = closed[-1]["content"]
    assert result["tool_use_id"] == "t1"
    assert result["is_error"] is True


def test_api_errors_are_described_by_kind() -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert conversation.describe_api_error(None, overloaded, "x").kind == "overloaded"
    assert conversation.describe_api_error(401, None, "bad").kind == "unauthorized"
    budget = {"error": {"type": "budget_exhausted", "message": "spent"}}
    assert conversation.describe_api_error(403, budget, "x").error == "spent"
    assert conversation.describe_api_error(500, "boom", "boom").kind == "upstream"

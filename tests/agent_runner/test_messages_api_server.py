"""The scripted Messages API server speaks the protocol the real `anthropic` SDK expects."""

from __future__ import annotations

import anthropic
import pytest
from servers.messages_api import (
    HttpFailure,
    MessagesApiServer,
    Reply,
    StreamFailure,
    Text,
    ToolUse,
)


def _client(server: MessagesApiServer, retries: int = 2) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="test-key", max_retries=retries
    )


async def test_a_streamed_reply_carries_text_tool_use_and_usage(
    messages_api: MessagesApiServer,
) -> None:
    marker = messages_api.add_script(
        [Reply([Text("Let me look.", chunks=3), ToolUse("bash", {"command": "ls -la"})])]
    )
    deltas: list[str] = []
    async with _client(messages_api).messages.stream(
        model="claude-test",
        max_tokens=100,
        messages=[{"role": "user", "content": f"{marker} list files"}],
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                deltas.append(event.delta.text)
        message = await stream.get_final_message()
    assert "".join(deltas) == "Let me look."
    assert len(deltas) == 3
    assert message.stop_reason == "tool_use"
    tool_use = message.content[1]
    assert tool_use.type == "tool_use"
    assert tool_use.input == {"command": "ls -la"}
    assert message.usage.output_tokens > 1


async def test_the_step_follows_the_assistant_turns_after_the_marker(
    messages_api: MessagesApiServer,
) -> None:
    marker = messages_api.add_script([Reply([Text("one")]), Reply([Text("two")])])
    reply = await _client(messages_api).messages.create(
        model="claude-test",
        max_tokens=100,
        messages=[
            {"role": "user", "content": f"{marker} go"},
            {"role": "assistant", "content": "one"},
            {"role": "user", "content": "again"},
        ],
    )
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "two"


async def test_a_rate_limit_with_retry_after_is_retried_by_the_sdk(
    messages_api: MessagesApiServer,
) -> None:
    marker = messages_api.add_script(
        [HttpFailure(429, "rate_limit_error", retry_after=0.05, then=Reply([Text("ok")]))]
    )
    reply = await _client(messages_api).messages.create(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
    )
    assert reply.content[0].type == "text"
    assert len(messages_api.requests(marker)) == 2


async def test_overloaded_beyond_the_retries_raises(messages_api: MessagesApiServer) -> None:
    marker = messages_api.add_script(
        [HttpFailure(529, "overloaded_error", retry_after=0.01, times=5)]
    )
    with pytest.raises(anthropic.APIStatusError) as raised:
        await _client(messages_api, retries=1).messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
        )
    assert raised.value.status_code == 529
    assert len(messages_api.requests(marker)) == 2


async def test_an_error_event_mid_stream_raises_in_the_consumer(
    messages_api: MessagesApiServer,
) -> None:
    marker = messages_api.add_script([StreamFailure(Reply([Text("partial answer")]))])
    seen: list[str] = []

    async def consume() -> None:
        async with _client(messages_api).messages.stream(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
        ) as stream:
            async for event in stream:
                seen.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as raised:
        await consume()
    assert "content_block_delta" in seen
    assert isinstance(raised.value.body, dict)
    assert raised.value.body["error"]["type"] == "overloaded_error"


async def test_requests_are_recorded_with_their_headers(messages_api: MessagesApiServer) -> None:
    marker = messages_api.add_script([Reply([Text("hi")])])
    await _client(messages_api).messages.create(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
    )
    (recorded,) = messages_api.requests(marker)
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.body["model"] == "claude-test"

"""The LLM gateway, served by the real platform, called with the real SDK, in front of the
scripted Messages API server."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from agent_platform.auth import hash_secret, new_secret
from agent_platform.domain import RunStatus, RunTransition, utcnow
from agent_platform.llm_gateway import LlmGateway
from agent_runner.protocol import Limits
from pydantic import SecretStr
from servers.messages_api import (
    HttpFailure,
    MessagesApiServer,
    Reply,
    StreamCut,
    Text,
    ToolUse,
)
from servers.platform import Caller, Claude, Served, create_agent, start_run, wait_for_status

UPSTREAM_KEY = "sk-upstream-test-key"


@pytest.fixture
def platform_settings(messages_api: MessagesApiServer) -> dict[str, Any]:
    return {"anthropic_base_url": messages_api.base_url, "anthropic_api_key": UPSTREAM_KEY}


async def _live_run_token(served: Served, caller: Caller, limits: Limits) -> tuple[str, str]:
    """A running run of a new agent, and a run token for it that this test holds."""
    agent = await create_agent(caller, limits=limits.model_dump())
    run_id = (await start_run(caller, agent["id"], "hang"))["id"]
    await wait_for_status(caller, run_id, {RunStatus.RUNNING.value})
    token = new_secret("run")
    changed = await served.services.store.transition_run(
        RunTransition(
            run_id=run_id,
            expected=frozenset({RunStatus.RUNNING}),
            status=RunStatus.RUNNING,
            at=utcnow(),
            run_token_hash=hash_secret(token),
        )
    )
    assert changed is not None
    return run_id, token


async def test_a_streamed_reply_is_relayed_with_the_real_key_and_usage_recorded(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    run_id, token = await _live_run_token(served, alice, Limits())
    marker = messages_api.add_script(
        [
            Reply(
                [Text("hello there", chunks=4), ToolUse("bash", {"command": "ls"})],
                usage={"input_tokens": 120, "output_tokens": 30, "cache_read_input_tokens": 7},
            )
        ]
    )
    async with claude(token).messages.stream(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": marker}]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        message = await stream.get_final_message()
    assert text == "hello there"
    assert message.content[1].type == "tool_use"
    (upstream,) = messages_api.requests(marker)
    assert upstream.headers["x-api-key"] == UPSTREAM_KEY
    assert token not in str(upstream.headers)
    assert "authorization" not in upstream.headers
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    assert run["usage"] == {
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
    }


async def test_a_non_streamed_reply_is_relayed_and_counted(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    run_id, token = await _live_run_token(served, alice, Limits())
    marker = messages_api.add_script(
        [Reply([Text("plain")], usage={"input_tokens": 11, "output_tokens": 5})]
    )
    reply = await claude(token).messages.create(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": marker}]
    )
    assert reply.content[0].type == "text"
    assert reply.content[0].text == "plain"
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    assert run["usage"]["input_tokens"] == 11
    assert run["usage"]["output_tokens"] == 5


async def test_events_are_relayed_as_they_arrive_not_buffered(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    _, token = await _live_run_token(served, alice, Limits())
    marker = messages_api.add_script([Reply([Text("a b c d e f", chunks=6)], event_interval=0.15)])
    arrivals: list[float] = []
    async with claude(token).messages.stream(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": marker}]
    ) as stream:
        async for _ in stream.text_stream:
            arrivals.append(time.monotonic())
    # Six deltas paced 0.15 s apart upstream arrive spread out, not all at the end.
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] > 0.5


async def test_an_unknown_token_is_refused_and_nothing_goes_upstream(
    served: Served, messages_api: MessagesApiServer, claude: Claude
) -> None:
    marker = messages_api.add_script([Reply([Text("never")])])
    with pytest.raises(anthropic.AuthenticationError, match="live run"):
        await claude("run_not-a-real-token").messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
        )
    assert messages_api.requests(marker) == []


async def test_the_token_of_a_finished_run_is_refused(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    run_id, token = await _live_run_token(served, alice, Limits())
    await alice.http.post(f"/api/runs/{run_id}/cancel")
    await wait_for_status(alice, run_id, {RunStatus.CANCELLED.value})
    marker = messages_api.add_script([Reply([Text("never")])])
    with pytest.raises(anthropic.AuthenticationError):
        await claude(token).messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
        )


async def test_the_budget_caps_a_reply_and_refuses_calls_once_spent(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    _, token = await _live_run_token(served, alice, Limits(max_tokens=1_500))
    marker = messages_api.add_script(
        [
            Reply([Text("expensive")], usage={"input_tokens": 1_400, "output_tokens": 200}),
            Reply([Text("never")]),
        ]
    )
    client = claude(token)
    await client.messages.create(
        model="claude-test", max_tokens=8_192, messages=[{"role": "user", "content": marker}]
    )
    # The answer may take what the request's input, bounded by its size, leaves of the budget.
    (first,) = messages_api.requests(marker)
    assert 1_300 < first.body["max_tokens"] < 1_500
    with pytest.raises(anthropic.PermissionDeniedError, match="budget of 1500 is exhausted"):
        await client.messages.create(
            model="claude-test",
            max_tokens=100,
            messages=[
                {"role": "user", "content": marker},
                {"role": "assistant", "content": "expensive"},
                {"role": "user", "content": "more"},
            ],
        )
    assert len(messages_api.requests(marker)) == 1


async def test_upstream_rate_limits_reach_the_sdk_which_retries(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    _, token = await _live_run_token(served, alice, Limits())
    marker = messages_api.add_script(
        [HttpFailure(429, "rate_limit_error", retry_after=0.05, then=Reply([Text("later")]))]
    )
    reply = await claude(token).messages.create(
        model="claude-test", max_tokens=10, messages=[{"role": "user", "content": marker}]
    )
    assert reply.content[0].type == "text"
    assert len(messages_api.requests(marker)) == 2


URL_IMAGE = {"type": "image", "source": {"type": "url", "url": "http://127.0.0.1:9/cat.png"}}
FILE_DOCUMENT = {"type": "document", "source": {"type": "file", "file_id": "file_1"}}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
# Per case: the turns after the user's first (which holds the script's marker), and the tools.
UNBOUNDED_INPUT: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "an image from a URL": ([{"role": "user", "content": [URL_IMAGE]}], []),
    "a document from the Files API": ([{"role": "user", "content": [FILE_DOCUMENT]}], []),
    "an image from a URL in a tool result": (
        [
            {"role": "assistant", "content": [TOOL_USE]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [URL_IMAGE]}
                ],
            },
        ],
        [],
    ),
    "web search": ([], [{"type": "web_search_20250305", "name": "web_search"}]),
    "web fetch": ([], [{"type": "web_fetch_20250910", "name": "web_fetch"}]),
}


@pytest.mark.parametrize("case", sorted(UNBOUNDED_INPUT))
async def test_input_the_request_does_not_hold_is_refused_before_going_upstream(
    served: Served, alice: Caller, messages_api: MessagesApiServer, case: str, claude: Claude
) -> None:
    run_id, token = await _live_run_token(served, alice, Limits())
    marker = messages_api.add_script([Reply([Text("never")])])
    turns, tools = UNBOUNDED_INPUT[case]
    # The runner's own turn between the user's two keeps the conversation well formed.
    between = (
        [{"role": "assistant", "content": "ok"}] if turns and turns[0]["role"] == "user" else []
    )
    with pytest.raises(anthropic.BadRequestError, match="not supported by the gateway"):
        await claude(token).messages.create(
            model="claude-test",
            max_tokens=10,
            messages=[{"role": "user", "content": marker}, *between, *turns],  # type: ignore[list-item]
            tools=tools,  # type: ignore[arg-type]
        )
    assert messages_api.requests(marker) == []
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    assert sum(run["usage"].values()) == 0


# A 1x1 PNG.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6"
    "kgAAAABJRU5ErkJggg=="
)


async def test_the_runners_own_tools_and_inline_sources_go_upstream(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    _, token = await _live_run_token(served, alice, Limits())
    marker = messages_api.add_script([Reply([Text("seen")])])
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
    }
    reply = await claude(token).messages.create(
        model="claude-test",
        max_tokens=10,
        tools=[
            {"type": "bash_20250124", "name": "bash"},
            {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
            {"name": "lookup", "input_schema": {"type": "object"}},
        ],
        messages=[{"role": "user", "content": [{"type": "text", "text": marker}, image]}],  # type: ignore[list-item,misc]
    )
    assert reply.content[0].type == "text"
    assert len(messages_api.requests(marker)) == 1


async def _read_to_the_end(client: anthropic.AsyncAnthropic, marker: str) -> None:
    """Stream a reply to its end, as the runner does."""
    async with client.messages.stream(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": marker}]
    ) as stream:
        async for _ in stream.text_stream:
            pass


@pytest.mark.parametrize("break_body", [False, True], ids=["truncated", "connection dropped"])
async def test_a_stream_cut_mid_reply_counts_the_output_it_streamed(
    served: Served, alice: Caller, messages_api: MessagesApiServer, break_body: bool, claude: Claude
) -> None:
    run_id, token = await _live_run_token(served, alice, Limits())
    # Five deltas of ten characters; the stream stops after the second.
    text = "".join(f"{digit}" * 10 for digit in range(5))
    billed = {"input_tokens": 40, "output_tokens": 500}
    marker = messages_api.add_script(
        [StreamCut(Reply([Text(text, chunks=5)], usage=billed), events=5, break_body=break_body)]
    )
    client = claude(token, max_retries=0)

    with pytest.raises(anthropic.APIError, match="send the request again"):
        await _read_to_the_end(client, marker)
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    # The input as message_start billed it, and the output as a token a byte streamed.
    assert run["usage"]["input_tokens"] == 40
    assert run["usage"]["output_tokens"] == 20


async def test_a_call_longer_than_the_gateway_allows_is_cut_and_its_stream_counted(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    # A call may take as long as its tokens are held, and no longer.
    short = LlmGateway(
        api_key=SecretStr(UPSTREAM_KEY), upstream_url=messages_api.base_url, call_seconds=0.5
    )
    usual, served.services.gateway = served.services.gateway, short
    try:
        run_id, token = await _live_run_token(served, alice, Limits())
        marker = messages_api.add_script(
            [
                Reply(
                    [Text("0123456789" * 5, chunks=5)],
                    usage={"input_tokens": 40, "output_tokens": 50},
                    event_interval=0.3,
                )
            ]
        )
        client = claude(token, max_retries=0)

        with pytest.raises(anthropic.APIError, match=r"took longer than the gateway's 0\.5 s"):
            await _read_to_the_end(client, marker)
    finally:
        served.services.gateway = usual
        await short.aclose()
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    assert run["usage"]["input_tokens"] == 40
    # Cut before its last delta: some, not all, of the reply's 50 characters were streamed.
    assert 0 < run["usage"]["output_tokens"] < 50

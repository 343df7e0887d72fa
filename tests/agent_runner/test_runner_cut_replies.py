"""The agent loop's own guard: a streamed reply is whole only once `message_stop` arrives.

The SDK hands back the part of a message received before a stream ended as if it were the
final message; the loop must not take it for Claude's answer. Here the runner's SDK talks to
the scripted Messages API server directly, with no gateway in between to flag the cut.
"""

from __future__ import annotations

from pathlib import Path

import anthropic
import pytest
from agent_runner.agent import Agent, ReplyCut
from agent_runner.protocol import Assignment, BatchAck, Event, EventBatch, Limits, Outcome
from agent_runner.reporter import Reporter
from agent_runner.tools import Toolbox
from agent_runner.tools import sandbox as tool_sandbox
from servers.messages_api import MessagesApiServer, Reply, StreamCut, Text

BILLED = {"input_tokens": 100, "output_tokens": 20}


async def _run_agent(
    messages_api: MessagesApiServer, cut: StreamCut, workspace: Path
) -> tuple[Agent, list[Event], Outcome | ReplyCut]:
    script = messages_api.add_script([cut])
    sent: list[Event] = []

    async def send(batch: EventBatch) -> BatchAck:
        sent.extend(batch.events)
        return BatchAck(acked_seq=batch.events[-1].seq)

    reporter = Reporter(send)
    reporter.start()
    assignment = Assignment(
        run_id="run_test",
        agent_id="agt_test",
        task=f"{script} answer",
        model="claude-test",
        system_prompt="",
        allowed_tools=[],
        limits=Limits(),
        conversation=[],
    )
    claude = anthropic.AsyncAnthropic(base_url=messages_api.base_url, api_key="k", max_retries=0)
    toolbox = Toolbox([], tool_sandbox.for_mode("none", workspace), {})
    agent = Agent(claude, assignment, toolbox, reporter)
    outcome: Outcome | ReplyCut
    try:
        outcome = (await agent.run()).outcome
    except ReplyCut as cut_for_good:
        outcome = cut_for_good
    finally:
        await claude.close()
    assert await reporter.close(10)
    return agent, sent, outcome


async def test_a_reply_that_ends_before_message_stop_is_asked_for_again(
    messages_api: MessagesApiServer, tmp_path: Path
) -> None:
    cut = StreamCut(Reply([Text("The whole answer.", chunks=3)], usage=BILLED))
    agent, sent, outcome = await _run_agent(messages_api, cut, tmp_path)
    assert outcome is Outcome.SUCCEEDED
    (retrying,) = [e.data for e in sent if e.type == "status"]
    assert retrying["status"] == "retrying"
    assert "ended before message_stop" in retrying["message"]
    # The conversation holds the whole reply only; the usage counts both message_starts.
    assert agent.new_messages[-1]["content"] == [{"type": "text", "text": "The whole answer."}]
    assert agent.usage.input_tokens == 2 * BILLED["input_tokens"]
    assert agent.usage.output_tokens == 1 + BILLED["output_tokens"]


async def test_a_reply_that_never_ends_whole_stops_the_loop_after_four_attempts(
    messages_api: MessagesApiServer, tmp_path: Path
) -> None:
    cut = StreamCut(Reply([Text("Never whole.")], usage=BILLED), times=50)
    agent, sent, outcome = await _run_agent(messages_api, cut, tmp_path)
    assert isinstance(outcome, ReplyCut)
    assert "ended before message_stop" in str(outcome)
    assert len([e for e in sent if e.type == "status"]) == 3
    assert agent.turns == 0
    assert agent.usage.input_tokens == 4 * BILLED["input_tokens"]
    assert agent.new_messages == [agent.new_messages[0]]


@pytest.mark.parametrize("events", [1, 2])
async def test_a_reply_cut_before_any_text_is_asked_for_again(
    messages_api: MessagesApiServer, tmp_path: Path, events: int
) -> None:
    cut = StreamCut(Reply([Text("Late.")], usage=BILLED), events=events, break_body=True)
    agent, sent, outcome = await _run_agent(messages_api, cut, tmp_path)
    assert outcome is Outcome.SUCCEEDED
    assert [e.data["text"] for e in sent if e.type == "text_delta"] == ["Late."]
    assert "broke off" in next(e.data["message"] for e in sent if e.type == "status")
    assert agent.usage.input_tokens == 2 * BILLED["input_tokens"]

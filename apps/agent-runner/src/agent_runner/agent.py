"""The streaming tool-use loop: Claude through the gateway, tools in the workspace, events out.

The decisions come from `conversation`; this module only performs them. Its state (usage, the
messages this run added) stays readable when the loop is cut short by a timeout or a cancel, so
the run still reports what it did.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from agent_runner import conversation
from agent_runner.conversation import Finish, ToolCall, ToolResult
from agent_runner.protocol import Assignment, EventType, Usage
from agent_runner.reporter import Reporter
from agent_runner.tools import Toolbox

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic


def _usage(raw: Any) -> Usage:
    return Usage(
        input_tokens=raw.input_tokens or 0,
        output_tokens=raw.output_tokens or 0,
        cache_creation_input_tokens=getattr(raw, "cache_creation_input_tokens", 0) or 0,
        cache_read_input_tokens=getattr(raw, "cache_read_input_tokens", 0) or 0,
    )


class ReplyCut(Exception):
    """Claude's reply stream ended before `message_stop`: broken off, or an error event.

    `billed` is the usage its `message_start` reported: the API bills a reply it started.
    """

    def __init__(self, reason: str, billed: Usage) -> None:
        super().__init__(reason)
        self.billed = billed


def _content(block: Any) -> dict[str, Any] | None:
    """A reply block as a message param for the next request; other block kinds are dropped."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return None


class Agent:
    def __init__(
        self,
        claude: AsyncAnthropic,
        assignment: Assignment,
        toolbox: Toolbox,
        reporter: Reporter,
    ) -> None:
        self._claude = claude
        self._assignment = assignment
        self._toolbox = toolbox
        self._reporter = reporter
        self.usage = Usage()
        self.new_messages: list[dict[str, Any]] = [conversation.user_task(assignment.task)]
        self.turns = 0

    async def run(self) -> Finish:
        limits = self._assignment.limits
        while True:
            stop = conversation.before_turn(self.turns, self.usage, limits)
            if stop is not None:
                return stop
            stop_reason, calls = await self._turn()
            if calls:
                results = [await self._call(call) for call in calls]
                self.new_messages.append(conversation.tool_results_message(results))
            stop = conversation.after_turn(stop_reason, calls)
            if stop is not None:
                return stop

    async def _turn(self) -> tuple[str | None, list[ToolCall]]:
        attempts = 0
        while True:
            attempts += 1
            # Made anew for each attempt: a cut reply was billed, and the budget shrank.
            params = conversation.request(
                model=self._assignment.model,
                system_prompt=self._assignment.system_prompt,
                tools=self._toolbox.definitions,
                messages=[*self._assignment.conversation, *self.new_messages],
                limits=self._assignment.limits,
                used=self.usage,
            )
            try:
                reply = await self._reply(params)
                break
            except ReplyCut as cut:
                self.usage = self.usage + cut.billed
                self._reporter.emit(EventType.USAGE, self.usage.model_dump())
                delay = conversation.retry_delay(attempts)
                if delay is None:
                    raise
                self._reporter.emit(
                    EventType.STATUS,
                    {"status": "retrying", "message": f"{cut}; asking again in {delay:g} s"},
                )
                await asyncio.sleep(delay)
        self.turns += 1
        self.usage = self.usage + _usage(reply.usage)
        self._reporter.emit(EventType.USAGE, self.usage.model_dump())
        content = [c for c in (_content(block) for block in reply.content) if c is not None]
        self.new_messages.append(conversation.assistant_message(content))
        calls = [
            ToolCall(block["id"], block["name"], dict(block["input"]))
            for block in content
            if block["type"] == "tool_use"
        ]
        return reply.stop_reason, calls

    async def _reply(self, params: dict[str, Any]) -> Any:
        """One streamed reply, whole; ReplyCut if it ended before `message_stop`.

        The SDK retries a request that fails before its reply starts; once the reply streams,
        a broken connection or an error event ends it, and the SDK would even hand back the
        part received as the final message. Only what the SDK raised while the stream was read
        counts as a cut; a mistake in this loop is not retried.
        """
        import anthropic

        billed = Usage()
        stopped = False
        async with self._claude.messages.stream(**params) as stream:
            events = aiter(stream)
            while True:
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    break
                except anthropic.APIStatusError as error:
                    transient = conversation.transient_stream_error(error.body)
                    if transient is None:
                        raise
                    raise ReplyCut(f"Claude's reply ended in {transient}", billed) from error
                except Exception as error:  # the SDK lets the network's errors through
                    raise ReplyCut(f"Claude's reply broke off: {error!r}", billed) from error
                if event.type == "message_start":
                    billed = _usage(event.message.usage)
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    self._reporter.emit(EventType.TEXT_DELTA, {"text": event.delta.text})
                elif event.type == "message_stop":
                    stopped = True
            if not stopped:
                raise ReplyCut("Claude's reply ended before message_stop", billed)
            return await stream.get_final_message()

    async def _call(self, call: ToolCall) -> ToolResult:
        self._reporter.emit(
            EventType.TOOL_CALL, {"id": call.id, "name": call.name, "input": call.input}
        )
        output = await self._toolbox.call(call.name, call.input)
        self._reporter.emit(
            EventType.TOOL_RESULT,
            {
                "id": call.id,
                "output": output.text,
                "is_error": output.is_error,
                "truncated": output.truncated,
            },
        )
        return ToolResult(call.id, output.text, output.is_error)

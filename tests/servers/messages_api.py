"""A local server speaking the Anthropic Messages API over real HTTP, driven by scripted replies.

Tests register a script (a list of steps) and put its marker in the run's task. The server finds
the marker in the conversation, counts the assistant turns after it and answers with that step,
so concurrent conversations follow their own scripts without shared state. Injected failures
(HTTP 429/529 with retry-after, an `error` event mid-stream, a stream cut before `message_stop`)
are consumed the number of times a step says, so retries then reach the next attempt's reply.

This is a test fixture at a network boundary, never a code path of the product.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from servers.in_thread import ThreadedServer

MARKER = re.compile(r"\[\[script:([A-Za-z0-9_-]+)\]\]")


@dataclass(frozen=True)
class Text:
    text: str
    # How many text_delta events carry the text when streamed.
    chunks: int = 1


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One assistant message; stop_reason is tool_use when it holds a tool call."""

    blocks: list[Text | ToolUse]
    usage: dict[str, int] | None = None
    # Pauses that model Claude thinking before its first token and producing tokens over time.
    first_event_delay: float = 0.0
    event_interval: float = 0.0


@dataclass(frozen=True)
class HttpFailure:
    """Answer the request with an error status before any streaming starts."""

    status: int
    error_type: str
    message: str = "scripted failure"
    retry_after: float | None = None
    times: int = 1
    # What the same turn gets once the failure has been served `times` times.
    then: Reply | None = None


@dataclass(frozen=True)
class StreamFailure:
    """Start streaming the reply, then send an `error` event instead of finishing it."""

    reply: Reply
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    times: int = 1


@dataclass(frozen=True)
class StreamCut:
    """Start streaming the reply, then stop before `message_stop`, as a failing network would.

    The body ends cleanly after `events` events (a truncated reply), or with `break_body` the
    connection drops in the middle of the chunked body (an incomplete chunked read). With
    `hold_seconds` the reply first stays open that long after its last event, as one Claude is
    still working on would: a client that goes away meanwhile finds the call in flight.
    """

    reply: Reply
    break_body: bool = False
    # message_start, ping, the first block's start and its first delta.
    events: int = 4
    times: int = 1
    hold_seconds: float = 0.0


class _BrokenBody(Exception):
    """Raised in a streaming body to make the server drop the connection mid-body."""


Step = Reply | HttpFailure | StreamFailure | StreamCut


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    script: str | None


@dataclass
class _State:
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], int] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def marker(script_id: str) -> str:
    return f"[[script:{script_id}]]"


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def _locate(messages: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The script named by the latest user message carrying a marker, and the step reached."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") != "user":
            continue
        found = MARKER.search(_text_of(message))
        if found:
            later = messages[index + 1 :]
            return found.group(1), sum(1 for m in later if m.get("role") == "assistant")
    return None


def _approx_tokens(value: object) -> int:
    return max(1, len(json.dumps(value)) // 4)


_ids = itertools.count(1)


def _message(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in reply.blocks:
        if isinstance(block, Text):
            content.append({"type": "text", "text": block.text})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{next(_ids):06d}",
                    "name": block.name,
                    "input": block.input,
                }
            )
    usage = {
        "input_tokens": _approx_tokens(body.get("messages", [])),
        "output_tokens": _approx_tokens(content),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    usage.update(reply.usage or {})
    # As the API does, never more output billed than the request allowed.
    if isinstance(limit := body.get("max_tokens"), int):
        usage["output_tokens"] = min(usage["output_tokens"], limit)
    stop = "tool_use" if any(c["type"] == "tool_use" for c in content) else "end_turn"
    return {
        "id": f"msg_{next(_ids):06d}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-test"),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _chunks(text: str, count: int) -> Iterator[str]:
    size = max(1, -(-len(text) // max(1, count)))
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _stream_events(
    message: dict[str, Any], reply: Reply, failure: StreamFailure | None
) -> Iterator[bytes]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**usage, "output_tokens": 1}
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse("ping", {"type": "ping"})
    for index, (block, spec) in enumerate(zip(message["content"], reply.blocks, strict=True)):
        if block["type"] == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": part}
                for part in _chunks(block["text"], spec.chunks if isinstance(spec, Text) else 1)
            ]
        else:
            opening = {**block, "input": {}}
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[:half]},
                {"type": "input_json_delta", "partial_json": raw[half:]},
            ]
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": opening},
        )
        for delta in deltas:
            yield _sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        if failure is not None:
            error = {"type": failure.error_type, "message": failure.message}
            yield _sse("error", {"type": "error", "error": error})
            return
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


def _error(status: int, error_type: str, message: str, headers: dict[str, str]) -> Response:
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


class MessagesApiServer:
    """The scripted server; start() binds a free loopback port and serves in a thread."""

    def __init__(self) -> None:
        self._state = _State()
        self._server = ThreadedServer(self.app())

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def base_url(self) -> str:
        return self._server.base_url

    def add_script(self, steps: list[Step], name: str | None = None) -> str:
        """Register a script; returns its marker, to be put into the run's task."""
        script_id = name or f"s{next(_ids)}"
        with self._state.lock:
            self._state.scripts[script_id] = list(steps)
        return marker(script_id)

    def requests(self, script_marker: str | None = None) -> list[RecordedRequest]:
        with self._state.lock:
            recorded = list(self._state.requests)
        if script_marker is None:
            return recorded
        found = MARKER.search(script_marker)
        wanted = found.group(1) if found else script_marker
        return [r for r in recorded if r.script == wanted]

    def _next_step(self, script_id: str, index: int) -> Step | None:
        """The step to play, consuming one attempt of an injected failure."""
        with self._state.lock:
            steps = self._state.scripts.get(script_id)
            if steps is None or index >= len(steps):
                return None
            step = steps[index]
            if isinstance(step, HttpFailure | StreamFailure | StreamCut):
                used = self._state.attempts.get((script_id, index), 0)
                if used < step.times:
                    self._state.attempts[(script_id, index)] = used + 1
                    return step
                return step.then if isinstance(step, HttpFailure) else step.reply
            return step

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        located = _locate(body.get("messages", []))
        with self._state.lock:
            self._state.requests.append(
                RecordedRequest(
                    path=request.url.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                    script=located[0] if located else None,
                )
            )
        if located is None:
            return _error(400, "invalid_request_error", "no [[script:...]] marker", {})
        step = self._next_step(*located)
        if step is None:
            return _error(400, "invalid_request_error", f"script {located[0]} has no step", {})
        if isinstance(step, HttpFailure):
            headers = {}
            if step.retry_after is not None:
                headers["retry-after"] = str(step.retry_after)
            return _error(step.status, step.error_type, step.message, headers)
        reply = step if isinstance(step, Reply) else step.reply
        failure = step if isinstance(step, StreamFailure) else None
        message = _message(reply, body)
        if not body.get("stream"):
            return JSONResponse(message, headers={"request-id": f"req_{next(_ids)}"})
        events: Iterator[bytes] = _stream_events(message, reply, failure)
        hold = 0.0
        if isinstance(step, StreamCut):
            events, hold = _cut(events, step), step.hold_seconds
        return StreamingResponse(
            _paced(events, reply, hold),
            media_type="text/event-stream",
            headers={"request-id": f"req_{next(_ids)}", "cache-control": "no-cache"},
        )

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    def start(self) -> MessagesApiServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


def _cut(events: Iterator[bytes], cut: StreamCut) -> Iterator[bytes]:
    yield from itertools.islice(events, cut.events)
    if cut.break_body:
        raise _BrokenBody("the scripted connection drops mid-body")


async def _paced(
    events: Iterator[bytes], reply: Reply, hold_seconds: float = 0.0
) -> AsyncIterator[bytes]:
    if reply.first_event_delay:
        await asyncio.sleep(reply.first_event_delay)
    for chunk in events:
        yield chunk
        if reply.event_interval:
            await asyncio.sleep(reply.event_interval)
    if hold_seconds:
        await asyncio.sleep(hold_seconds)

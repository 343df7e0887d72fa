"""The LLM gateway's upstream side: the only copy of the key, the connection pool, the meter.

It forwards a run's Messages API request upstream with the real key and relays the answer,
streamed replies event by event as they arrive. It reads the usage out of what it relays and
records it on the run, so budgets hold even against a runner that under-reports. The route
that admits a run's request, and reserves its tokens, is `agent_platform.api.gateway`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

import httpx
from agent_runner.protocol import Usage
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent_platform.domain import Run, TokenHold, new_id, utcnow
from agent_platform.settings import Settings
from agent_platform.store import Store

log = logging.getLogger(__name__)

MESSAGES_PATH: Final = "/v1/messages"
# Request headers passed upstream besides the anthropic-* ones; everything else (the run
# token above all) stays here.
_FORWARDED_REQUEST: Final = frozenset({"content-type", "accept"})
_FORWARDED_RESPONSE: Final = frozenset(
    {"content-type", "request-id", "retry-after", "retry-after-ms", "x-should-retry"}
)
_USAGE_FIELDS: Final = tuple(Usage.model_fields)
# The longest a call may take, streamed reply included; a hold of its tokens outlasts it by a
# read timeout (a stalled stream is noticed only then) and the time to settle.
CALL_SECONDS: Final = 3600.0
SETTLE_SECONDS: Final = 60.0
# How the Messages API ends a stream; anything else ended it early.
_LAST_EVENTS: Final = frozenset({b"message_stop", b"error"})


def anthropic_error(
    status: int,
    error_type: str,
    message: str,
    *,
    retry: bool = False,
    retry_after: int | None = None,
) -> JSONResponse:
    """An error in the Messages API's own shape, so the SDK raises it with this message."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    headers = {"x-should-retry": "true" if retry else "false"}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=headers)


def request_too_large(limit: int) -> JSONResponse:
    """The gateway's 413, in the shape Anthropic's API answers it, so the SDK raises it."""
    return anthropic_error(
        413,
        "request_too_large",
        f"the request is larger than the gateway's limit of {limit} bytes; "
        "shorten the conversation",
    )


def _usage_of(raw: object, base: Usage) -> Usage:
    """`base` with the counters present in an API usage object replaced (they are totals)."""
    if not isinstance(raw, dict):
        return base
    counters = {
        name: value
        for name in _USAGE_FIELDS
        if isinstance(value := raw.get(name), int) and value >= 0
    }
    return base.model_copy(update=counters) if counters else base


@dataclass
class SseUsageMeter:
    """Reads a Messages API event stream as it passes, without holding it.

    `feed` answers the complete events of what it was fed, so that a relay never passes on half
    an event; `usage` is what the stream has billed so far; `ended` says whether the stream
    ended as the API ends one, with message_stop or an error event.

    message_start counts the input at once, but the output is counted only by message_delta,
    near the end. A stream cut before it was still billed for what it streamed, so until then
    the output is estimated from the content deltas: a token per UTF-8 byte of their text,
    JSON, thinking or signature (a token is never less than a byte, the bound the gateway puts
    on input too), up to `max_output`, the call's `max_tokens`, which the API never exceeds.
    """

    max_output: int | None = None
    ended: bool = False
    _billed: Usage = field(default_factory=Usage)
    _final: bool = False
    _streamed_bytes: int = 0
    _partial: bytes = b""

    @property
    def usage(self) -> Usage:
        if self._final:
            return self._billed
        streamed = self._streamed_bytes
        if self.max_output is not None:
            streamed = min(streamed, self.max_output)
        if streamed <= self._billed.output_tokens:
            return self._billed
        return self._billed.model_copy(update={"output_tokens": streamed})

    def feed(self, chunk: bytes) -> bytes:
        self._partial += chunk
        *events, self._partial = self._partial.replace(b"\r\n", b"\n").split(b"\n\n")
        for event in events:
            name = _event_name(event)
            self.ended = self.ended or name in _LAST_EVENTS
            # Only message_start and message_delta carry usage; until the latter, the content
            # deltas are what the output is estimated from.
            if b'"usage"' in event or (name == b"content_block_delta" and not self._final):
                self._read(event)
        return b"".join(event + b"\n\n" for event in events)

    def _read(self, event: bytes) -> None:
        data = b"".join(
            line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")
        )
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        kind = payload.get("type")
        if kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self._billed = _usage_of(usage, self._billed)
        elif kind == "message_delta":
            self._billed = _usage_of(payload.get("usage"), self._billed)
            self._final = True
        elif kind == "content_block_delta" and isinstance(delta := payload.get("delta"), dict):
            self._streamed_bytes += sum(
                len(value.encode())
                for name, value in delta.items()
                if name != "type" and isinstance(value, str)
            )


def _event_name(event: bytes) -> bytes:
    for line in event.split(b"\n"):
        if line.startswith(b"event:"):
            return line[6:].strip()
    return b""


def stream_error(message: str) -> bytes:
    """An `error` event as the Messages API sends one mid-stream: the SDK raises it."""
    body = {"type": "error", "error": {"type": "api_error", "message": message}}
    return f"event: error\ndata: {json.dumps(body)}\n\n".encode()


class LlmGateway:
    """The upstream connection pool and the key: forwards a run's request and meters its usage.

    Every call forwarded holds a reservation of the run's budget (`Store.reserve_tokens`),
    which the gateway settles exactly once with what the call was billed: on the reply, on a
    failure, or, when the runner leaves mid-reply, in the background.
    """

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        upstream_url: str,
        timeout_seconds: float = 600.0,
        call_seconds: float = CALL_SECONDS,
    ) -> None:
        self._key = api_key
        self._call_seconds = call_seconds
        self._hold_seconds = call_seconds + timeout_seconds + SETTLE_SECONDS
        self._upstream = upstream_url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._settling: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        return self._key is not None

    def new_hold(self, holder: str) -> TokenHold:
        """A hold for one call that `holder` serves, outlasting the longest the call may take."""
        return TokenHold(new_id("hold"), holder, utcnow() + timedelta(seconds=self._hold_seconds))

    async def aclose(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self._http.aclose()

    @classmethod
    def from_settings(cls, settings: Settings) -> LlmGateway:
        return cls(api_key=settings.anthropic_key(), upstream_url=settings.anthropic_base_url)

    def _upstream_headers(self, request: Request) -> dict[str, str]:
        assert self._key is not None
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.startswith("anthropic-") or name in _FORWARDED_REQUEST
        }
        headers["x-api-key"] = self._key.get_secret_value()
        # Relayed bytes are metered for usage, so they must arrive uncompressed.
        headers["accept-encoding"] = "identity"
        return headers

    async def forward(
        self,
        request: Request,
        store: Store,
        run: Run,
        body: bytes,
        *,
        streamed: bool,
        hold: TokenHold,
        reserved: int,
        max_output: int,
    ) -> Response:
        """Send `body` upstream with the real key and relay the answer, settling `reserved`.

        `max_output` is the `max_tokens` sent upstream: the most output the call can be billed.
        """
        deadline = asyncio.get_running_loop().time() + self._call_seconds
        bill = _Bill(store, run.id, hold.id, reserved, max_output, deadline)
        try:
            return await self._forward(request, bill, body, streamed=streamed)
        finally:
            if not bill.handed_over:
                self._settle_later(bill)

    async def _forward(
        self, request: Request, bill: _Bill, body: bytes, *, streamed: bool
    ) -> Response:
        upstream = self._http.build_request(
            "POST",
            self._upstream + MESSAGES_PATH,
            content=body,
            headers=self._upstream_headers(request),
        )
        try:
            async with asyncio.timeout_at(bill.deadline):
                answer = await self._http.send(upstream, stream=True)
        except (httpx.HTTPError, TimeoutError) as exc:
            await self._settle_now(bill)
            return self._unreachable(exc)
        headers = {k: v for k, v in answer.headers.items() if k in _FORWARDED_RESPONSE}
        if streamed and answer.headers.get("content-type", "").startswith("text/event-stream"):
            bill.handed_over = True
            return StreamingResponse(
                self._relay(answer, bill), status_code=answer.status_code, headers=headers
            )
        try:
            async with asyncio.timeout_at(bill.deadline):
                content = await answer.aread()
        except (httpx.HTTPError, TimeoutError) as exc:
            await self._settle_now(bill)
            return self._unreachable(exc)
        finally:
            await answer.aclose()
        if answer.is_success:
            try:
                bill.usage = _usage_of(json.loads(content).get("usage"), Usage())
            except (ValueError, AttributeError):
                log.warning("upstream answer without readable usage", extra={"run_id": bill.run_id})
        # Settled before answering, so the run's next call sees it in the budget.
        await self._settle_now(bill)
        return Response(content, status_code=answer.status_code, headers=headers)

    def _unreachable(self, exc: httpx.HTTPError | TimeoutError) -> Response:
        return anthropic_error(
            502,
            "api_error",
            f"the gateway could not reach the Anthropic API at {self._upstream}: "
            f"{type(exc).__name__}",
            retry=True,
        )

    async def _relay(self, answer: httpx.Response, bill: _Bill) -> AsyncIterator[bytes]:
        """The upstream stream, whole events at a time; a cut one ends with an error event.

        A stream cut by the network or ended before message_stop cannot be passed on as it is:
        the SDK would take the partial message for a whole one. The error event makes it raise,
        and the runner retries the call.
        """
        meter = SseUsageMeter(max_output=bill.max_output)
        try:
            cut: str | None = None
            try:
                async for chunk in answer.aiter_raw():
                    if events := meter.feed(chunk):
                        yield events
                    # Checked between chunks (a stalled stream ends at the read timeout): no
                    # cancellation lands in the middle of relaying an event.
                    if asyncio.get_running_loop().time() > bill.deadline:
                        cut = f"took longer than the gateway's {self._call_seconds:g} s"
                        break
            except httpx.HTTPError as exc:
                cut = f"broke off ({type(exc).__name__})"
            if cut is None and not meter.ended:
                cut = "ended before message_stop"
            bill.usage = meter.usage
            if cut is not None:
                log.warning(
                    "the Anthropic API's stream %s",
                    cut,
                    extra={"run_id": bill.run_id, "usage": meter.usage.model_dump()},
                )
            # Settled before the response ends, so the run's next call (its retry, too) sees
            # it in the budget.
            await self._settle_now(bill)
            if cut is not None:
                yield stream_error(
                    f"the Anthropic API's stream {cut}; the partial reply is void, "
                    "send the request again"
                )
        finally:
            await answer.aclose()
            # A runner that left mid-reply: what the stream billed still counts.
            bill.usage = meter.usage
            self._settle_later(bill)

    async def _settle_now(self, bill: _Bill) -> None:
        """Settle before going on; a runner that leaves meanwhile does not cut it short.

        A request's task is cancelled when its client goes, and a store write cancelled
        halfway would lose the settlement.
        """
        if (task := self._settle_later(bill)) is not None:
            await asyncio.shield(task)

    def _settle_later(self, bill: _Bill) -> asyncio.Task[None] | None:
        """Settle without holding up the reply (nor being lost if the client leaves)."""
        if bill.settled:
            return None
        task = asyncio.get_running_loop().create_task(bill.settle())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)
        return task


@dataclass
class _Bill:
    """One forwarded call's reservation and what it was billed, settled exactly once."""

    store: Store
    run_id: str
    hold_id: str
    reserved: int
    max_output: int
    # The event loop's time by which the call ends, so that its hold is settled before it ends.
    deadline: float
    usage: Usage = field(default_factory=Usage)
    settled: bool = False
    # The relay of a streamed reply settles it, when the stream ends.
    handed_over: bool = False

    async def settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        if self.usage.total_tokens > self.reserved:
            # The input bound did not hold (tokens the API adds itself): the usage still counts.
            log.warning(
                "a call used more tokens than it reserved",
                extra={"run_id": self.run_id, "reserved": self.reserved, **self.usage.model_dump()},
            )
        try:
            await self.store.settle_tokens(self.run_id, self.hold_id, self.usage)
        except Exception:
            log.exception("settling a call's tokens failed", extra={"run_id": self.run_id})

"""The LLM gateway's upstream side: the only copy of the key, the connection pool, the meter.

It forwards a run's Messages API request upstream with the real key and relays the answer,
streamed replies chunk by chunk as they arrive. It reads the usage out of what it relays and
records it on the run, so budgets hold even against a runner that under-reports. The route
that admits a run's request is `agent_platform.api.gateway`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import httpx
from agent_runner.protocol import Usage
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from agent_platform.domain import Run
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


def anthropic_error(
    status: int, error_type: str, message: str, *, retry: bool = False
) -> JSONResponse:
    """An error in the Messages API's own shape, so the SDK raises it with this message."""
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return JSONResponse(
        body, status_code=status, headers={"x-should-retry": "true" if retry else "false"}
    )


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
    """Reads the usage out of a Messages API event stream as it passes, without holding it."""

    usage: Usage = field(default_factory=Usage)
    _partial: bytes = b""

    def feed(self, chunk: bytes) -> None:
        self._partial += chunk
        *events, self._partial = self._partial.replace(b"\r\n", b"\n").split(b"\n\n")
        for event in events:
            # Only message_start and message_delta carry usage; skip the deltas unparsed.
            if b'"usage"' in event:
                self._read(event)

    def _read(self, event: bytes) -> None:
        data = b"".join(
            line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")
        )
        try:
            payload = json.loads(data)
        except ValueError:
            return
        if payload.get("type") == "message_start":
            self.usage = _usage_of(payload.get("message", {}).get("usage"), self.usage)
        elif payload.get("type") == "message_delta":
            self.usage = _usage_of(payload.get("usage"), self.usage)


class LlmGateway:
    """The upstream connection pool and the key: forwards a run's request and meters its usage."""

    def __init__(
        self, *, api_key: SecretStr | None, upstream_url: str, timeout_seconds: float = 600.0
    ) -> None:
        self._key = api_key
        self._upstream = upstream_url.rstrip("/")
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=10.0),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._recording: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        return self._key is not None

    async def aclose(self) -> None:
        if self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)
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
        self, request: Request, store: Store, run: Run, body: bytes, *, streamed: bool
    ) -> Response:
        """Send `body` upstream with the real key and relay the answer, recording its usage."""
        upstream = self._http.build_request(
            "POST",
            self._upstream + MESSAGES_PATH,
            content=body,
            headers=self._upstream_headers(request),
        )
        try:
            answer = await self._http.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            return anthropic_error(
                502,
                "api_error",
                f"the gateway could not reach the Anthropic API at {self._upstream}: "
                f"{type(exc).__name__}",
                retry=True,
            )
        headers = {k: v for k, v in answer.headers.items() if k in _FORWARDED_RESPONSE}
        if streamed and answer.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(
                self._relay(answer, store, run.id), status_code=answer.status_code, headers=headers
            )
        try:
            content = await answer.aread()
        finally:
            await answer.aclose()
        if answer.is_success:
            try:
                usage = _usage_of(json.loads(content).get("usage"), Usage())
                # Recorded before answering, so the run's next call sees it in the budget.
                await _add_usage(store, run.id, usage)
            except (ValueError, AttributeError):
                log.warning("upstream answer without readable usage", extra={"run_id": run.id})
        return Response(content, status_code=answer.status_code, headers=headers)

    async def _relay(
        self, answer: httpx.Response, store: Store, run_id: str
    ) -> AsyncIterator[bytes]:
        meter = SseUsageMeter()
        finished = False
        try:
            async for chunk in answer.aiter_raw():
                meter.feed(chunk)
                yield chunk
            finished = True
        finally:
            await answer.aclose()
            if not finished:
                self._record(store, run_id, meter.usage)
        # Recorded before the response ends, so the run's next call sees it in the budget.
        if meter.usage.total_tokens:
            await _add_usage(store, run_id, meter.usage)

    def _record(self, store: Store, run_id: str, usage: Usage) -> None:
        """Record usage without holding up the reply (nor being lost if the client leaves)."""
        if usage.total_tokens == 0:
            return
        task = asyncio.get_running_loop().create_task(_add_usage(store, run_id, usage))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)


async def _add_usage(store: Store, run_id: str, usage: Usage) -> None:
    try:
        await store.add_usage(run_id, usage)
    except Exception:
        log.exception("recording usage failed", extra={"run_id": run_id})

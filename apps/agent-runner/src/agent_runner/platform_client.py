"""The runner's side of the platform's runner endpoints: assignment, workspace, events.

Transient failures (the platform restarting, a 5xx) are retried with backoff until a deadline;
a rejected token is final, because no retry can make a finished run live again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Final, TypeVar

import httpx

from agent_runner import protocol
from agent_runner.config import RunnerConfig

T = TypeVar("T")

_FIRST_BACKOFF: Final = 0.05
_MAX_BACKOFF: Final = 2.0
# What one read of a workspace archive on its way up holds in memory.
UPLOAD_CHUNK_BYTES: Final = 256 * 1024


class PlatformError(Exception):
    """The platform answered, and the answer was no; retrying will not change it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PlatformUnreachable(Exception):
    """The platform did not answer usefully before the deadline."""


def _message(response: httpx.Response) -> str:
    """The platform's `ErrorBody.message`; the start of the body if it is not that shape."""
    try:
        return protocol.ErrorBody.model_validate_json(response.content).message
    except ValueError:
        return response.text[:200]


def _check(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code == 401:
        raise PlatformError(
            401, f"the platform rejected the run token while {what}; the run is not live"
        )
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise httpx.HTTPStatusError(
            f"{what}: HTTP {response.status_code}", request=response.request, response=response
        )
    if response.status_code >= 400:
        raise PlatformError(
            response.status_code, f"{what}: HTTP {response.status_code}: {_message(response)}"
        )
    return response


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, deadline_seconds: float, what: str
) -> T:
    """Run attempt until it succeeds, a PlatformError, or the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    backoff = _FIRST_BACKOFF
    while True:
        try:
            return await attempt()
        except (httpx.TransportError, httpx.HTTPStatusError) as exc:
            if time.monotonic() + backoff > deadline:
                raise PlatformUnreachable(
                    f"the platform did not answer while {what}: {exc}"
                ) from exc
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


async def _chunks(archive: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(archive.read, UPLOAD_CHUNK_BYTES):
        yield chunk


class PlatformClient:
    def __init__(self, config: RunnerConfig, *, retry_seconds: float = 60.0) -> None:
        self._run_id = config.run_id
        self._retry_seconds = retry_seconds
        self._http = httpx.AsyncClient(
            base_url=config.platform_url,
            headers={"authorization": f"Bearer {config.run_token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )

    def _path(self, template: str) -> str:
        return template.format(run_id=self._run_id)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def assignment(self) -> protocol.Assignment:
        async def attempt() -> protocol.Assignment:
            response = await self._http.get(self._path(protocol.ASSIGNMENT_PATH))
            return protocol.Assignment.model_validate_json(
                _check(response, "fetching the assignment").content
            )

        return await with_retries(
            attempt, deadline_seconds=self._retry_seconds, what="fetching the assignment"
        )

    async def download_workspace(self) -> bytes | None:
        """The agent's workspace archive, or None when the agent has none yet."""

        async def attempt() -> bytes | None:
            response = await self._http.get(self._path(protocol.WORKSPACE_PATH))
            _check(response, "downloading the workspace")
            return None if response.status_code == 204 else response.content

        return await with_retries(
            attempt, deadline_seconds=self._retry_seconds, what="downloading the workspace"
        )

    async def upload_workspace(
        self, archive: IO[bytes], size: int, *, deadline_seconds: float
    ) -> None:
        """Send the archive (a seekable file of `size` bytes) in chunks, from its start."""

        async def attempt() -> None:
            archive.seek(0)
            response = await self._http.put(
                self._path(protocol.WORKSPACE_PATH),
                content=_chunks(archive),
                # Declared, so that the platform refuses a workspace past its limit at once.
                headers={"content-type": "application/gzip", "content-length": str(size)},
            )
            _check(response, "uploading the workspace")

        await with_retries(
            attempt, deadline_seconds=deadline_seconds, what="uploading the workspace"
        )

    async def post_events(self, batch: protocol.EventBatch) -> protocol.BatchAck:
        """One attempt; the reporter owns retrying, because it keeps buffering meanwhile."""
        response = await self._http.post(
            self._path(protocol.EVENTS_PATH),
            content=batch.model_dump_json(),
            headers={"content-type": "application/json"},
        )
        return protocol.BatchAck.model_validate_json(_check(response, "reporting events").content)

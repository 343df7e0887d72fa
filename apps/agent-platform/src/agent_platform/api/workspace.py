"""The runner's workspace endpoints: download at start, upload at the end.

Both need the token of the live run named in the path; the workspace is the run's agent's.
Archives pass through in chunks and a temporary file, never whole in memory. An upload is
checked before it replaces anything (a readable gzipped tar within the size limits, packed and
unpacked, every entry inside the workspace), so a bad one is refused with a clear error and the
agent keeps the workspace it had.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from agent_runner import protocol
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agent_platform.api.archive_stream import chunks
from agent_platform.api.deps import PathRunDep, ServicesDep
from agent_platform.api.schemas import Responses
from agent_platform.workspaces import (
    UNREADABLE,
    UnsafeWorkspaceEntry,
    WorkspaceTooLarge,
    archive_size,
    checked,
    limits_of,
    temporary_archive,
)

router = APIRouter(tags=["runner"])
TOKEN_REFUSED: Responses = {401: {"description": "the run token is unknown or not this run's"}}
KEPT = "the agent keeps its previous workspace"


@router.get(protocol.WORKSPACE_PATH, responses=TOKEN_REFUSED)
async def download(run: PathRunDep, services: ServicesDep) -> Response:
    """The agent's workspace as a gzipped tar; 204 before its first run."""
    opened = AsyncExitStack()
    try:
        archive = await opened.enter_async_context(services.blobs.reading(run.agent_id))
        size = None if archive is None else await asyncio.to_thread(archive_size, archive)
    except BaseException:
        await opened.aclose()
        raise
    if archive is None:
        await opened.aclose()
        return Response(status_code=204)
    return StreamingResponse(
        chunks(opened, archive, b""),
        media_type="application/gzip",
        headers={"Content-Length": str(size)},
    )


@router.put(
    protocol.WORKSPACE_PATH,
    status_code=204,
    responses={
        **TOKEN_REFUSED,
        400: {"description": "not a gzipped tar, or an entry would land outside the workspace"},
        413: {"description": "larger (packed or unpacked) than a workspace may be"},
    },
)
async def upload(run: PathRunDep, request: Request, services: ServicesDep) -> Response:
    """Replace the agent's workspace with the request body, a gzipped tar."""
    limits = limits_of(services.settings)
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limits.archive_bytes:
        raise HTTPException(
            413, f"{WorkspaceTooLarge.archive(int(declared), limits.archive_bytes)}; {KEPT}"
        )
    with await asyncio.to_thread(temporary_archive) as archive:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > limits.archive_bytes:
                too_large = WorkspaceTooLarge.archive(received, limits.archive_bytes)
                raise HTTPException(413, f"{too_large}; {KEPT}")
            await asyncio.to_thread(archive.write, chunk)
        try:
            files = await asyncio.to_thread(checked, archive, limits)
        except UNREADABLE:
            raise HTTPException(
                400, "the workspace upload is not a gzipped tar archive; the workspace is unchanged"
            ) from None
        except UnsafeWorkspaceEntry as unsafe:
            raise HTTPException(400, f"the workspace cannot be kept: {unsafe}; {KEPT}") from None
        except WorkspaceTooLarge as too_large:
            raise HTTPException(413, f"{too_large}; {KEPT}") from None
        await services.blobs.put(run.agent_id, archive, files)
    return Response(status_code=204)

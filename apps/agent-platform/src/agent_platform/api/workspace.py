"""The runner's workspace endpoints: download at start, upload at the end.

Both need the token of the live run named in the path; the workspace is the run's agent's.
An upload is checked (size, a readable gzipped tar) before it replaces anything, so a bad one
is refused with a clear error and the agent keeps the workspace it had.
"""

from __future__ import annotations

import asyncio
import tarfile
import zlib

from agent_runner import protocol
from fastapi import APIRouter, HTTPException
from starlette.requests import Request
from starlette.responses import Response

from agent_platform.api.deps import PathRunDep, ServicesDep
from agent_platform.api.schemas import Responses
from agent_platform.workspaces import WorkspaceTooLarge, list_files

router = APIRouter(tags=["runner"])
TOKEN_REFUSED: Responses = {401: {"description": "the run token is unknown or not this run's"}}


@router.get(protocol.WORKSPACE_PATH, responses=TOKEN_REFUSED)
async def download(run: PathRunDep, services: ServicesDep) -> Response:
    """The agent's workspace as a gzipped tar; 204 before its first run."""
    archive = await services.blobs.get(run.agent_id)
    if archive is None:
        return Response(status_code=204)
    return Response(archive, media_type="application/gzip")


@router.put(
    protocol.WORKSPACE_PATH,
    status_code=204,
    responses={
        **TOKEN_REFUSED,
        400: {"description": "not a gzipped tar"},
        413: {"description": "larger than a workspace may be"},
    },
)
async def upload(run: PathRunDep, request: Request, services: ServicesDep) -> Response:
    """Replace the agent's workspace with the request body, a gzipped tar."""
    max_bytes = services.settings.workspace_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, str(WorkspaceTooLarge(int(declared), max_bytes)))
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > max_bytes:
            raise HTTPException(413, str(WorkspaceTooLarge(len(received), max_bytes)))
    archive = bytes(received)
    try:
        await asyncio.to_thread(list_files, archive)
    except (tarfile.TarError, zlib.error, EOFError, OSError):
        raise HTTPException(
            400, "the workspace upload is not a gzipped tar archive; the workspace is unchanged"
        ) from None
    try:
        await services.blobs.put(run.agent_id, archive)
    except WorkspaceTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    return Response(status_code=204)

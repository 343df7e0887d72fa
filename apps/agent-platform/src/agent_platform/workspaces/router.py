"""The runner-facing workspace endpoints: download at start, upload at the end.

Both need the token of the live run named in the path; the workspace is the run's agent's.
An upload is checked (size, a readable gzipped tar) before it replaces anything, so a bad one
is refused with a clear error and the agent keeps the workspace it had.
"""

from __future__ import annotations

import asyncio
import tarfile
import zlib

from agent_runner import protocol
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agent_platform.api.deps import get_services
from agent_platform.auth import Unauthenticated, bearer_of, resolve_run_token
from agent_platform.domain import Run
from agent_platform.workspaces.blob_store import BlobStore, WorkspaceTooLarge, list_files


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


class WorkspaceEndpoints:
    def __init__(self, blobs: BlobStore, *, max_bytes: int) -> None:
        self._blobs = blobs
        self._max_bytes = max_bytes
        self.router = APIRouter(tags=["runner"])
        self.router.add_api_route(protocol.WORKSPACE_PATH, self.download, methods=["GET"])
        self.router.add_api_route(protocol.WORKSPACE_PATH, self.upload, methods=["PUT"])

    async def _run(self, request: Request, run_id: str) -> Run | None:
        secret = bearer_of(request)
        if secret is None:
            return None
        try:
            run = await resolve_run_token(get_services(request).store, secret)
        except Unauthenticated:
            return None
        return run if run.id == run_id else None

    async def download(self, run_id: str, request: Request) -> Response:
        run = await self._run(request, run_id)
        if run is None:
            return _problem(401, "a live run's token is required for its workspace")
        archive = await self._blobs.get(run.agent_id)
        if archive is None:
            return Response(status_code=204)
        return Response(archive, media_type="application/gzip")

    async def upload(self, run_id: str, request: Request) -> Response:
        run = await self._run(request, run_id)
        if run is None:
            return _problem(401, "a live run's token is required for its workspace")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            return _problem(413, str(WorkspaceTooLarge(int(declared), self._max_bytes)))
        received = bytearray()
        async for chunk in request.stream():
            received.extend(chunk)
            if len(received) > self._max_bytes:
                return _problem(413, str(WorkspaceTooLarge(len(received), self._max_bytes)))
        archive = bytes(received)
        try:
            await asyncio.to_thread(list_files, archive)
        except (tarfile.TarError, zlib.error, EOFError, OSError):
            return _problem(
                400, "the workspace upload is not a gzipped tar archive; the workspace is unchanged"
            )
        try:
            await self._blobs.put(run.agent_id, archive)
        except WorkspaceTooLarge as exc:
            return _problem(413, str(exc))
        return Response(status_code=204)

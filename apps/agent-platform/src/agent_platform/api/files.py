"""An agent's workspace files for its owner: list, read or download one, upload one.

Files are served as inert bytes (plain text or octet-stream, `nosniff`, a sandboxing CSP), so a
page the agent wrote can never run as the dashboard. An upload is refused while the agent has a
queued or running run, whose own upload at the end would otherwise replace it.
"""

from __future__ import annotations

import asyncio
import tarfile
import zlib
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from agent_platform.api.agents import NOT_FOUND, owned_agent
from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.dashboard.archive_files import (
    InvalidWorkspacePath,
    PathIsDirectory,
    checked_path,
    with_file,
)
from agent_platform.domain import ACTIVE, utcnow
from agent_platform.workspaces import (
    WorkspaceFile,
    WorkspaceFileNotFound,
    WorkspaceTooLarge,
    list_files,
    read_file,
)

UNREADABLE = (tarfile.TarError, zlib.error, EOFError, OSError)
DAMAGED = "the agent's workspace archive is damaged and cannot be read"


class FileOut(BaseModel):
    path: str
    size: int
    is_dir: bool

    @classmethod
    def of(cls, file: WorkspaceFile) -> FileOut:
        return cls(path=file.path, size=file.size, is_dir=file.is_dir)


class FileList(BaseModel):
    items: list[FileOut]


def _inert(data: bytes, name: str, download: bool) -> Response:
    try:
        data.decode("utf-8")
        media_type = "text/plain; charset=utf-8"
    except UnicodeDecodeError:
        media_type = "application/octet-stream"
    disposition = "attachment" if download else "inline"
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "no-store",
        },
    )


router = APIRouter(prefix="/api/agents/{agent_id}/files", tags=["workspace"])


@router.get("", responses=NOT_FOUND, summary="List workspace files")
async def listing(agent_id: str, user: UserDep, services: ServicesDep) -> FileList:
    """The files and folders in the agent's workspace, by path; empty before its first run."""
    await owned_agent(services, user, agent_id)
    archive = await services.blobs.get(agent_id)
    if archive is None:
        return FileList(items=[])
    try:
        files = await asyncio.to_thread(list_files, archive)
    except UNREADABLE:
        raise HTTPException(500, DAMAGED) from None
    return FileList(items=[FileOut.of(f) for f in files])


@router.get(
    "/{path:path}",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"application/octet-stream": {}}}},
    summary="Read or download a workspace file",
)
async def read(
    agent_id: str,
    path: str,
    user: UserDep,
    services: ServicesDep,
    download: Annotated[bool, Query(description="As an attachment, to save")] = False,
) -> Response:
    """One file's bytes: text as text/plain, anything else as application/octet-stream."""
    await owned_agent(services, user, agent_id)
    archive = await services.blobs.get(agent_id)
    if archive is None:
        raise HTTPException(404, f"{path} is not in the workspace: it has no files yet")
    try:
        data = await asyncio.to_thread(read_file, archive, path)
    except WorkspaceFileNotFound as missing:
        raise HTTPException(404, str(missing)) from None
    except UNREADABLE:
        raise HTTPException(500, DAMAGED) from None
    return _inert(data, path.rsplit("/", 1)[-1], download)


@router.put(
    "/{path:path}",
    status_code=201,
    responses={
        **NOT_FOUND,
        409: {"description": "the agent has an active run, or the path is a folder"},
        413: {"description": "the workspace would exceed its size limit"},
    },
    summary="Upload a file into the workspace",
)
async def upload(
    agent_id: str, path: str, request: Request, user: UserDep, services: ServicesDep
) -> FileOut:
    """Put the request body at `path`, replacing a file already there."""
    await owned_agent(services, user, agent_id)
    try:
        name = checked_path(path)
    except InvalidWorkspacePath as invalid:
        raise HTTPException(422, str(invalid)) from None
    if await services.store.list_runs(user.id, agent_id=agent_id, statuses=ACTIVE, limit=1):
        raise HTTPException(
            409,
            "the agent has a queued or running run, which would overwrite this upload when "
            "it ends; upload once it has finished",
        )
    data = await request.body()
    archive = await services.blobs.get(agent_id)
    try:
        updated = await asyncio.to_thread(with_file, archive, name, data, utcnow())
    except (InvalidWorkspacePath, PathIsDirectory) as refused:
        raise HTTPException(409, str(refused)) from None
    except UNREADABLE:
        raise HTTPException(500, f"{DAMAGED}; nothing was added to it") from None
    if len(updated) > services.settings.workspace_max_bytes:
        raise HTTPException(
            413, str(WorkspaceTooLarge(len(updated), services.settings.workspace_max_bytes))
        )
    try:
        await services.blobs.put(agent_id, updated)
    except WorkspaceTooLarge as too_large:
        raise HTTPException(413, str(too_large)) from None
    return FileOut(path=name, size=len(data), is_dir=False)

"""An agent's workspace for its owner: list, read or download a file, upload or delete one, reset.

Files are served as inert bytes (plain text or octet-stream, `nosniff`, a sandboxing CSP), so a
page the agent wrote can never run as the dashboard, and in chunks, so a huge file costs the
platform no more memory than a small one. A change is refused while the agent has a queued or
running run, whose own upload at the end would otherwise replace it.
"""

from __future__ import annotations

import asyncio
import codecs
from contextlib import AsyncExitStack
from typing import Annotated, Final
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from agent_platform.api.agents import NOT_FOUND, owned_agent
from agent_platform.api.archive_stream import chunks
from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.dashboard.archive_files import (
    InvalidWorkspacePath,
    PathIsDirectory,
    checked_path,
    with_file,
    without,
)
from agent_platform.domain import ACTIVE, User, utcnow
from agent_platform.services import Services
from agent_platform.workspaces import (
    UNREADABLE,
    Archive,
    UnsafeWorkspaceEntry,
    WorkspaceFile,
    WorkspaceFileNotFound,
    WorkspaceTooLarge,
    checked,
    limits_of,
    list_files,
    member_reader,
    temporary_archive,
)

DAMAGED = (
    "the agent's workspace archive is damaged and cannot be read; reset the workspace "
    "(DELETE /api/agents/{agent_id}/workspace) to start it afresh"
)
# How much of a file decides whether it is served as text: all of it, up to this.
SNIFF_BYTES: Final = 64 * 1024


class FileOut(BaseModel):
    path: str
    size: int
    is_dir: bool
    # Where a symbolic link points, relative to its folder; null for files and folders.
    link_target: str | None = None

    @classmethod
    def of(cls, file: WorkspaceFile) -> FileOut:
        return cls(path=file.path, size=file.size, is_dir=file.is_dir, link_target=file.link_target)


class FileList(BaseModel):
    items: list[FileOut]


def _media_type(head: bytes, whole: bool) -> str:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=whole)
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def _inert_headers(name: str, download: bool, size: int) -> dict[str, str]:
    disposition = "attachment" if download else "inline"
    return {
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "Content-Length": str(size),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
        "Cache-Control": "no-store",
    }


def _damaged(agent_id: str, suffix: str = "") -> HTTPException:
    return HTTPException(500, DAMAGED.format(agent_id=agent_id) + suffix)


async def _no_active_run(services: Services, user: User, agent_id: str) -> None:
    if await services.store.list_runs(user.id, agent_id=agent_id, statuses=ACTIVE, limit=1):
        raise HTTPException(
            409,
            "the agent has a queued or running run, which would overwrite this change when "
            "it ends; try again once it has finished",
        )


router = APIRouter(prefix="/api/agents/{agent_id}", tags=["workspace"])


@router.get("/files", responses=NOT_FOUND, summary="List workspace files")
async def listing(agent_id: str, user: UserDep, services: ServicesDep) -> FileList:
    """The files, folders and links in the agent's workspace, by path; empty before a run."""
    await owned_agent(services, user, agent_id)
    files = await services.blobs.listing(agent_id)
    if files is None:
        # No listing stored with the archive (one stored before listings were): read it.
        async with services.blobs.reading(agent_id) as archive:
            if archive is None:
                return FileList(items=[])
            try:
                files = await asyncio.to_thread(list_files, archive)
            except UNREADABLE:
                raise _damaged(agent_id) from None
    return FileList(items=[FileOut.of(f) for f in sorted(files, key=lambda f: f.path)])


@router.get(
    "/files/{path:path}",
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
) -> StreamingResponse:
    """One file's bytes: text as text/plain, anything else as application/octet-stream."""
    await owned_agent(services, user, agent_id)
    opened = AsyncExitStack()
    try:
        archive = await opened.enter_async_context(services.blobs.reading(agent_id))
        if archive is None:
            raise HTTPException(404, f"{path} is not in the workspace: it has no files yet")
        size, reader = await asyncio.to_thread(opened.enter_context, member_reader(archive, path))
        head = await asyncio.to_thread(reader.read, SNIFF_BYTES)
    except BaseException as failure:
        await opened.aclose()
        if isinstance(failure, WorkspaceFileNotFound):
            raise HTTPException(404, str(failure)) from None
        if isinstance(failure, UNREADABLE):
            raise _damaged(agent_id) from None
        raise
    return StreamingResponse(
        chunks(opened, reader, head),
        media_type=_media_type(head, whole=len(head) == size),
        headers=_inert_headers(path.rsplit("/", 1)[-1], download, size),
    )


async def _replace(services: Services, agent_id: str, updated: Archive) -> None:
    """Store an archive the user's change produced, if it stays within the limits."""
    try:
        files = await asyncio.to_thread(checked, updated, limits_of(services.settings))
        await services.blobs.put(agent_id, updated, files)
    except WorkspaceTooLarge as too_large:
        raise HTTPException(413, f"{too_large}; the workspace is unchanged") from None
    except UnsafeWorkspaceEntry as unsafe:
        raise HTTPException(
            409,
            f"the workspace holds an entry no run can unpack: {unsafe}; delete it "
            f"(DELETE /api/agents/{agent_id}/files/{unsafe.path}) or reset the workspace first",
        ) from None


@router.put(
    "/files/{path:path}",
    status_code=201,
    responses={
        **NOT_FOUND,
        409: {"description": "the agent has an active run, or the path is a folder"},
        413: {"description": "the workspace would exceed its size limits"},
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
    await _no_active_run(services, user, agent_id)
    # Bounded by the API's body limit (AGENT_PLATFORM_MAX_BODY_BYTES) before it is read.
    data = await request.body()
    async with services.blobs.reading(agent_id) as archive:
        with await asyncio.to_thread(temporary_archive) as updated:
            try:
                await asyncio.to_thread(with_file, archive, name, data, utcnow(), updated)
            except (InvalidWorkspacePath, PathIsDirectory) as refused:
                raise HTTPException(409, str(refused)) from None
            except UNREADABLE:
                raise _damaged(agent_id, "; nothing was added to it") from None
            await _replace(services, agent_id, updated)
    return FileOut(path=name, size=len(data), is_dir=False)


@router.delete(
    "/files/{path:path}",
    status_code=204,
    responses={
        **NOT_FOUND,
        409: {"description": "the agent has an active run"},
    },
    summary="Delete a file, link or folder from the workspace",
)
async def delete(agent_id: str, path: str, user: UserDep, services: ServicesDep) -> Response:
    """Remove the entry at `path` (a folder with everything in it), even one no run can unpack."""
    await owned_agent(services, user, agent_id)
    await _no_active_run(services, user, agent_id)
    async with services.blobs.reading(agent_id) as archive:
        if archive is None:
            raise HTTPException(404, f"{path} is not in the workspace: it has no files yet")
        with await asyncio.to_thread(temporary_archive) as updated:
            try:
                removed = await asyncio.to_thread(without, archive, path, updated)
            except UNREADABLE:
                raise _damaged(agent_id, "; nothing was deleted from it") from None
            if not removed:
                raise HTTPException(404, f"{path} is not in the workspace")
            files = await asyncio.to_thread(list_files, updated)
            await services.blobs.put(agent_id, updated, files)
    return Response(status_code=204)


@router.delete(
    "/workspace",
    status_code=204,
    responses={**NOT_FOUND, 409: {"description": "the agent has an active run"}},
    summary="Reset the workspace",
)
async def reset(agent_id: str, user: UserDep, services: ServicesDep) -> Response:
    """Delete every file of the agent's workspace: its next run starts in an empty one."""
    await owned_agent(services, user, agent_id)
    await _no_active_run(services, user, agent_id)
    await services.blobs.delete(agent_id)
    return Response(status_code=204)

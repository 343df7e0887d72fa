"""Workspaces as files under `<data_dir>/workspaces`: the embedded default."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO

from agent_platform.workspaces.blob_store import (
    CHUNK_BYTES,
    DEFAULT_MAX_BYTES,
    Archive,
    WorkspaceFile,
    WorkspaceTooLarge,
    archive_size,
    listing_document,
    listing_of,
)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class LocalBlobStore:
    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._root = root
        self.max_bytes = max_bytes

    def _path(self, agent_id: str) -> Path:
        if not _SAFE_ID.match(agent_id):
            raise ValueError(f"{agent_id!r} is not an agent id")
        return self._root / f"{agent_id}.tar.gz"

    def _listing_path(self, agent_id: str) -> Path:
        return self._path(agent_id).with_name(f"{agent_id}.files.json")

    @asynccontextmanager
    async def reading(self, agent_id: str) -> AsyncIterator[Archive | None]:
        # An open file keeps the workspace it was opened on, even if an upload replaces it.
        path = self._path(agent_id)
        try:
            archive = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            archive = None
        try:
            yield archive
        finally:
            if archive is not None:
                archive.close()

    async def put(self, agent_id: str, archive: Archive, files: Sequence[WorkspaceFile]) -> None:
        size = archive_size(archive)
        if size > self.max_bytes:
            raise WorkspaceTooLarge.archive(size, self.max_bytes)
        await asyncio.to_thread(self._write, agent_id, archive, files)

    def _write(self, agent_id: str, archive: Archive, files: Sequence[WorkspaceFile]) -> None:
        path = self._path(agent_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Stamped before the rename, which keeps the file's inode and times: a stat taken after
        # could already see another upload's archive.
        stamp = _replace(path, lambda out: shutil.copyfileobj(archive, out, CHUNK_BYTES))
        _replace(
            self._listing_path(agent_id), lambda out: out.write(listing_document(stamp, files))
        )

    async def listing(self, agent_id: str) -> list[WorkspaceFile] | None:
        return await asyncio.to_thread(self._read_listing, agent_id)

    def _read_listing(self, agent_id: str) -> list[WorkspaceFile] | None:
        try:
            stamp = _stamp(self._path(agent_id).stat())
            document = self._listing_path(agent_id).read_bytes()
        except FileNotFoundError:
            return None
        return listing_of(document, stamp)

    async def delete(self, agent_id: str) -> None:
        await asyncio.to_thread(self._path(agent_id).unlink, missing_ok=True)
        await asyncio.to_thread(self._listing_path(agent_id).unlink, missing_ok=True)


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def _replace(path: Path, write: Callable[[IO[bytes]], object]) -> str:
    """Write a file then rename it over `path`, so a reader sees the old or the new, never half.

    Returns the new file's stamp.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            stamp = _stamp(os.fstat(out.fileno()))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return stamp

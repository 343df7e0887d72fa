"""Workspaces as files under `<data_dir>/workspaces`: the embedded default."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from agent_platform.workspaces.blob_store import (
    CHUNK_BYTES,
    DEFAULT_MAX_BYTES,
    Archive,
    WorkspaceTooLarge,
    archive_size,
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

    async def put(self, agent_id: str, archive: Archive) -> None:
        size = archive_size(archive)
        if size > self.max_bytes:
            raise WorkspaceTooLarge.archive(size, self.max_bytes)
        await asyncio.to_thread(self._write, self._path(agent_id), archive)

    @staticmethod
    def _write(path: Path, archive: Archive) -> None:
        # Write then rename, so a reader sees the old workspace or the new one, never half.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(archive, out, CHUNK_BYTES)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def delete(self, agent_id: str) -> None:
        await asyncio.to_thread(self._path(agent_id).unlink, missing_ok=True)

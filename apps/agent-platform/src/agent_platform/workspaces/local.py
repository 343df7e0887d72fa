"""Workspaces as files under `<data_dir>/workspaces`: the embedded default."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from agent_platform.workspaces.blob_store import DEFAULT_MAX_BYTES, WorkspaceTooLarge

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class LocalBlobStore:
    def __init__(self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._root = root
        self.max_bytes = max_bytes

    def _path(self, agent_id: str) -> Path:
        if not _SAFE_ID.match(agent_id):
            raise ValueError(f"{agent_id!r} is not an agent id")
        return self._root / f"{agent_id}.tar.gz"

    async def get(self, agent_id: str) -> bytes | None:
        path = self._path(agent_id)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def put(self, agent_id: str, archive: bytes) -> None:
        if len(archive) > self.max_bytes:
            raise WorkspaceTooLarge(len(archive), self.max_bytes)
        await asyncio.to_thread(self._write, self._path(agent_id), archive)

    @staticmethod
    def _write(path: Path, archive: bytes) -> None:
        # Write then rename, so a reader sees the old workspace or the new one, never half.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(archive)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    async def delete(self, agent_id: str) -> None:
        await asyncio.to_thread(self._path(agent_id).unlink, missing_ok=True)

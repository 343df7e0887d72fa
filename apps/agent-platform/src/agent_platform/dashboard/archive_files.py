"""Putting one file into a workspace archive, in memory: how a user adds files between runs.

The archive keeps the runner's format (a gzipped tar of paths relative to the workspace root),
so the next run unpacks the new file beside the agent's own.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from datetime import datetime
from typing import Final

MAX_PATH_CHARS: Final = 1000


class InvalidWorkspacePath(Exception):
    """The path cannot name a file inside a workspace; the message says why."""


class PathIsDirectory(Exception):
    """The path names a directory of the workspace, so no file can be written there."""


def checked_path(path: str) -> str:
    """The path as stored in the archive: relative, `/`-separated, without `.` or `..`."""
    if not path or len(path) > MAX_PATH_CHARS:
        raise InvalidWorkspacePath(
            f"a workspace path has 1 to {MAX_PATH_CHARS} characters, such as notes/todo.md"
        )
    if any(ord(c) < 32 or c == "\\" for c in path):
        raise InvalidWorkspacePath(
            "a workspace path cannot hold control characters or backslashes; use / between folders"
        )
    if path.startswith("/"):
        raise InvalidWorkspacePath(
            f"{path} is absolute; give the path relative to the workspace, such as notes/todo.md"
        )
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidWorkspacePath(
            f"{path} has an empty, `.` or `..` segment; give a plain relative path"
        )
    return "/".join(parts)


def _directory(name: str, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = int(mtime)
    return info


def with_file(archive: bytes | None, path: str, data: bytes, now: datetime) -> bytes:
    """A copy of the archive (None: an empty workspace) with `data` at `path`, replacing it."""
    name = checked_path(path)
    mtime = now.timestamp()
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        present: set[str] = set()
        files: set[str] = set()
        if archive is not None:
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as source:
                for member in source.getmembers():
                    if member.name == name and member.isdir():
                        raise PathIsDirectory(
                            f"{name} is a folder in the workspace; choose a file name inside it"
                        )
                    if member.name == name:
                        continue
                    present.add(member.name)
                    if not member.isdir():
                        files.add(member.name)
                    out.addfile(member, source.extractfile(member) if member.isfile() else None)
        parents = name.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            folder = "/".join(parents[:depth])
            if folder in files:
                raise InvalidWorkspacePath(
                    f"{folder} is a file in the workspace, so it cannot hold {name}"
                )
            if folder not in present:
                out.addfile(_directory(folder, mtime))
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(mtime)
        out.addfile(info, io.BytesIO(data))
    return buffer.getvalue()

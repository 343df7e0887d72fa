"""Putting one file into a workspace archive, or taking one out: how a user edits between runs.

The archive keeps the runner's format (a gzipped tar of paths relative to the workspace root),
so the next run unpacks the new file beside the agent's own. A copy is written member by member
from one file to another, so no member is ever held whole in memory.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from agent_platform.workspaces import Archive, BoundedTarInfo

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


@contextmanager
def _rewriting(archive: Archive | None, out: Archive) -> Iterator[_Rewrite]:
    """A new archive written into `out`, with the members of `archive` (if any) to copy over."""
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        if archive is None:
            yield _Rewrite(None, tar)
        else:
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:gz", tarinfo=BoundedTarInfo) as source:
                yield _Rewrite(source, tar)
    out.seek(0)


@dataclass
class _Rewrite:
    source: tarfile.TarFile | None
    out: tarfile.TarFile

    def members(self) -> Iterator[tarfile.TarInfo]:
        """The old archive's members, read front to back once."""
        if self.source is None:
            return
        while (member := self.source.next()) is not None:
            yield member

    def copy(self, member: tarfile.TarInfo) -> None:
        assert self.source is not None
        contents = self.source.extractfile(member) if member.isreg() else None
        self.out.addfile(member, contents)


def with_file(archive: Archive | None, path: str, data: bytes, now: datetime, out: Archive) -> None:
    """Write into `out` a copy of the archive (None: an empty workspace) with `data` at `path`."""
    name = checked_path(path)
    mtime = now.timestamp()
    present: set[str] = set()
    files: set[str] = set()
    with _rewriting(archive, out) as rewrite:
        for member in rewrite.members():
            if member.name == name and member.isdir():
                raise PathIsDirectory(
                    f"{name} is a folder in the workspace; choose a file name inside it"
                )
            if member.name == name:
                continue
            present.add(member.name)
            if not member.isdir():
                files.add(member.name)
            rewrite.copy(member)
        parents = name.split("/")[:-1]
        for depth in range(1, len(parents) + 1):
            folder = "/".join(parents[:depth])
            if folder in files:
                raise InvalidWorkspacePath(
                    f"{folder} is a file in the workspace, so it cannot hold {name}"
                )
            if folder not in present:
                rewrite.out.addfile(_directory(folder, mtime))
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(mtime)
        rewrite.out.addfile(info, io.BytesIO(data))


def without(archive: Archive, path: str, out: Archive) -> list[str]:
    """Write into `out` a copy of the archive without the entry at `path`; the paths removed.

    The entry is matched by its name as stored, whatever it is, so that an entry no run can
    unpack (a link out of the workspace, a path with `..`) can be removed too. A folder goes
    with everything in it. A hard link to a removed file (as an older runner packed a second
    name of a file) becomes that file: the first such link gets its contents, later ones link
    to it, so no entry is left naming a file that is gone.
    """
    name = path.strip("/")

    def goes(stored: str) -> bool:
        return stored == name or stored.startswith(f"{name}/")

    heirs = _heirs(archive, goes)
    removed: list[str] = []
    with _rewriting(archive, out) as rewrite:
        for member in rewrite.members():
            stored = member.name.strip("/")
            target = member.linkname.strip("/")
            if goes(stored):
                removed.append(member.name)
                if member.isreg() and stored in heirs:
                    contents = rewrite.source.extractfile(member) if rewrite.source else None
                    member.name = heirs[stored]
                    rewrite.out.addfile(member, contents)
            elif member.islnk() and target in heirs:
                if stored != heirs[target]:  # the heir itself was written with the contents
                    member.linkname = heirs[target]
                    rewrite.copy(member)
            else:
                rewrite.copy(member)
    return removed


def _heirs(archive: Archive, goes: Callable[[str], bool]) -> dict[str, str]:
    """For each file about to be removed, the first kept hard link to it: it takes the contents."""
    heirs: dict[str, str] = {}
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r:gz", tarinfo=BoundedTarInfo) as source:
        while (member := source.next()) is not None:
            target = member.linkname.strip("/")
            if member.islnk() and goes(target) and not goes(member.name.strip("/")):
                heirs.setdefault(target, member.name.strip("/"))
    return heirs

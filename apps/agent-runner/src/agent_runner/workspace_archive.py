"""The workspace travels as a gzipped tar: packed deterministically, unpacked without escaping.

Packing the same tree twice gives the same bytes (sorted entries, no gzip timestamp, owner
names dropped), so the runner can tell whether the agent changed anything and skip the upload.
The archive is packed into a temporary file, never into memory. Hard links are packed as the
files they name, each whole. A symbolic link is kept when it points inside the workspace and
left out when it does not: the next run could not unpack it, and the platform would refuse the
whole workspace for it. Where a link leads is judged on the real path, with every link on the
way followed (`s -> .` makes `s/..` the workspace's parent), not on the text of its target.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Final

# What one read of a packed archive holds in memory, to hash it or to send it.
CHUNK_BYTES: Final = 256 * 1024


class ArchiveError(Exception):
    """The archive cannot be unpacked safely; nothing outside the workspace was touched."""


@dataclass(frozen=True)
class LeftOut:
    """A link that was not packed, because following it would leave the workspace."""

    path: str
    target: str

    def __str__(self) -> str:
        return f"{self.path} (a link to {self.target}, outside the workspace)"


@dataclass(frozen=True)
class Packed:
    """What was packed into a file: its digest and size, and the links left out."""

    digest: str
    size: int
    left_out: tuple[LeftOut, ...] = ()


def scratch_file() -> IO[bytes]:
    """A file to pack into, deleted when closed: under the temporary directory and nameless
    there, so it is never part of the workspace it holds, however large it grows."""
    return tempfile.TemporaryFile(prefix="workspace-")


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def points_outside(link: PurePosixPath, target: str) -> bool:
    """Whether a link at `link` (relative to the root) to `target` resolves outside the root."""
    if PurePosixPath(target).is_absolute():
        return True
    depth = len(link.parent.parts)
    for part in PurePosixPath(target).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def _add(tar: tarfile.TarFile, path: Path, arcname: str) -> None:
    info = _normalised(tar.gettarinfo(path, arcname))
    if info.islnk():
        # A second name of a file already packed (`ln a b`) is packed whole, as a file of its
        # own: a hard link entry has no contents, so it would break as soon as `a` went.
        info.type = tarfile.REGTYPE
        info.linkname = ""
        info.size = path.lstat().st_size
    if info.isreg():
        with path.open("rb") as contents:
            tar.addfile(info, contents)
    else:
        tar.addfile(info)


def _leads_outside(root: str, path: Path, arcname: str, target: str) -> bool:
    if points_outside(PurePosixPath(arcname), target):
        return True
    resolved = os.path.realpath(path)
    return resolved != root and not resolved.startswith(root + os.sep)


def pack(root: Path, out: IO[bytes]) -> Packed:
    """Pack the workspace at root into `out`, left at its start; the archive is never in memory."""
    real_root = os.path.realpath(root)
    left_out: list[LeftOut] = []
    with (
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for directory, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(directory) / name
                if not (path.is_symlink() or path.is_file() or path.is_dir()):
                    continue  # sockets, fifos and devices have no place in a workspace
                arcname = path.relative_to(root).as_posix()
                if path.is_symlink():
                    target = os.readlink(path)
                    if _leads_outside(real_root, path, arcname, target):
                        left_out.append(LeftOut(arcname, target))
                        continue
                _add(tar, path, arcname)
    size = out.tell()
    out.seek(0)
    hashed = hashlib.sha256()
    while chunk := out.read(CHUNK_BYTES):
        hashed.update(chunk)
    out.seek(0)
    return Packed(hashed.hexdigest(), size, tuple(left_out))


# Why tarfile's `data` filter refused an entry, in words that name no path of this machine.
_REFUSALS: dict[type[tarfile.FilterError], str] = {
    tarfile.AbsolutePathError: "has an absolute path",
    tarfile.OutsideDestinationError: "would land outside the workspace",
    tarfile.SpecialFileError: "is a device, pipe or other special file",
    tarfile.AbsoluteLinkError: "is a link to an absolute path",
    tarfile.LinkOutsideDestinationError: "is a link that leads outside the workspace",
}


def unpack(data: bytes, root: Path) -> None:
    """Extract into root, refusing `..`, links out of root and special files.

    The error says which entry and why, and how to get rid of it, without naming the
    directory the workspace is unpacked into.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(root, filter="data")
    except tarfile.FilterError as refused:
        entry = refused.tarinfo
        why = _REFUSALS.get(type(refused), "cannot be unpacked safely")
        if entry.issym() or entry.islnk():
            why = f"{why} ({entry.linkname})"
        raise ArchiveError(
            f"the workspace cannot be unpacked: {entry.name} {why}; delete it from the "
            "agent's files or reset the agent's workspace, then run again"
        ) from None
    except KeyError as missing:
        # tarfile's way of saying that a hard link names a file the archive does not hold.
        raise ArchiveError(
            f"the workspace cannot be unpacked: it holds a hard link to a file it does not have "
            f"({missing.args[0] if missing.args else missing}); delete the link from the "
            "agent's files or reset the agent's workspace, then run again"
        ) from None
    except (tarfile.TarError, EOFError) as damaged:
        raise ArchiveError(
            f"the workspace archive cannot be unpacked, it is damaged ({damaged}); reset the "
            "agent's workspace"
        ) from None
    except OSError as failed:
        raise ArchiveError(
            f"the workspace could not be unpacked: {failed.strerror or failed}"
        ) from None

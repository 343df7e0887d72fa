"""Where agents' workspaces live between runs: one gzipped tar per agent, behind a protocol.

The local directory backend is the embedded default; a Cloud Storage backend implements the
same protocol for the cloud. An archive is handled as a file, never as bytes in memory: a
gigabyte of zeros packs into a megabyte, so what a workspace unpacks to is bounded by limits
checked when it is stored, a listing reads the tar headers and skips over the contents, and a
file is served in chunks.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Final, Protocol

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024
# What one read of a served file or of a copied archive holds in memory.
CHUNK_BYTES: Final = 256 * 1024
# What a damaged archive raises while it is read: gzip, zlib and tar each have their own.
UNREADABLE: Final = (tarfile.TarError, zlib.error, EOFError, OSError)

# An extended header (a PAX record set, a GNU long name) is read whole before anything else can
# look at it, so a header of a few hundred megabytes, gzipped to one, would take as much memory.
MAX_HEADER_BYTES: Final = 64 * 1024
# The longest path (and link target) a workspace entry may have: Linux's PATH_MAX. With the
# entries limit, this bounds a listing: at most `entries` rows of two such strings each.
MAX_PATH_BYTES: Final = 4096
# How many links the kernel follows while resolving one path before it gives up (ELOOP).
MAX_LINKS_FOLLOWED: Final = 40

Archive = IO[bytes]


class WorkspaceTooLarge(Exception):
    """The workspace is bigger than the platform keeps; the message says by which measure."""

    def __init__(self, what: str, setting: str) -> None:
        super().__init__(
            f"{what}; delete large or generated files from the workspace (or raise "
            f"AGENT_PLATFORM_{setting})"
        )

    @classmethod
    def archive(cls, size: int, limit: int) -> WorkspaceTooLarge:
        return cls(
            f"the workspace archive is {size} bytes, more than the limit of {limit} bytes",
            "WORKSPACE_MAX_BYTES",
        )

    @classmethod
    def unpacked(cls, limit: int) -> WorkspaceTooLarge:
        return cls(
            f"the workspace's files add up to more than the limit of {limit} bytes",
            "WORKSPACE_MAX_UNPACKED_BYTES",
        )

    @classmethod
    def entries(cls, limit: int) -> WorkspaceTooLarge:
        return cls(
            f"the workspace holds more than the limit of {limit} files, folders and links",
            "WORKSPACE_MAX_FILES",
        )


class WorkspaceStorageError(Exception):
    """The workspaces' storage refused or failed a read or write; the message says which."""


class OversizedHeader(tarfile.TarError):
    """An entry's extended header is larger than any workspace entry needs; read no further."""

    def __init__(self, size: int) -> None:
        super().__init__(
            f"an entry has an extended tar header (its name, link target or attributes) of "
            f"{size} bytes, more than the {MAX_HEADER_BYTES} bytes a workspace entry may have"
        )


_EXTENDED_HEADERS: Final = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


class BoundedTarInfo(tarfile.TarInfo):
    """A tar header that refuses, before reading it, an extended header past MAX_HEADER_BYTES.

    tarfile documents subclassing TarInfo (passed as `tarinfo=`) to change how headers are
    processed. Sparse files are refused too: their maps are read whole and a workspace has none.
    """

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_HEADERS and self.size > MAX_HEADER_BYTES:
            raise OversizedHeader(self.size)
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise tarfile.HeaderError("a sparse file, which a workspace archive never holds")
        processed: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
        return processed

    def _proc_gnusparse_10(self, *_: object) -> None:
        raise tarfile.HeaderError("a sparse file, which a workspace archive never holds")


class WorkspaceFileNotFound(Exception):
    """No such file in the agent's workspace."""


class UnsafeWorkspaceEntry(Exception):
    """An entry would land outside the workspace or is no file, folder or link; names which."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path} {why}")
        self.path = path


@dataclass(frozen=True, slots=True)
class WorkspaceLimits:
    """What an agent's workspace may hold: the archive's size and what it unpacks to."""

    archive_bytes: int = DEFAULT_MAX_BYTES
    unpacked_bytes: int = 1024 * 1024 * 1024
    entries: int = 100_000


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    path: str
    size: int
    is_dir: bool
    # Where a symbolic link points, as stored (relative to the link's folder); None otherwise.
    link_target: str | None = None


class BlobStore(Protocol):
    """One archive per agent, and beside it the listing of that archive.

    The listing is stamped with the archive it describes (a Cloud Storage generation, a file's
    inode, size and modification time), so a listing that lost a race with another upload, or
    that an archive from an older platform never had, is known to be stale and is not used.
    """

    def reading(self, agent_id: str) -> AbstractAsyncContextManager[Archive | None]:
        """The agent's workspace archive as a seekable file open for reading; None if none yet."""

    async def put(self, agent_id: str, archive: Archive, files: Sequence[WorkspaceFile]) -> None:
        """Replace the agent's workspace with the archive read from its start, and its listing.

        Raise WorkspaceTooLarge above the archive size limit, keeping the workspace it had.
        """

    async def listing(self, agent_id: str) -> list[WorkspaceFile] | None:
        """The listing stored with the agent's current archive; None if there is none to trust."""

    async def delete(self, agent_id: str) -> None: ...


def listing_document(stamp: str, files: Sequence[WorkspaceFile]) -> bytes:
    """A listing as stored beside its archive, stamped with the archive it describes."""
    rows = [[f.path, f.size, f.is_dir, f.link_target] for f in files]
    return json.dumps({"archive": stamp, "files": rows}, separators=(",", ":")).encode()


def listing_of(document: bytes, stamp: str) -> list[WorkspaceFile] | None:
    """The files of a stored listing if it describes the archive stamped `stamp`."""
    try:
        parsed = json.loads(document)
        if parsed["archive"] != stamp:
            return None
        return [WorkspaceFile(p, int(size), bool(d), t) for p, size, d, t in parsed["files"]]
    except (ValueError, KeyError, TypeError):
        return None  # damaged or from another version: the archive itself still tells


def temporary_archive() -> Archive:
    """A scratch file for an archive on its way: deleted when closed (or the process ends)."""
    return tempfile.TemporaryFile(prefix="workspace-")


def archive_size(archive: Archive) -> int:
    """The size of a seekable archive; leaves it at its start."""
    size = archive.seek(0, io.SEEK_END)
    archive.seek(0)
    return size


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why the runner could not unpack this entry into a workspace; None if it can.

    The rules of tarfile's `data` filter, which the runner unpacks with (a leading `/` is
    dropped, then nothing may lead outside), worded without any path of the machine.
    """
    name = PurePosixPath(member.name.lstrip("/"))
    if _escapes(name):
        return "is a path outside the workspace"
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        return "is a device, pipe or other special file, which a workspace cannot hold"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        where = name.parent / target if member.issym() else target
        if target.is_absolute() or _escapes(where):
            kind = "link" if member.issym() else "hard link"
            return f"is a {kind} to {member.linkname}, outside the workspace"
    return None


def _stored_name(name: str) -> str:
    return "/".join(part for part in PurePosixPath(name.lstrip("/")).parts if part != ".")


def leads_outside(link: str, links: Mapping[str, str]) -> bool:
    """Whether the symbolic link `link` of an archive resolves outside the workspace.

    `links` maps every symbolic link of the archive (by stored name) to its target. The target
    is walked part by part as the kernel would, following links of the archive on the way:
    with `s -> .`, the target `s/..` is the workspace's parent, whatever its text says. Once
    the walk has followed as many links as the kernel would (a loop), it goes on by the text.
    """
    current = list(PurePosixPath(link).parent.parts)
    pending = list(reversed(PurePosixPath(links[link]).parts))
    followed = 0
    while pending:
        part = pending.pop()
        if part == "/":
            return True
        if part == ".":
            continue
        if part == "..":
            if not current:
                return True
            current.pop()
            continue
        current.append(part)
        target = links.get("/".join(current))
        if target is not None and followed < MAX_LINKS_FOLLOWED:
            followed += 1
            current.pop()
            pending.extend(reversed(PurePosixPath(target).parts))
    return False


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def _described(member: tarfile.TarInfo) -> WorkspaceFile:
    return WorkspaceFile(
        member.name,
        member.size if member.isreg() else 0,
        member.isdir(),
        member.linkname if member.issym() else None,
    )


@contextmanager
def _opened(archive: Archive) -> Iterator[tarfile.TarFile]:
    archive.seek(0)
    # Read through gzip without tarfile's own stream layer, so that a member's contents can be
    # skipped (inflated in bounded chunks and dropped) on the way to the next header.
    with (
        gzip.GzipFile(fileobj=archive, mode="rb") as unzipped,
        tarfile.open(fileobj=unzipped, mode="r:", tarinfo=BoundedTarInfo) as tar,
    ):
        yield tar


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    # One pass, front to back: tarfile's own iteration may seek back to the start.
    while (member := tar.next()) is not None:
        yield member


def list_files(archive: Archive | bytes) -> list[WorkspaceFile]:
    """Every entry of a workspace archive, by path: files, folders and links."""
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    with _opened(source) as tar:
        return sorted((_described(m) for m in _members(tar)), key=lambda f: f.path)


def checked(archive: Archive, limits: WorkspaceLimits) -> list[WorkspaceFile]:
    """The listing of an archive handed in to be stored, once it is known to be storable.

    Raise WorkspaceTooLarge past a limit (as soon as it is passed, so a huge archive is not
    read to its end) and UnsafeWorkspaceEntry for an entry that could not be unpacked.
    """
    size = archive_size(archive)
    if size > limits.archive_bytes:
        raise WorkspaceTooLarge.archive(size, limits.archive_bytes)
    try:
        files = _checked_entries(archive, limits)
    except OversizedHeader as oversized:
        raise UnsafeWorkspaceEntry("an entry", str(oversized).removeprefix("an entry ")) from None
    archive.seek(0)
    return sorted(files, key=lambda f: f.path)


def _checked_entries(archive: Archive, limits: WorkspaceLimits) -> list[WorkspaceFile]:
    files: list[WorkspaceFile] = []
    links: dict[str, str] = {}
    # What a hard link may name: a file stored before it, as tarfile extracts them in order.
    regular: set[str] = set()
    unpacked = 0
    with _opened(archive) as tar:
        for member in _members(tar):
            if (why := unsafe_reason(member) or _too_long(member)) is not None:
                raise UnsafeWorkspaceEntry(_shortened(member.name), why)
            name = _stored_name(member.name)
            if member.islnk() and _stored_name(member.linkname) not in regular:
                raise UnsafeWorkspaceEntry(
                    member.name,
                    f"is a hard link to {member.linkname}, which the workspace does not hold "
                    "before it",
                )
            if member.isreg() or member.islnk():
                regular.add(name)
            if member.issym():
                links[name] = member.linkname
            files.append(_described(member))
            unpacked += member.size if member.isreg() else 0
            if unpacked > limits.unpacked_bytes:
                raise WorkspaceTooLarge.unpacked(limits.unpacked_bytes)
            if len(files) > limits.entries:
                raise WorkspaceTooLarge.entries(limits.entries)
    # Only the whole archive tells where a link leads: the link it passes through may come later.
    for link, target in sorted(links.items()):
        if leads_outside(link, links):
            raise UnsafeWorkspaceEntry(
                link, f"is a link to {target}, which leads outside the workspace through a link"
            )
    return files


def _too_long(member: tarfile.TarInfo) -> str | None:
    for what, text in (("a path", member.name), ("a link target", member.linkname)):
        if (length := len(text.encode(errors="surrogateescape"))) > MAX_PATH_BYTES:
            return f"has {what} of {length} bytes, more than the {MAX_PATH_BYTES} bytes allowed"
    return None


def _shortened(name: str) -> str:
    # A refused name is quoted in the error; a name past the limit is quoted by its start.
    return name if len(name) <= 200 else f"{name[:200]}…"


@contextmanager
def member_reader(archive: Archive, path: str) -> Iterator[tuple[int, IO[bytes]]]:
    """One regular file of the archive: its size and a reader positioned at its contents."""
    name = path.strip("/")
    with _opened(archive) as tar:
        for member in _members(tar):
            if member.name.strip("/") != name:
                continue
            if member.issym():
                raise WorkspaceFileNotFound(
                    f"{path} is a link to {member.linkname}; open {member.linkname} instead"
                )
            reader = tar.extractfile(member) if member.isreg() else None
            if reader is None:
                raise WorkspaceFileNotFound(f"{path} is not a regular file in the workspace")
            yield member.size, reader
            return
    raise WorkspaceFileNotFound(f"{path} is not in the workspace")


def read_file(archive: Archive | bytes, path: str) -> bytes:
    """One regular file's bytes, whole: for archives known to be small."""
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    with member_reader(source, path) as (_, reader):
        return reader.read()

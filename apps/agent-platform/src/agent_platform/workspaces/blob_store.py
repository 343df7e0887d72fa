"""Where agents' workspaces live between runs: one gzipped tar per agent, behind a protocol.

The local directory backend is the embedded default; a Cloud Storage backend implements the
same protocol for the cloud. Listing and reading single files serve the dashboard, which shows
an agent's files without unpacking anything to disk.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from typing import Final, Protocol

DEFAULT_MAX_BYTES: Final = 50 * 1024 * 1024


class WorkspaceTooLarge(Exception):
    """The archive is larger than the platform keeps; the message gives both sizes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the workspace archive is {size} bytes, more than the limit of {limit} bytes; "
            "delete large or generated files from the workspace (or raise "
            "AGENT_PLATFORM_WORKSPACE_MAX_BYTES)"
        )
        self.size = size
        self.limit = limit


class WorkspaceFileNotFound(Exception):
    """No such file in the agent's workspace."""


@dataclass(frozen=True, slots=True)
class WorkspaceFile:
    path: str
    size: int
    is_dir: bool


class BlobStore(Protocol):
    async def get(self, agent_id: str) -> bytes | None:
        """The agent's workspace archive, None if it has none yet."""

    async def put(self, agent_id: str, archive: bytes) -> None:
        """Replace the agent's workspace; raise WorkspaceTooLarge above the size limit."""

    async def delete(self, agent_id: str) -> None: ...


def list_files(archive: bytes) -> list[WorkspaceFile]:
    """The files and directories in a workspace archive, by path."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return sorted(
            (
                WorkspaceFile(member.name, member.size if member.isfile() else 0, member.isdir())
                for member in tar.getmembers()
                if member.isfile() or member.isdir()
            ),
            key=lambda f: f.path,
        )


def read_file(archive: bytes, path: str) -> bytes:
    """One regular file's bytes from a workspace archive."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        try:
            member = tar.getmember(path.strip("/"))
        except KeyError:
            raise WorkspaceFileNotFound(f"{path} is not in the workspace") from None
        extracted = tar.extractfile(member) if member.isfile() else None
        if extracted is None:
            raise WorkspaceFileNotFound(f"{path} is not a regular file in the workspace")
        return extracted.read()

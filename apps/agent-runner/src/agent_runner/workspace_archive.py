"""The workspace travels as a gzipped tar: packed deterministically, unpacked without escaping.

Packing the same tree twice gives the same bytes (sorted entries, no gzip timestamp, owner
names dropped), so the runner can tell whether the agent changed anything and skip the upload.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path


class ArchiveError(Exception):
    """The archive cannot be unpacked safely; nothing outside the workspace was touched."""


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(root: Path) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for directory, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                path = Path(directory) / name
                if not (path.is_symlink() or path.is_file() or path.is_dir()):
                    continue  # sockets, fifos and devices have no place in a workspace
                arcname = path.relative_to(root).as_posix()
                tar.add(path, arcname=arcname, recursive=False, filter=_normalised)
    return buffer.getvalue()


def unpack(data: bytes, root: Path) -> None:
    """Extract into root, refusing absolute paths, `..`, links out of root and special files."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"the workspace archive cannot be unpacked: {exc}") from exc


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

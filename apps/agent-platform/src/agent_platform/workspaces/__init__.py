"""Agents' workspaces: kept between runs in a blob store, moved by the runner over HTTP.

This package is storage only; the routes are `agent_platform.api.workspace` and
`agent_platform.api.files`.
"""

from __future__ import annotations

from typing import assert_never

from agent_platform.settings import Settings
from agent_platform.workspaces.blob_store import (
    CHUNK_BYTES,
    UNREADABLE,
    Archive,
    BlobStore,
    BoundedTarInfo,
    UnsafeWorkspaceEntry,
    WorkspaceFile,
    WorkspaceFileNotFound,
    WorkspaceLimits,
    WorkspaceStorageError,
    WorkspaceTooLarge,
    archive_size,
    checked,
    list_files,
    member_reader,
    read_file,
    temporary_archive,
)
from agent_platform.workspaces.local import LocalBlobStore


class BlobStoreNotAvailable(Exception):
    """The settings select a blob store without what it needs; the message names the setting."""


def limits_of(settings: Settings) -> WorkspaceLimits:
    return WorkspaceLimits(
        archive_bytes=settings.workspace_max_bytes,
        unpacked_bytes=settings.workspace_max_unpacked_bytes,
        entries=settings.workspace_max_files,
    )


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_store == "local":
        return LocalBlobStore(
            settings.data_dir / "workspaces", max_bytes=settings.workspace_max_bytes
        )
    if settings.blob_store == "gcs":
        if not settings.gcs_bucket:
            raise BlobStoreNotAvailable(
                "AGENT_PLATFORM_BLOB_STORE=gcs needs AGENT_PLATFORM_GCS_BUCKET, the bucket "
                "that keeps the workspaces"
            )
        from agent_platform.workspaces.gcs import GcsBlobStore

        return GcsBlobStore.open(
            settings.gcs_bucket,
            project=settings.gcp_project,
            max_bytes=settings.workspace_max_bytes,
        )
    # Settings reject any other value, so mypy proves every blob store has a branch here.
    assert_never(settings.blob_store)


__all__ = [
    "CHUNK_BYTES",
    "UNREADABLE",
    "Archive",
    "BlobStore",
    "BlobStoreNotAvailable",
    "BoundedTarInfo",
    "LocalBlobStore",
    "UnsafeWorkspaceEntry",
    "WorkspaceFile",
    "WorkspaceFileNotFound",
    "WorkspaceLimits",
    "WorkspaceStorageError",
    "WorkspaceTooLarge",
    "archive_size",
    "checked",
    "limits_of",
    "list_files",
    "member_reader",
    "open_blob_store",
    "read_file",
    "temporary_archive",
]

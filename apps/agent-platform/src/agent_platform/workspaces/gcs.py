"""Workspaces as objects in one Cloud Storage bucket: the cloud backend.

Only the platform's own identity (Workload Identity in the cluster) reaches the bucket; runners
move workspaces through the platform's endpoints and never hold a credential for it. An upload
replaces the object whole, so a reader gets the old workspace or the new one, never half.
The client library blocks, so every call runs in a worker thread off the event loop.
STORAGE_EMULATOR_HOST points the client at a GCS-compatible server without credentials.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Final

from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.cloud import storage  # type: ignore[attr-defined]  # untyped library

from agent_platform.workspaces.blob_store import (
    DEFAULT_MAX_BYTES,
    Archive,
    WorkspaceFile,
    WorkspaceStorageError,
    WorkspaceTooLarge,
    archive_size,
    listing_document,
    listing_of,
    temporary_archive,
)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PREFIX: Final = "workspaces/"
# A workspace's upload either completes within this or fails; the runner retries it.
TIMEOUT_SECONDS: Final = 120.0
# An archive above 8 MB goes up in resumable chunks of this size (a multiple of 256 KiB, as the
# API requires), so an upload never holds more of it in memory; the client's default is 100 MB.
UPLOAD_CHUNK_BYTES: Final = 4 * 1024 * 1024


class GcsBlobStore:
    def __init__(self, bucket: storage.Bucket, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._bucket = bucket
        self.max_bytes = max_bytes

    @classmethod
    def open(
        cls, bucket: str, *, project: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> GcsBlobStore:
        """The store over `bucket`, with the platform's default Google credentials."""
        client = storage.Client(project=project)
        return cls(client.bucket(bucket), max_bytes=max_bytes)

    def _blob(self, agent_id: str) -> storage.Blob:
        if not _SAFE_ID.match(agent_id):
            raise ValueError(f"{agent_id!r} is not an agent id")
        return self._bucket.blob(f"{PREFIX}{agent_id}.tar.gz", chunk_size=UPLOAD_CHUNK_BYTES)

    def _listing_blob(self, agent_id: str) -> storage.Blob:
        archive: str = self._blob(agent_id).name
        return self._bucket.blob(archive.removesuffix(".tar.gz") + ".files.json")

    @asynccontextmanager
    async def reading(self, agent_id: str) -> AsyncIterator[Archive | None]:
        # Downloaded to a temporary file, never into memory: tar needs to seek, and an object
        # may be as large as the limit allows for every reader at once.
        blob = self._blob(agent_id)
        with await asyncio.to_thread(temporary_archive) as archive:
            try:
                await asyncio.to_thread(blob.download_to_file, archive, timeout=TIMEOUT_SECONDS)
                found = True
            except NotFound:
                found = False
            except GoogleAPICallError as error:
                raise self._error("reading", agent_id, error) from error
            archive.seek(0)
            yield archive if found else None

    async def put(self, agent_id: str, archive: Archive, files: Sequence[WorkspaceFile]) -> None:
        size = archive_size(archive)
        if size > self.max_bytes:
            raise WorkspaceTooLarge.archive(size, self.max_bytes)
        blob = self._blob(agent_id)
        try:
            await asyncio.to_thread(
                blob.upload_from_file,
                archive,
                size=size,
                content_type="application/gzip",
                timeout=TIMEOUT_SECONDS,
            )
            # The upload's answer gives the new object's generation: what the listing describes.
            await asyncio.to_thread(
                self._listing_blob(agent_id).upload_from_string,
                listing_document(str(blob.generation), files),
                content_type="application/json",
                timeout=TIMEOUT_SECONDS,
            )
        except GoogleAPICallError as error:
            raise self._error("writing", agent_id, error) from error

    async def listing(self, agent_id: str) -> list[WorkspaceFile] | None:
        try:
            current = await asyncio.to_thread(
                self._bucket.get_blob, self._blob(agent_id).name, timeout=TIMEOUT_SECONDS
            )
            if current is None:
                return None
            document: bytes = await asyncio.to_thread(
                self._listing_blob(agent_id).download_as_bytes, timeout=TIMEOUT_SECONDS
            )
        except NotFound:
            return None
        except GoogleAPICallError as error:
            raise self._error("reading", agent_id, error) from error
        return listing_of(document, str(current.generation))

    async def delete(self, agent_id: str) -> None:
        for blob in (self._blob(agent_id), self._listing_blob(agent_id)):
            try:
                await asyncio.to_thread(blob.delete, timeout=TIMEOUT_SECONDS)
            except NotFound:
                continue
            except GoogleAPICallError as error:
                raise self._error("deleting", agent_id, error) from error

    def _error(self, doing: str, agent_id: str, error: GoogleAPICallError) -> WorkspaceStorageError:
        return WorkspaceStorageError(
            f"{doing} the workspace of {agent_id} in gs://{self._bucket.name} failed: "
            f"{error.message}; check that the platform's service account may use the bucket"
        )

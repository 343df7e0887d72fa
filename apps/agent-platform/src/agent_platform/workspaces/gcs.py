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
from typing import Final

from google.api_core.exceptions import GoogleAPICallError, NotFound
from google.cloud import storage  # type: ignore[attr-defined]  # untyped library

from agent_platform.workspaces.blob_store import DEFAULT_MAX_BYTES, WorkspaceTooLarge

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
PREFIX: Final = "workspaces/"
# A workspace's upload either completes within this or fails; the runner retries it.
TIMEOUT_SECONDS: Final = 120.0


class WorkspaceStorageError(Exception):
    """Cloud Storage refused or failed a workspace read or write; the message says which."""


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
        return self._bucket.blob(f"{PREFIX}{agent_id}.tar.gz")

    async def get(self, agent_id: str) -> bytes | None:
        blob = self._blob(agent_id)
        try:
            data: bytes = await asyncio.to_thread(blob.download_as_bytes, timeout=TIMEOUT_SECONDS)
        except NotFound:
            return None
        except GoogleAPICallError as error:
            raise self._error("reading", agent_id, error) from error
        return data

    async def put(self, agent_id: str, archive: bytes) -> None:
        if len(archive) > self.max_bytes:
            raise WorkspaceTooLarge(len(archive), self.max_bytes)
        blob = self._blob(agent_id)
        try:
            await asyncio.to_thread(
                blob.upload_from_string,
                archive,
                content_type="application/gzip",
                timeout=TIMEOUT_SECONDS,
            )
        except GoogleAPICallError as error:
            raise self._error("writing", agent_id, error) from error

    async def delete(self, agent_id: str) -> None:
        blob = self._blob(agent_id)
        try:
            await asyncio.to_thread(blob.delete, timeout=TIMEOUT_SECONDS)
        except NotFound:
            return
        except GoogleAPICallError as error:
            raise self._error("deleting", agent_id, error) from error

    def _error(self, doing: str, agent_id: str, error: GoogleAPICallError) -> WorkspaceStorageError:
        return WorkspaceStorageError(
            f"{doing} the workspace of {agent_id} in gs://{self._bucket.name} failed: "
            f"{error.message}; check that the platform's service account may use the bucket"
        )

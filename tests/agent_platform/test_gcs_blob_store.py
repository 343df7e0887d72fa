"""The workspace blob-store contract, on the local directory and on Cloud Storage.

Cloud Storage is fake-gcs-server on loopback, reached through google-cloud-storage as the
platform reaches the real service.
"""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from agent_platform.settings import Settings
from agent_platform.workspaces import (
    BlobStore,
    BlobStoreNotAvailable,
    LocalBlobStore,
    WorkspaceFile,
    WorkspaceStorageError,
    WorkspaceTooLarge,
    list_files,
    open_blob_store,
)
from agent_platform.workspaces.gcs import UPLOAD_CHUNK_BYTES, GcsBlobStore
from servers.gcs_server import GcsServer, gcs_server

__all__ = ["gcs_server"]

LIMIT = 64 * 1024


def archive_of(**files: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def stored(blobs: BlobStore, agent_id: str) -> bytes | None:
    async with blobs.reading(agent_id) as archive:
        return None if archive is None else archive.read()


async def put(
    blobs: BlobStore, agent_id: str, archive: bytes, files: Sequence[WorkspaceFile] = ()
) -> None:
    await blobs.put(agent_id, io.BytesIO(archive), files)


@pytest.fixture(params=["local", "gcs"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "workspaces", max_bytes=LIMIT)
    else:
        server: GcsServer = request.getfixturevalue("gcs_server")
        bucket = server.client().bucket(server.new_bucket())
        yield GcsBlobStore(bucket, max_bytes=LIMIT)


async def test_an_agent_without_a_workspace_has_none(blobs: BlobStore) -> None:
    assert await stored(blobs, "agt_new") is None


async def test_a_stored_workspace_reads_back_whole(blobs: BlobStore) -> None:
    archive = archive_of(**{"notes.md": b"hello", "src/main.py": b"print(1)\n"})
    await put(blobs, "agt_1", archive)
    read_back = await stored(blobs, "agt_1")
    assert read_back == archive
    assert [f.path for f in list_files(read_back)] == ["notes.md", "src/main.py"]


async def test_the_listing_stored_with_an_archive_is_read_back(blobs: BlobStore) -> None:
    archive = archive_of(**{"notes.md": b"hello"})
    files = [WorkspaceFile("notes.md", 5, False), WorkspaceFile("to-notes", 0, False, "notes.md")]
    assert await blobs.listing("agt_1") is None
    await put(blobs, "agt_1", archive, files)
    assert await blobs.listing("agt_1") == files
    await blobs.delete("agt_1")
    assert await blobs.listing("agt_1") is None


async def test_a_listing_left_beside_another_archive_is_not_trusted(
    blobs: BlobStore, request: pytest.FixtureRequest
) -> None:
    await put(blobs, "agt_1", archive_of(old=b"1"), [WorkspaceFile("old", 1, False)])
    # Another archive lands without its listing: the loser of a race of two uploads, or an
    # archive an older platform stored.
    newer = archive_of(new=b"2")
    if isinstance(blobs, LocalBlobStore):
        (request.getfixturevalue("tmp_path") / "workspaces" / "agt_1.tar.gz").write_bytes(newer)
    else:
        assert isinstance(blobs, GcsBlobStore)
        blobs._blob("agt_1").upload_from_string(newer)
    assert await blobs.listing("agt_1") is None
    assert await stored(blobs, "agt_1") == newer


async def test_a_new_upload_replaces_the_workspace(blobs: BlobStore) -> None:
    await put(blobs, "agt_1", archive_of(old=b"1"))
    newer = archive_of(new=b"2")
    await put(blobs, "agt_1", newer)
    assert await stored(blobs, "agt_1") == newer


async def test_workspaces_of_agents_are_separate(blobs: BlobStore) -> None:
    second = archive_of(two=b"2")
    await put(blobs, "agt_1", archive_of(one=b"1"))
    await put(blobs, "agt_2", second)
    await blobs.delete("agt_1")
    assert await stored(blobs, "agt_1") is None
    assert await stored(blobs, "agt_2") == second


async def test_deleting_a_missing_workspace_is_not_an_error(blobs: BlobStore) -> None:
    await blobs.delete("agt_never")
    assert await stored(blobs, "agt_never") is None


async def test_an_archive_over_the_limit_is_refused_and_the_old_one_kept(
    blobs: BlobStore,
) -> None:
    kept = archive_of(keep=b"me")
    await put(blobs, "agt_1", kept)
    with pytest.raises(WorkspaceTooLarge, match="AGENT_PLATFORM_WORKSPACE_MAX_BYTES"):
        await put(blobs, "agt_1", b"x" * (LIMIT + 1))
    assert await stored(blobs, "agt_1") == kept


@pytest.mark.parametrize("agent_id", ["../escape", "a/b", "", "agt 1"])
async def test_a_name_that_is_not_an_agent_id_is_refused(blobs: BlobStore, agent_id: str) -> None:
    with pytest.raises(ValueError, match="is not an agent id"):
        await put(blobs, agent_id, archive_of(x=b"1"))


async def test_concurrent_uploads_leave_one_whole_workspace(blobs: BlobStore) -> None:
    uploads = [archive_of(**{f"file{i}": bytes([i]) * 4096}) for i in range(4)]
    await asyncio.gather(*(put(blobs, "agt_1", archive) for archive in uploads))
    assert await stored(blobs, "agt_1") in uploads


async def test_a_workspace_is_an_archive_and_its_listing_under_the_workspaces_prefix(
    gcs_server: GcsServer,
) -> None:
    client = gcs_server.client()
    bucket = client.bucket(gcs_server.new_bucket())
    await put(GcsBlobStore(bucket), "agt_1", archive_of(a=b"1"))
    blob = bucket.get_blob("workspaces/agt_1.tar.gz")
    assert blob is not None
    assert blob.content_type == "application/gzip"
    assert [b.name for b in client.list_blobs(bucket)] == [
        "workspaces/agt_1.files.json",
        "workspaces/agt_1.tar.gz",
    ]


async def test_a_missing_bucket_is_reported_with_what_to_check(gcs_server: GcsServer) -> None:
    bucket = gcs_server.client().bucket("no-such-bucket-anywhere")
    with pytest.raises(WorkspaceStorageError, match="gs://no-such-bucket-anywhere"):
        await put(GcsBlobStore(bucket), "agt_1", archive_of(a=b"1"))


async def test_the_settings_select_cloud_storage(gcs_server: GcsServer, tmp_path: Path) -> None:
    bucket = gcs_server.new_bucket()
    archive = archive_of(a=b"1")
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        blob_store="gcs",
        gcs_bucket=bucket,
        gcp_project="test",
    )
    blobs = open_blob_store(settings)
    await put(blobs, "agt_1", archive)
    stored = gcs_server.client().bucket(bucket).get_blob("workspaces/agt_1.tar.gz")
    assert stored is not None
    assert stored.download_as_bytes() == archive


def test_cloud_storage_without_a_bucket_is_refused(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        blob_store="gcs",
    )
    with pytest.raises(BlobStoreNotAvailable, match="AGENT_PLATFORM_GCS_BUCKET"):
        open_blob_store(settings)


async def test_an_archive_of_several_upload_chunks_reads_back_whole(gcs_server: GcsServer) -> None:
    bucket = gcs_server.client().bucket(gcs_server.new_bucket())
    blobs = GcsBlobStore(bucket, max_bytes=4 * UPLOAD_CHUNK_BYTES)
    # Past the client's 8 MB single-request upload: the object goes up in resumable chunks.
    archive = os.urandom(2 * UPLOAD_CHUNK_BYTES + 12345)
    await put(blobs, "agt_1", archive)
    assert await stored(blobs, "agt_1") == archive

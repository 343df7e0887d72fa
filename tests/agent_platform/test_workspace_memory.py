"""A gigabyte file in a megabyte workspace: served in chunks, never held by the platform.

The platform is the real one, as a subprocess; the workspace is what `head -c 1G /dev/zero >
big.bin` leaves, stored as a run would have left it.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers.platform import RunningPlatform, running_platform

GIGABYTE = 1024**3


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("memory")) as running:
        yield running


@pytest.fixture
async def http(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.base_url, headers=platform.headers, timeout=120
    ) as client:
        yield client


def _peak_rss_bytes(platform: RunningPlatform) -> int:
    """The platform process's high-water mark of resident memory, from /proc."""
    assert platform.process is not None
    status = Path(f"/proc/{platform.process.pid}/status").read_text()
    (line,) = (row for row in status.splitlines() if row.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


class _Zeros(io.RawIOBase):
    """A gigabyte of zeros to read, never held."""

    def __init__(self) -> None:
        self.left = GIGABYTE

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _gigabyte_of_zeros_archive() -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=1) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        info = tarfile.TarInfo("big.bin")
        info.size = GIGABYTE
        tar.addfile(info, io.BufferedReader(_Zeros(), 1024 * 1024))
        note = tarfile.TarInfo("after.txt")
        note.size = 3
        tar.addfile(note, io.BytesIO(b"hi\n"))
    return buffer.getvalue()


async def test_a_gigabyte_file_is_served_in_chunks_without_the_platform_holding_it(
    platform: RunningPlatform, http: httpx.AsyncClient
) -> None:
    agent_id = (await http.post("/api/agents", json={"name": "zeros"})).json()["id"]
    archive = await asyncio.to_thread(_gigabyte_of_zeros_archive)
    assert len(archive) < 8 * 1024 * 1024
    stored = platform.data_dir / "workspaces" / f"{agent_id}.tar.gz"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(archive)
    files = f"/api/agents/{agent_id}/files"
    assert (await http.get(files)).status_code == 200
    before = _peak_rss_bytes(platform)

    received = 0
    largest_chunk = 0
    async with http.stream("GET", f"{files}/big.bin") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-length"] == str(GIGABYTE)
        async for chunk in answer.aiter_raw():
            assert not chunk.strip(b"\0")
            received += len(chunk)
            largest_chunk = max(largest_chunk, len(chunk))
    listed = {item["path"]: item["size"] for item in (await http.get(files)).json()["items"]}

    assert received == GIGABYTE
    assert listed == {"big.bin": GIGABYTE, "after.txt": 3}
    grown = _peak_rss_bytes(platform) - before
    # A file read whole would add a gigabyte; streaming adds a few chunks of 256 KiB.
    assert grown < 64 * 1024 * 1024, f"the platform's peak memory grew by {grown} bytes"
    assert largest_chunk <= 1024 * 1024


def _huge_long_name_archive(name_bytes: int) -> bytes:
    """A GNU long-name header of `name_bytes` before one small file: a few hundred KiB gzipped."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as zipped:
        long_name = tarfile.TarInfo("././@LongLink")
        long_name.type = tarfile.GNUTYPE_LONGNAME
        long_name.size = name_bytes
        zipped.write(long_name.tobuf(format=tarfile.GNU_FORMAT))
        chunk = b"n" * (1024 * 1024)
        for _ in range(name_bytes // len(chunk)):
            zipped.write(chunk)
        zipped.write(bytes(-name_bytes % tarfile.BLOCKSIZE))
        note = tarfile.TarInfo("x")
        note.size = 0
        zipped.write(note.tobuf(format=tarfile.GNU_FORMAT))
        zipped.write(bytes(2 * tarfile.BLOCKSIZE))
    return buffer.getvalue()


async def test_a_huge_tar_header_is_refused_before_it_is_read(
    platform: RunningPlatform, http: httpx.AsyncClient
) -> None:
    agent_id = (await http.post("/api/agents", json={"name": "long-name"})).json()["id"]
    archive = await asyncio.to_thread(_huge_long_name_archive, 256 * 1024 * 1024)
    assert len(archive) < 2 * 1024 * 1024
    stored = platform.data_dir / "workspaces" / f"{agent_id}.tar.gz"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(archive)
    before = _peak_rss_bytes(platform)

    listed = await http.get(f"/api/agents/{agent_id}/files")
    added = await http.put(f"/api/agents/{agent_id}/files/notes.txt", content=b"hi\n")

    assert listed.status_code == 500
    assert "reset the workspace" in listed.json()["message"]
    assert added.status_code == 500
    assert "nothing was added to it" in added.json()["message"]
    grown = _peak_rss_bytes(platform) - before
    # Read whole, the header would take its 256 MiB (and tarfile's copies of it) at once.
    assert grown < 64 * 1024 * 1024, f"the platform's peak memory grew by {grown} bytes"

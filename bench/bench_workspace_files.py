"""A gigabyte of zeros in a workspace: served four times at once, and listed.

The platform is a subprocess with SQLite and the local blob store; the agent's workspace is a
1 MiB-ish archive holding one 1 GiB file of zeros (what `head -c 1G /dev/zero > big.bin` leaves).
Four clients download the file at once while the platform's peak resident memory (VmHWM) is
watched; then the workspace is listed. Reported: how much the peak grew, the platform's CPU
seconds per gigabyte served, the wall time of the downloads and of a listing. The archive is
put in place without the listing the platform stores beside what it receives, so the listing
reads the archive: the worst case (gzip has no index, so the contents are inflated to be
skipped). Target: the peak grows by less than 64 MiB, however large the file.

Run: `python -m bench workspace_files`; with `--quick`, a 16 MiB file served twice.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from servers.platform import RunningPlatform, running_platform

GIGABYTE = 1024**3
READERS = 4
QUICK_FILE_BYTES = 16 * 1024**2
QUICK_READERS = 2
TARGET_GROWTH_BYTES = 64 * 1024 * 1024


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _write_archive(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        gzip.GzipFile(path, mode="wb", compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        info = tarfile.TarInfo("big.bin")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size), 1024 * 1024))


def _peak_rss(platform: RunningPlatform) -> int:
    assert platform.process is not None
    status = Path(f"/proc/{platform.process.pid}/status").read_text()
    (line,) = (row for row in status.splitlines() if row.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


async def _download(http: httpx.AsyncClient, path: str) -> int:
    received = 0
    async with http.stream("GET", path) as answer:
        answer.raise_for_status()
        async for chunk in answer.aiter_raw():
            received += len(chunk)
    return received


async def _measure(platform: RunningPlatform, size: int, readers: int) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=platform.base_url, headers=platform.headers, timeout=600
    ) as http:
        agent_id = (await http.post("/api/agents", json={"name": "zeros"})).json()["id"]
        archive = platform.data_dir / "workspaces" / f"{agent_id}.tar.gz"
        await asyncio.to_thread(_write_archive, archive, size)
        files = f"/api/agents/{agent_id}/files"
        (await http.get(files)).raise_for_status()  # warm: imports, the first thread pool
        before = _peak_rss(platform)
        cpu_before = platform.cpu_seconds()
        started = time.perf_counter()
        received = await asyncio.gather(
            *(_download(http, f"{files}/big.bin") for _ in range(readers))
        )
        served_seconds = time.perf_counter() - started
        cpu = platform.cpu_seconds() - cpu_before
        started = time.perf_counter()
        (await http.get(files)).raise_for_status()
        listed_seconds = time.perf_counter() - started
        grown = _peak_rss(platform) - before
    return {
        "archive_bytes": archive.stat().st_size,
        "file_bytes": size,
        "readers": readers,
        "all_received": all(r == size for r in received),
        "peak_rss_growth_mib": round(grown / 1024**2, 1),
        "platform_cpu_seconds_per_gib_served": round(cpu / (readers * size / GIGABYTE), 2),
        "downloads_wall_seconds": round(served_seconds, 2),
        "listing_seconds": round(listed_seconds, 2),
        "targets": {
            "peak memory grows < 64 MiB serving 4 x 1 GiB": grown < TARGET_GROWTH_BYTES,
            "every byte served": all(r == size for r in received),
        },
    }


def run(quick: bool = False) -> dict[str, Any]:
    size, readers = (QUICK_FILE_BYTES, QUICK_READERS) if quick else (GIGABYTE, READERS)
    with tempfile.TemporaryDirectory() as scratch:
        env = {"AGENT_PLATFORM_LOG_LEVEL": "WARNING"}
        with running_platform(Path(scratch) / "platform", env) as platform:
            return asyncio.run(_measure(platform, size, readers))

"""A local runner process, recorded at spawn so that a restarted platform can find it again.

A pid alone may name a later, unrelated process once the runner is gone. The kernel's start
time of a process, within one boot, does not repeat for its pid, so pid, start time and boot id
together identify the runner. The record lives in the executor's own directory, outside the
sandbox, so that nothing the agent runs can point the platform at another process.

A found runner is not the platform's child any more: its exit is seen through a pidfd, which
becomes readable when the process ends (a zombie nobody reaped included).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True, slots=True)
class RunnerRecord:
    pid: int
    # Clock ticks after boot at which the process started: field 22 of /proc/<pid>/stat.
    start_ticks: int
    boot_id: str
    # Wall-clock seconds since the epoch at which the run started, and its time limit.
    started_at: float
    timeout_seconds: float

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout_seconds


def _stat(pid: int) -> tuple[str, int] | None:
    """The state letter and start time of `pid`, None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is parenthesised and may hold anything; the fields follow its end.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[19])


def _boot_id() -> str:
    return BOOT_ID.read_text().strip()


def record_runner(pid: int, *, started_at: float, timeout_seconds: float) -> RunnerRecord | None:
    """The record of a just-started runner; None if it is gone already."""
    stat = _stat(pid)
    if stat is None:
        return None
    return RunnerRecord(pid, stat[1], _boot_id(), started_at, timeout_seconds)


def is_running(record: RunnerRecord) -> bool:
    """Whether the recorded runner still runs: same boot, same process, not ended."""
    stat = _stat(record.pid)
    if stat is None or record.boot_id != _boot_id():
        return False
    state, start_ticks = stat
    return start_ticks == record.start_ticks and state not in ("Z", "X")


def write_record(path: Path, record: RunnerRecord) -> None:
    """Write the record whole or not at all: a crash mid-write leaves no half record."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(record)))
    partial.replace(path)


def read_record(path: Path) -> RunnerRecord | None:
    """The record at `path`; None if it is missing or unreadable."""
    try:
        return RunnerRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def open_runner(record: RunnerRecord) -> int | None:
    """A pidfd on the recorded runner if it still runs, else None.

    The pidfd is opened before the identity is checked, so the process it refers to is the one
    that was checked.
    """
    try:
        pidfd = os.pidfd_open(record.pid)
    except OSError:
        return None
    if not is_running(record):
        os.close(pidfd)
        return None
    return pidfd


async def wait_for_exit(pidfd: int) -> None:
    """Return when the process of `pidfd` has ended; the pidfd is closed then."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)

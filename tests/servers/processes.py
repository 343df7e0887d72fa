"""The machine's processes as seen from outside every sandbox: what a tool left running."""

from __future__ import annotations

import time
from pathlib import Path


def pids_running(marker: str) -> list[int]:
    """Live processes whose command line holds `marker`, the shell that ran it aside."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # A zombie (Z) or exiting (X) process is dead for our purposes.
        if marker in cmdline and state not in ("Z", "X") and "bash -c" not in cmdline:
            found.append(int(entry.name))
    return found


def wait_until_gone(marker: str, within: float) -> bool:
    """Whether every process holding `marker` has ended within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not pids_running(marker):
            return True
        time.sleep(0.01)  # polling a condition with a deadline
    return not pids_running(marker)

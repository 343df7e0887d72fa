"""The bash tool: runs in the workspace, times out, truncates, and takes its children along."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from agent_runner.tools import BashTool


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie (Z) or exiting (X) process is dead for our purposes.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_until_dead(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.01)
    return not _alive(pid)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return tmp_path


async def test_commands_run_in_the_workspace_without_the_run_token(workspace: Path) -> None:
    tool = BashTool(workspace, {"PATH": os.environ["PATH"]})
    out = await tool({"command": "pwd; echo token=${AGENT_RUN_TOKEN:-none}"})
    assert out.text.splitlines() == [str(workspace), "token=none"]
    assert not out.is_error


async def test_a_failing_command_reports_its_exit_code(workspace: Path) -> None:
    out = await BashTool(workspace, {"PATH": os.environ["PATH"]})(
        {"command": "echo no >&2; exit 3"}
    )
    assert out.is_error
    assert out.text == "no\n[exit code 3]"


async def test_long_output_is_truncated_with_a_notice(workspace: Path) -> None:
    tool = BashTool(workspace, {"PATH": os.environ["PATH"]}, max_output_chars=100)
    out = await tool({"command": "head -c 5000 /dev/zero | tr '\\0' x"})
    assert out.truncated
    assert out.text.startswith("x" * 100)
    assert "[output truncated: 4900 more characters not shown]" in out.text


async def test_a_command_past_its_timeout_is_killed_with_its_children(workspace: Path) -> None:
    tool = BashTool(workspace, {"PATH": os.environ["PATH"]}, timeout_seconds=0.5)
    out = await tool({"command": "sleep 30 & echo $! > child.pid; wait"})
    assert out.is_error
    assert "timed out after 0.5 s" in out.text
    assert _wait_until_dead(int((workspace / "child.pid").read_text()), within=2)


async def test_cancelling_a_command_kills_its_process_group(workspace: Path) -> None:
    tool = BashTool(workspace, {"PATH": os.environ["PATH"]})
    task = asyncio.create_task(tool({"command": "sleep 30 & echo $! > child.pid; wait"}))
    pid_file = workspace / "child.pid"
    async with asyncio.timeout(10):
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _wait_until_dead(int(pid_file.read_text()), within=2)


async def test_an_empty_command_is_a_tool_error(workspace: Path) -> None:
    from agent_runner.tools import ToolError

    with pytest.raises(ToolError, match="non-empty"):
        await BashTool(workspace, {})({"command": "  "})

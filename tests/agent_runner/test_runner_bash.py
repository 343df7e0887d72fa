"""The bash tool: runs in the workspace, times out, truncates, and takes its children along.

Each test runs unconfined (as in a pod) and under bubblewrap (as on a laptop).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from agent_runner.tools import BashTool, Bubblewrap, ToolSandbox, Unconfined
from servers.processes import pids_running, wait_until_gone


@pytest.fixture(params=["unconfined", "bubblewrap"])
def sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> ToolSandbox:
    if request.param == "bubblewrap":
        return Bubblewrap(tmp_path)
    return Unconfined(tmp_path)


def _env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin"}


async def test_commands_run_in_the_workspace_without_the_run_token(sandbox: ToolSandbox) -> None:
    tool = BashTool(sandbox, _env())
    out = await tool({"command": "pwd; echo token=${AGENT_RUN_TOKEN:-none}"})
    assert out.text.splitlines() == [sandbox.workspace, "token=none"]
    assert not out.is_error


async def test_a_failing_command_reports_its_exit_code(sandbox: ToolSandbox) -> None:
    out = await BashTool(sandbox, _env())({"command": "echo no >&2; exit 3"})
    assert out.is_error
    assert out.text == "no\n[exit code 3]"


async def test_long_output_is_truncated_with_a_notice(sandbox: ToolSandbox) -> None:
    tool = BashTool(sandbox, _env(), max_output_chars=100)
    out = await tool({"command": "head -c 5000 /dev/zero | tr '\\0' x"})
    assert out.truncated
    assert out.text.startswith("x" * 100)
    assert "[output truncated: 4900 more characters not shown]" in out.text


async def test_a_command_past_its_timeout_is_killed_with_its_children(sandbox: ToolSandbox) -> None:
    tool = BashTool(sandbox, _env(), timeout_seconds=0.5)
    out = await tool({"command": "sleep 31.01 & wait"})
    assert out.is_error
    assert "timed out after 0.5 s" in out.text
    assert wait_until_gone("sleep 31.01", within=5)


async def test_cancelling_a_command_kills_its_process_group(sandbox: ToolSandbox) -> None:
    tool = BashTool(sandbox, _env())
    task = asyncio.create_task(tool({"command": "sleep 31.02 & touch started; wait"}))
    async with asyncio.timeout(10):
        while not (sandbox.root / "started").exists() or not pids_running("sleep 31.02"):
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert wait_until_gone("sleep 31.02", within=5)


async def test_an_empty_command_is_a_tool_error(sandbox: ToolSandbox) -> None:
    from agent_runner.tools import ToolError

    with pytest.raises(ToolError, match="non-empty"):
        await BashTool(sandbox, {})({"command": "  "})


async def test_under_bubblewrap_nothing_outlives_its_command(tmp_path: Path) -> None:
    tool = BashTool(Bubblewrap(tmp_path), _env())
    out = await tool(
        {"command": "(setsid sleep 31.03 &); (nohup sleep 31.04 >/dev/null &); echo ok"}
    )
    assert out.text.strip() == "ok"
    assert wait_until_gone("sleep 31.03", within=5)
    assert wait_until_gone("sleep 31.04", within=5)

"""A hostile agent on a laptop: each escape it tries from its bash tool must fail.

The platform is the real one with its default local sandbox (bubblewrap), the runner the real
one; Claude is the scripted Messages API, whose replies are the attacker's commands. Another
user's run is kept alive meanwhile, so that its runner and token exist to be stolen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers.messages_api import MessagesApiServer, Reply, Text, ToolUse
from servers.platform import RunningPlatform, running_platform
from servers.processes import pids_running

UPSTREAM_KEY = "sk-upstream-escape-key"
WAIT_SECONDS = 30.0
VICTIM_MARKER = "sleep 301.5"


@pytest.fixture(scope="module")
def platform(
    messages_api: MessagesApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    env = {
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "AGENT_PLATFORM_MAX_CONCURRENT_RUNS": "4",
    }
    with running_platform(tmp_path_factory.mktemp("escapes"), env) as running:
        yield running


def _client(platform: RunningPlatform, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=platform.base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=WAIT_SECONDS,
    )


async def _start(http: httpx.AsyncClient, task: str) -> tuple[str, str]:
    agent = await http.post("/api/agents", json={"name": "agent"})
    assert agent.status_code == 201, agent.text
    agent_id: str = agent.json()["id"]
    run = await http.post(f"/api/agents/{agent_id}/runs", json={"task": task})
    assert run.status_code == 201, run.text
    run_id: str = run.json()["id"]
    return agent_id, run_id


async def _events(http: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await http.get(f"/api/runs/{run_id}/events")).json()["items"]
    return items


async def _wait_for_event(http: httpx.AsyncClient, run_id: str, kind: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not any(e["type"] == kind for e in await _events(http, run_id)):
        assert time.monotonic() < deadline, f"no {kind} event in run {run_id}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def _finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        run: dict[str, Any] = (await http.get(f"/api/runs/{run_id}")).json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"run stayed {run['status']}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


@pytest.fixture
async def victim(
    platform: RunningPlatform, messages_api: MessagesApiServer
) -> AsyncIterator[dict[str, str]]:
    """Another user's run, alive in a long tool call: its runner holds a live run token."""
    script = messages_api.add_script([Reply([ToolUse("bash", {"command": VICTIM_MARKER})])])
    async with _client(platform, platform.new_user_token("victim")) as http:
        agent_id, run_id = await _start(http, f"{script} wait")
        await _wait_for_event(http, run_id, "tool_call")
        yield {"agent_id": agent_id, "run_id": run_id}
        await http.post(f"/api/runs/{run_id}/cancel")


async def _attack(
    platform: RunningPlatform, messages_api: MessagesApiServer, commands: list[str]
) -> list[str]:
    """Run each command as an attacker's tool call; their outputs, in order."""
    steps: list[Reply] = [Reply([ToolUse("bash", {"command": c})]) for c in commands]
    script = messages_api.add_script([*steps, Reply([Text("done")])])
    async with _client(platform, platform.new_user_token("mallory")) as http:
        _, run_id = await _start(http, f"{script} look around")
        run = await _finished(http, run_id)
        assert run["status"] == "succeeded", run
        events = await _events(http, run_id)
    return [e["data"]["output"] for e in events if e["type"] == "tool_result"]


async def test_the_platforms_key_and_other_runs_tokens_cannot_be_read_from_proc(
    platform: RunningPlatform, messages_api: MessagesApiServer, victim: dict[str, str]
) -> None:
    assert platform.process is not None
    (output,) = await _attack(
        platform,
        messages_api,
        [
            f"cat /proc/{platform.process.pid}/environ; "
            "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done; "
            "ls /proc | grep -cE '^[0-9]+$'"
        ],
    )
    assert UPSTREAM_KEY not in output
    assert "AGENT_RUN_TOKEN" not in output
    assert "run_" not in output
    # The command's own shell, its `ls` and `grep`, and the sandbox's init: nothing else.
    assert int(output.strip().splitlines()[-1]) <= 5


async def test_the_database_and_other_workspaces_are_not_there(
    platform: RunningPlatform, messages_api: MessagesApiServer, victim: dict[str, str]
) -> None:
    data = platform.data_dir
    outputs = await _attack(
        platform,
        messages_api,
        [
            f"cat {data}/platform.db ../../../platform.db | head -c 100",
            f"ls {data}/workspaces {data}/sandboxes {data} ..; ls -a /",
            f"ls {Path.home()} {Path(__file__).parents[2]}",
        ],
    )
    assert "SQLite format" not in outputs[0]
    assert "No such file or directory" in outputs[0]
    assert f"{victim['agent_id']}.tar.gz" not in outputs[1]
    assert victim["run_id"] not in outputs[1]
    assert "No such file or directory" in outputs[2]
    assert "pyproject.toml" not in outputs[2]


async def test_nothing_outside_the_workspace_can_be_written(
    platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    # Probe files of the test's own, so that a sandbox that fails harms nothing of the machine.
    targets = [platform.data_dir / "planted", Path("/usr/.planted-by-an-agent")]
    targets.append(Path("/etc/.planted-by-an-agent"))
    try:
        (output,) = await _attack(
            platform,
            messages_api,
            [
                "".join(f"echo planted > {target}; " for target in targets)
                + "echo private > /tmp/scratch && cat /tmp/scratch"
            ],
        )
        assert not any(target.exists() for target in targets)
        assert "Read-only file system" in output
        # The sandbox's own /tmp is private and writable.
        assert output.strip().endswith("private")
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


async def test_the_platform_and_the_network_cannot_be_reached(
    platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    port = platform.base_url.rsplit(":", 1)[1]
    (output,) = await _attack(
        platform,
        messages_api,
        [
            'python3 -c "import urllib.request as u; '
            f"print(u.urlopen('http://127.0.0.1:{port}/healthz', timeout=3).read())\" "
            "2>&1 | tail -1"
        ],
    )
    assert "Connection refused" in output or "Network is unreachable" in output
    assert "ok" not in output.lower().replace("unreachable", "")


async def test_a_process_that_setsids_away_does_not_outlive_the_command(
    platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    await _attack(platform, messages_api, ["(setsid sleep 117.5 &); (nohup sleep 117.6 &); true"])
    for marker in ("sleep 117.5", "sleep 117.6"):
        assert not pids_running(marker), f"{marker} outlived its command"


async def test_tools_still_work_inside_the_workspace(
    platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    outputs = await _attack(
        platform,
        messages_api,
        [
            "python3 -c 'print(6 * 7)'",
            "git init -q . && git -c user.email=a@b -c user.name=a commit -q --allow-empty "
            "-m first && git log --oneline | wc -l",
            "mkdir -p src && printf 'b\\na\\n' > src/f && sort src/f | tr -d '\\n' && pwd",
        ],
    )
    assert outputs[0].strip() == "42"
    assert outputs[1].strip() == "1"
    assert outputs[2].strip() == "ab/workspace"

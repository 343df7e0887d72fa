"""The local executor on its own: sandbox environment, timeouts, and cleanup after a crash."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from agent_platform.executors import ExecutorError, Launch, SandboxExit
from agent_platform.executors.local import LocalExecutor, sandbox_environment
from agent_runner import protocol
from agent_runner.protocol import Outcome
from servers.platform import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def a_launch(run_id: str = "run_1", timeout: int = 60) -> Launch:
    return Launch(
        run_id=run_id,
        agent_id="agt_1",
        owner_id="usr_1",
        run_token="run_secret-token-value",
        timeout_seconds=timeout,
        platform_url="http://127.0.0.1:1",
    )


class Exits:
    def __init__(self) -> None:
        self.seen: list[SandboxExit] = []
        self.arrived = asyncio.Event()

    async def __call__(self, exit: SandboxExit) -> None:
        self.seen.append(exit)
        self.arrived.set()


def test_the_sandbox_environment_holds_only_basics_and_the_protocol() -> None:
    parent = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-ant-x",
        "ANTHROPIC_API_KEY": "sk-ant-y",
        "GOOGLE_APPLICATION_CREDENTIALS": "/key.json",
    }
    env = sandbox_environment(a_launch(), Path("/scratch/run_1"), parent)
    assert env == {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "HOME": "/scratch/run_1",
        "TMPDIR": "/scratch/run_1/tmp",
        "PYTHONUNBUFFERED": "1",
        protocol.ENV_RUN_ID: "run_1",
        protocol.ENV_PLATFORM_URL: "http://127.0.0.1:1",
        protocol.ENV_RUN_TOKEN: "run_secret-token-value",
        protocol.ENV_WORKSPACE: "/scratch/run_1/workspace",
    }


def test_a_launch_never_shows_its_token() -> None:
    assert "secret" not in repr(a_launch())


async def test_a_sandbox_past_its_deadline_is_reported_timed_out(tmp_path: Path) -> None:
    exits = Exits()
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=exits, grace_seconds=1)
    await executor.start(a_launch(timeout=1))
    await asyncio.wait_for(exits.arrived.wait(), 15)
    assert exits.seen[0].outcome is Outcome.TIMED_OUT
    assert not executor.scratch_dir("run_1").exists()


async def test_a_runner_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    exits = Exits()
    executor = LocalExecutor(
        command=[str(tmp_path / "no-such-runner")], data_dir=tmp_path, on_exit=exits
    )
    with pytest.raises(ExecutorError, match="AGENT_PLATFORM_RUNNER_COMMAND"):
        await executor.start(a_launch())
    assert not executor.scratch_dir("run_1").exists()


async def test_stopping_the_platform_stops_and_reports_its_sandboxes(tmp_path: Path) -> None:
    exits = Exits()
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=exits, grace_seconds=1)
    await executor.start(a_launch())
    await executor.aclose()
    assert [e.reason for e in exits.seen] == ["the platform stopped"]


async def test_reconcile_kills_sandboxes_a_crash_left_behind(tmp_path: Path) -> None:
    # A previous platform process started this sandbox and died without stopping it.
    left = a_launch("run_left")
    scratch = tmp_path / "sandboxes" / "run_left"
    (scratch / "workspace").mkdir(parents=True)
    (scratch / "tmp").mkdir()
    orphan = subprocess.Popen(
        SLEEPER, env=sandbox_environment(left, scratch, os.environ), start_new_session=True
    )
    pids = tmp_path / "executor" / "local"
    pids.mkdir(parents=True)
    (pids / "run_left.pid").write_text(str(orphan.pid))
    # A stale pid file whose pid now belongs to an unrelated process (this test) is left alone.
    (pids / "run_stale.pid").write_text(str(os.getpid()))

    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=Exits())
    found = await executor.reconcile(["run_left", "run_queued_elsewhere"])
    orphan.wait(10)
    assert orphan.returncode == -9
    assert set(found.lost) == {"run_left", "run_queued_elsewhere"}
    assert list(found.orphans_removed) == ["run_stale"]
    assert not scratch.exists()
    await wait_until(lambda: not list(pids.glob("*.pid")))

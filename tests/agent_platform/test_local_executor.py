"""The local executor on its own: sandbox environment, process groups, and adoption after a
crash. What every executor does is in the executor contract suite."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_platform.executors import ExecutorError, Launch, SandboxExit
from agent_platform.executors.local import LocalExecutor, sandbox_environment
from agent_platform.executors.runner_process import (
    is_running,
    read_record,
    record_runner,
    write_record,
)
from agent_runner import protocol
from agent_runner.protocol import Outcome
from servers.waiting import eventually

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
    env = sandbox_environment(a_launch(), Path("/scratch/run_1"), parent, "bubblewrap")
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
        protocol.ENV_TOOL_SANDBOX: "bubblewrap",
    }


def test_a_launch_never_shows_its_token() -> None:
    assert "secret" not in repr(a_launch())


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


# A runner that ignores SIGTERM and runs a tool in a process group of its own, as the bash
# tool does: only the hard kill can end it, and that kill must reach the tool as well.
STUBBORN_RUNNER = [
    sys.executable,
    "-c",
    "import os, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "tool = subprocess.Popen(['sleep', '120'], process_group=0)\n"
    "pid_file = os.path.join(os.environ['AGENT_WORKSPACE'], '..', 'tool.pid')\n"
    "open(pid_file, 'w').write(str(tool.pid))\n"
    "time.sleep(120)\n",
]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_the_hard_kill_of_a_cancelled_sandbox_reaches_its_tools(tmp_path: Path) -> None:
    exits = Exits()
    executor = LocalExecutor(
        command=STUBBORN_RUNNER, data_dir=tmp_path, on_exit=exits, grace_seconds=1
    )
    await executor.start(a_launch())
    pid_file = executor.scratch_dir("run_1") / "tool.pid"
    await eventually(
        lambda: pid_file.exists() and bool(pid_file.read_text()),
        "the runner to start its tool",
        timeout=15,
    )
    tool = int(pid_file.read_text())
    await executor.cancel("run_1")
    await asyncio.wait_for(exits.arrived.wait(), 15)
    await eventually(lambda: not _alive(tool), "the tool to end with its sandbox", timeout=5)


def left_behind(executor: LocalExecutor, run_id: str, timeout: int = 60) -> subprocess.Popen[bytes]:
    """A sandbox a previous platform process started, recorded as it records, then crashed."""
    scratch = executor.scratch_dir(run_id)
    (scratch / "workspace").mkdir(parents=True)
    (scratch / "tmp").mkdir()
    runner = subprocess.Popen(
        SLEEPER,
        env=sandbox_environment(a_launch(run_id), scratch, os.environ, "bubblewrap"),
        start_new_session=True,
    )
    record = record_runner(runner.pid, started_at=time.time(), timeout_seconds=timeout)
    assert record is not None
    executor.record_path(run_id).parent.mkdir(parents=True, exist_ok=True)
    write_record(executor.record_path(run_id), record)
    return runner


async def test_a_started_sandbox_is_recorded_by_pid_and_start_time(tmp_path: Path) -> None:
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=Exits(), grace_seconds=1)
    await executor.start(a_launch(timeout=30))
    record = read_record(executor.record_path("run_1"))
    assert record is not None
    assert is_running(record)
    assert record.timeout_seconds == 30
    # The same pid with another start time is another process.
    assert not is_running(dataclasses.replace(record, start_ticks=record.start_ticks - 1))
    await executor.aclose()
    assert not executor.record_path("run_1").exists()


async def test_reconcile_adopts_a_live_sandbox_and_cancel_still_stops_it(tmp_path: Path) -> None:
    exits = Exits()
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=exits, grace_seconds=5)
    runner = left_behind(executor, "run_left")
    try:
        found = await executor.reconcile(["run_left"])
        assert list(found.adopted) == ["run_left"]
        assert list(found.lost) == []
        assert runner.poll() is None, "an adopted sandbox goes on running"

        await executor.cancel("run_left")
        await asyncio.wait_for(exits.arrived.wait(), 15)
        assert runner.wait(10) == -signal.SIGTERM
        assert [(e.run_id, e.outcome) for e in exits.seen] == [("run_left", Outcome.CANCELLED)]
        assert not executor.scratch_dir("run_left").exists()
        assert not executor.record_path("run_left").exists()
    finally:
        runner.kill()
        runner.wait(10)


async def test_an_adopted_sandbox_past_its_deadline_is_timed_out(tmp_path: Path) -> None:
    exits = Exits()
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=exits, grace_seconds=5)
    runner = left_behind(executor, "run_left", timeout=1)
    try:
        await executor.reconcile(["run_left"])
        await asyncio.wait_for(exits.arrived.wait(), 15)
        assert exits.seen[0].outcome is Outcome.TIMED_OUT
        assert "1s wall-clock limit" in exits.seen[0].reason
        assert runner.wait(10) == -signal.SIGTERM
    finally:
        runner.kill()
        runner.wait(10)


async def test_an_adopted_sandbox_that_ends_without_its_result_is_reported(
    tmp_path: Path,
) -> None:
    exits = Exits()
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=exits, grace_seconds=5)
    runner = left_behind(executor, "run_left")
    try:
        await executor.reconcile(["run_left"])
        # It ends on its own (no one adopted it to kill it): the executor notices.
        runner.kill()
        await asyncio.wait_for(exits.arrived.wait(), 15)
        assert exits.seen[0].outcome is Outcome.FAILED
        assert "without reporting its result" in exits.seen[0].reason
    finally:
        runner.kill()
        runner.wait(10)


async def test_reconcile_fails_a_dead_sandbox_and_removes_orphans(tmp_path: Path) -> None:
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=Exits())
    dead = left_behind(executor, "run_dead")
    dead.kill()
    dead.wait(10)
    orphan = left_behind(executor, "run_finished_meanwhile")
    # A record whose pid now belongs to an unrelated process (this test) is left alone.
    reused = record_runner(os.getpid(), started_at=time.time(), timeout_seconds=60)
    assert reused is not None
    stale = dataclasses.replace(reused, start_ticks=reused.start_ticks + 1)
    write_record(executor.record_path("run_stale"), stale)
    try:
        found = await executor.reconcile(["run_dead", "run_stale", "run_queued_elsewhere"])
        assert orphan.wait(10) == -signal.SIGKILL
    finally:
        orphan.kill()
        orphan.wait(10)
    assert list(found.adopted) == []
    assert set(found.lost) == {"run_dead", "run_stale", "run_queued_elsewhere"}
    assert list(found.orphans_removed) == ["run_finished_meanwhile"]
    for run_id in ("run_dead", "run_finished_meanwhile", "run_stale"):
        assert not executor.scratch_dir(run_id).exists()
        assert not executor.record_path(run_id).exists()


async def test_a_runner_that_fails_before_its_run_says_why_in_the_reason(tmp_path: Path) -> None:
    exits = Exits()
    failing = [
        sys.executable,
        "-c",
        "import sys\n"
        "print('loading the SDK')\n"
        "print('token was run_secret-token-value, key sk-ant-api03-' + 'x' * 30)\n"
        "print('AGENT_WORKSPACE=work is not a directory', file=sys.stderr)\n"
        "sys.exit(2)\n",
    ]
    executor = LocalExecutor(command=failing, data_dir=tmp_path, on_exit=exits)
    await executor.start(a_launch())
    await asyncio.wait_for(exits.arrived.wait(), 15)
    reason = exits.seen[0].reason
    assert reason.startswith("the runner exited with code 2; its last output:")
    assert "AGENT_WORKSPACE=work is not a directory" in reason
    assert "run_secret-token-value" not in reason
    assert "sk-ant-api03" not in reason


async def test_runs_are_refused_with_the_fix_where_bubblewrap_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PATH without bwrap: the machine of a user who never installed it.
    monkeypatch.setenv("PATH", str(tmp_path))
    executor = LocalExecutor(command=SLEEPER, data_dir=tmp_path, on_exit=Exits())
    with pytest.raises(ExecutorError, match="apt-get install bubblewrap"):
        await executor.start(a_launch())
    unconfined = LocalExecutor(
        command=SLEEPER, data_dir=tmp_path, on_exit=Exits(), tool_sandbox="none"
    )
    await unconfined.start(a_launch())
    await unconfined.aclose()

"""Runs each sandbox as a local subprocess: the laptop path.

The runner starts in a fresh scratch directory, in its own process group, with a scrubbed
environment that holds nothing of the platform's but the run's id, URL, token and workspace.
It runs every tool command under bubblewrap (`agent_runner.tools.sandbox`), so the agent sees
its workspace and nothing else of the machine; where bubblewrap cannot run, runs are refused
with the fix, unless the sandbox was deliberately turned off.
Cancelling or timing out stops the whole group: SIGTERM, then SIGKILL after a grace period.

A runner outlives a platform that crashes: it buffers its events and retries its calls while the
platform is away. The platform that starts next adopts every runner still running for an active
run (found by the record written at spawn), and goes on enforcing its deadline and cancel and
watching for its end; an active run whose runner is gone is lost, and its run is failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent_runner import protocol
from agent_runner.protocol import Outcome

from agent_platform.executors.base import (
    ExecutorError,
    Launch,
    OnExit,
    Reconciliation,
    SandboxExit,
)
from agent_platform.executors.runner_process import (
    RunnerRecord,
    open_runner,
    read_record,
    record_runner,
    wait_for_exit,
    write_record,
)
from agent_platform.logs import mask_secrets

log = logging.getLogger(__name__)

# The only variables of the platform's environment a sandbox inherits.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
# How much of a runner's output explains a run that ended without reporting why.
OUTPUT_TAIL_LINES = 12
OUTPUT_TAIL_BYTES = 4096

ToolSandboxMode = Literal["bubblewrap", "none"]

BUBBLEWRAP_MISSING = (
    "local runs need bubblewrap to sandbox the agent's commands, and it {problem}; install it "
    "(`make up` does: apt-get install bubblewrap) and allow unprivileged user namespaces "
    "(sysctl kernel.unprivileged_userns_clone=1; on Ubuntu also "
    "kernel.apparmor_restrict_unprivileged_userns=0), or set AGENT_PLATFORM_LOCAL_SANDBOX=none "
    "to run tools unconfined, knowingly"
)


def sandbox_environment(
    launch: Launch, scratch: Path, parent: Mapping[str, str], tool_sandbox: ToolSandboxMode
) -> dict[str, str]:
    """The complete environment of a sandbox: a few basics and the protocol's variables."""
    env = {name: parent[name] for name in INHERITED_ENV if name in parent}
    env.update(
        {
            "HOME": str(scratch),
            "TMPDIR": str(scratch / "tmp"),
            "PYTHONUNBUFFERED": "1",
            protocol.ENV_RUN_ID: launch.run_id,
            protocol.ENV_PLATFORM_URL: launch.platform_url,
            protocol.ENV_RUN_TOKEN: launch.run_token,
            protocol.ENV_WORKSPACE: str(scratch / "workspace"),
            protocol.ENV_TOOL_SANDBOX: (
                protocol.SANDBOX_BUBBLEWRAP
                if tool_sandbox == "bubblewrap"
                else protocol.SANDBOX_NONE
            ),
        }
    )
    return env


async def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot sandbox commands here, or None when it can."""
    if shutil.which("bwrap") is None:
        return BUBBLEWRAP_MISSING.format(problem="is not installed")
    # The same namespaces the runner asks for; a refused user namespace fails here.
    probe = ("bwrap", "--unshare-all", "--uid", "1000", "--ro-bind", "/", "/", "true")
    try:
        process = await asyncio.create_subprocess_exec(
            *probe,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await process.communicate()
    except OSError as error:
        return BUBBLEWRAP_MISSING.format(problem=f"cannot start ({error.strerror})")
    if process.returncode != 0:
        said = stderr.decode(errors="replace").strip() or f"exit code {process.returncode}"
        return BUBBLEWRAP_MISSING.format(problem=f"cannot create its namespaces ({said})")
    return None


def output_tail(path: Path, secrets: Sequence[str] = ()) -> str:
    """The last lines a runner wrote, bounded and with secrets masked: why it ended."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(0, log_file.tell() - OUTPUT_TAIL_BYTES))
            text = log_file.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()][-OUTPUT_TAIL_LINES:]
    tail = "\n".join(lines)
    for secret in secrets:
        tail = tail.replace(secret, "[secret]")
    return mask_secrets(tail)


@dataclass
class _Sandbox:
    run_id: str
    # The runner's pid, which is also its process group's id.
    pid: int
    # Waits until the runner has ended; says how it ended.
    ended: Callable[[], Coroutine[Any, Any, str]]
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None


async def _child_ended(process: asyncio.subprocess.Process, log_path: Path, token: str) -> str:
    reason = f"the runner exited with code {await process.wait()}"
    tail = output_tail(log_path, [token])
    return f"{reason}; its last output:\n{tail}" if tail else reason


async def _adopted_ended(pidfd: int, log_path: Path) -> str:
    await wait_for_exit(pidfd)
    reason = "the runner ended without reporting its result"
    tail = output_tail(log_path)
    return f"{reason}; its last output:\n{tail}" if tail else reason


class LocalExecutor:
    def __init__(
        self,
        *,
        command: Sequence[str],
        data_dir: Path,
        on_exit: OnExit,
        grace_seconds: float = 10.0,
        tool_sandbox: ToolSandboxMode = "bubblewrap",
    ) -> None:
        self._command = list(command)
        self._tool_sandbox = tool_sandbox
        # Checked at the first start, and again while it fails, so installing it needs no restart.
        self._sandbox_ready = tool_sandbox == "none"
        self._sandboxes_dir = data_dir / "sandboxes"
        self._records_dir = data_dir / "executor" / "local"
        self._logs_dir = data_dir / "logs" / "runs"
        self._on_exit = on_exit
        self._grace = grace_seconds
        self._running: dict[str, _Sandbox] = {}
        self._stopping = "cancelled"

    def scratch_dir(self, run_id: str) -> Path:
        return self._sandboxes_dir / run_id

    def record_path(self, run_id: str) -> Path:
        """Where the record that identifies the run's runner process is kept."""
        return self._records_dir / f"{run_id}.json"

    def log_path(self, run_id: str) -> Path:
        """Where the runner's stdout and stderr go; kept after the sandbox is removed."""
        return self._logs_dir / f"{run_id}.log"

    async def start(self, launch: Launch) -> None:
        if launch.run_id in self._running:
            raise ExecutorError(f"run {launch.run_id} already has a sandbox")
        if not self._sandbox_ready:
            problem = await bubblewrap_problem()
            if problem is not None:
                raise ExecutorError(problem)
            self._sandbox_ready = True
        scratch = self.scratch_dir(launch.run_id)
        shutil.rmtree(scratch, ignore_errors=True)
        places = (scratch / "workspace", scratch / "tmp", self._records_dir, self._logs_dir)
        for directory in places:
            directory.mkdir(parents=True, exist_ok=True)
        env = sandbox_environment(launch, scratch, os.environ, self._tool_sandbox)
        started_at = time.time()
        with self.log_path(launch.run_id).open("ab") as output:
            try:
                process = await asyncio.create_subprocess_exec(
                    *self._command,
                    cwd=scratch,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                shutil.rmtree(scratch, ignore_errors=True)
                raise ExecutorError(
                    f"cannot start the runner {self._command[0]!r}: {error.strerror}; "
                    "check AGENT_PLATFORM_RUNNER_COMMAND"
                ) from error
        record = record_runner(
            process.pid, started_at=started_at, timeout_seconds=launch.timeout_seconds
        )
        if record is not None:  # else it ended already, and its watcher reports that
            write_record(self.record_path(launch.run_id), record)
        log_path = self.log_path(launch.run_id)
        sandbox = _Sandbox(
            launch.run_id,
            process.pid,
            lambda: _child_ended(process, log_path, launch.run_token),
        )
        self._running[launch.run_id] = sandbox
        sandbox.watcher = asyncio.create_task(
            self._watch(sandbox, launch.timeout_seconds, launch.timeout_seconds)
        )
        log.info("sandbox started", extra={"run_id": launch.run_id, "pid": process.pid})

    async def cancel(self, run_id: str) -> None:
        sandbox = self._running.get(run_id)
        if sandbox is not None:
            sandbox.cancelled.set()

    async def _watch(
        self, sandbox: _Sandbox, remaining_seconds: float, timeout_seconds: float
    ) -> None:
        ended = asyncio.create_task(sandbox.ended())
        cancelled = asyncio.create_task(sandbox.cancelled.wait())
        done, _ = await asyncio.wait(
            {ended, cancelled}, timeout=remaining_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        cancelled.cancel()
        if ended in done:
            outcome, reason = Outcome.FAILED, ended.result()
        elif cancelled in done:
            outcome, reason = Outcome.CANCELLED, self._stopping
            await self._stop(sandbox, ended)
        else:
            outcome = Outcome.TIMED_OUT
            reason = f"the run exceeded its {timeout_seconds:g}s wall-clock limit"
            await self._stop(sandbox, ended)
        await ended
        # Whatever the runner left behind in its group goes with it.
        _kill_group(sandbox.pid, signal.SIGKILL)
        self._running.pop(sandbox.run_id, None)
        self.record_path(sandbox.run_id).unlink(missing_ok=True)
        shutil.rmtree(self.scratch_dir(sandbox.run_id), ignore_errors=True)
        log.info(
            "sandbox ended",
            extra={"run_id": sandbox.run_id, "outcome": outcome.value, "reason": reason},
        )
        try:
            await self._on_exit(SandboxExit(sandbox.run_id, outcome, reason))
        except Exception:
            log.exception("reporting a sandbox exit failed", extra={"run_id": sandbox.run_id})

    async def _stop(self, sandbox: _Sandbox, ended: asyncio.Task[str]) -> None:
        _kill_group(sandbox.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(ended), self._grace)
        except TimeoutError:
            _kill_group(sandbox.pid, signal.SIGKILL)

    async def reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        active = set(active_run_ids)
        adopted: list[str] = []
        orphans: list[str] = []
        if self._records_dir.is_dir():
            for path in sorted(self._records_dir.glob("*.json")):
                run_id = path.stem
                if run_id in self._running:
                    continue
                record = read_record(path)
                pidfd = None if record is None else open_runner(record)
                if record is not None and pidfd is not None:
                    if run_id in active:
                        self._adopt(run_id, record, pidfd)
                        adopted.append(run_id)
                        continue
                    os.close(pidfd)
                    _kill_group(record.pid, signal.SIGKILL)
                path.unlink(missing_ok=True)
                shutil.rmtree(self.scratch_dir(run_id), ignore_errors=True)
                if run_id not in active:
                    orphans.append(run_id)
        lost = [run_id for run_id in active_run_ids if run_id not in self._running]
        return Reconciliation(lost=lost, orphans_removed=orphans, adopted=adopted)

    def _adopt(self, run_id: str, record: RunnerRecord, pidfd: int) -> None:
        """Look after a runner a previous platform process started, as if this one had."""
        log_path = self.log_path(run_id)
        sandbox = _Sandbox(run_id, record.pid, lambda: _adopted_ended(pidfd, log_path))
        self._running[run_id] = sandbox
        remaining = max(0.0, record.deadline - time.time())
        sandbox.watcher = asyncio.create_task(
            self._watch(sandbox, remaining, record.timeout_seconds)
        )
        log.info("sandbox adopted", extra={"run_id": run_id, "pid": record.pid})

    async def aclose(self) -> None:
        self._stopping = "the platform stopped"
        sandboxes = list(self._running.values())
        for sandbox in sandboxes:
            sandbox.cancelled.set()
        watchers = [s.watcher for s in sandboxes if s.watcher is not None]
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)


def _kill_group(pgid: int, signum: signal.Signals) -> None:
    """Signal the runner's group; SIGKILL also reaches its tools' groups in its session."""
    groups = {pgid}
    if signum is signal.SIGKILL:
        groups |= _groups_in_session(pgid)
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def _groups_in_session(session: int) -> set[int]:
    """Process groups of the session the runner leads (it starts as a session leader)."""
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, session, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            groups.add(int(fields[2]))
    return groups

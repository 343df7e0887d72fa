"""Runs each sandbox as a local subprocess: the laptop path.

The runner starts in a fresh scratch directory, in its own process group, with a scrubbed
environment that holds nothing of the platform's but the run's id, URL, token and workspace.
Cancelling or timing out stops the whole group: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent_runner import protocol
from agent_runner.protocol import Outcome

from agent_platform.executors.base import (
    ExecutorError,
    Launch,
    OnExit,
    Reconciliation,
    SandboxExit,
)

log = logging.getLogger(__name__)

# The only variables of the platform's environment a sandbox inherits.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")


def sandbox_environment(launch: Launch, scratch: Path, parent: Mapping[str, str]) -> dict[str, str]:
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
        }
    )
    return env


@dataclass
class _Sandbox:
    run_id: str
    process: asyncio.subprocess.Process
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None


class LocalExecutor:
    def __init__(
        self,
        *,
        command: Sequence[str],
        data_dir: Path,
        on_exit: OnExit,
        grace_seconds: float = 10.0,
    ) -> None:
        self._command = list(command)
        self._sandboxes_dir = data_dir / "sandboxes"
        self._pids_dir = data_dir / "executor" / "local"
        self._logs_dir = data_dir / "logs" / "runs"
        self._on_exit = on_exit
        self._grace = grace_seconds
        self._running: dict[str, _Sandbox] = {}
        self._stopping = "cancelled"

    def scratch_dir(self, run_id: str) -> Path:
        return self._sandboxes_dir / run_id

    def log_path(self, run_id: str) -> Path:
        """Where the runner's stdout and stderr go; kept after the sandbox is removed."""
        return self._logs_dir / f"{run_id}.log"

    async def start(self, launch: Launch) -> None:
        if launch.run_id in self._running:
            raise ExecutorError(f"run {launch.run_id} already has a sandbox")
        scratch = self.scratch_dir(launch.run_id)
        shutil.rmtree(scratch, ignore_errors=True)
        for directory in (scratch / "workspace", scratch / "tmp", self._pids_dir, self._logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        env = sandbox_environment(launch, scratch, os.environ)
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
        (self._pids_dir / f"{launch.run_id}.pid").write_text(str(process.pid))
        sandbox = _Sandbox(launch.run_id, process)
        self._running[launch.run_id] = sandbox
        sandbox.watcher = asyncio.create_task(self._watch(sandbox, launch.timeout_seconds))
        log.info("sandbox started", extra={"run_id": launch.run_id, "pid": process.pid})

    async def cancel(self, run_id: str) -> None:
        sandbox = self._running.get(run_id)
        if sandbox is not None:
            sandbox.cancelled.set()

    async def _watch(self, sandbox: _Sandbox, timeout_seconds: float) -> None:
        exited = asyncio.create_task(sandbox.process.wait())
        cancelled = asyncio.create_task(sandbox.cancelled.wait())
        done, _ = await asyncio.wait(
            {exited, cancelled}, timeout=timeout_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        cancelled.cancel()
        if exited in done:
            code = sandbox.process.returncode
            outcome, reason = Outcome.FAILED, f"the runner exited with code {code}"
        elif cancelled in done:
            outcome, reason = Outcome.CANCELLED, self._stopping
            await self._stop(sandbox)
        else:
            outcome = Outcome.TIMED_OUT
            reason = f"the run exceeded its {timeout_seconds:g}s wall-clock limit"
            await self._stop(sandbox)
        await exited
        # Whatever the runner left behind in its group goes with it.
        _kill_group(sandbox.process.pid, signal.SIGKILL)
        self._running.pop(sandbox.run_id, None)
        (self._pids_dir / f"{sandbox.run_id}.pid").unlink(missing_ok=True)
        shutil.rmtree(self.scratch_dir(sandbox.run_id), ignore_errors=True)
        log.info(
            "sandbox ended",
            extra={"run_id": sandbox.run_id, "outcome": outcome.value, "reason": reason},
        )
        try:
            await self._on_exit(SandboxExit(sandbox.run_id, outcome, reason))
        except Exception:
            log.exception("reporting a sandbox exit failed", extra={"run_id": sandbox.run_id})

    async def _stop(self, sandbox: _Sandbox) -> None:
        _kill_group(sandbox.process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(sandbox.process.wait()), self._grace)
        except TimeoutError:
            _kill_group(sandbox.process.pid, signal.SIGKILL)

    async def reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        orphans = []
        if self._pids_dir.is_dir():
            for pid_file in self._pids_dir.glob("*.pid"):
                run_id = pid_file.stem
                if run_id in self._running:
                    continue
                with contextlib.suppress(ValueError, OSError):
                    pid = int(pid_file.read_text())
                    if _is_sandbox_of(pid, run_id):
                        _kill_group(pid, signal.SIGKILL)
                pid_file.unlink(missing_ok=True)
                shutil.rmtree(self.scratch_dir(run_id), ignore_errors=True)
                if run_id not in active_run_ids:
                    orphans.append(run_id)
        # A local sandbox never outlives the platform that started it.
        lost = [run_id for run_id in active_run_ids if run_id not in self._running]
        return Reconciliation(lost=lost, orphans_removed=orphans)

    async def aclose(self) -> None:
        self._stopping = "the platform stopped"
        sandboxes = list(self._running.values())
        for sandbox in sandboxes:
            sandbox.cancelled.set()
        watchers = [s.watcher for s in sandboxes if s.watcher is not None]
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)


def _kill_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _is_sandbox_of(pid: int, run_id: str) -> bool:
    """Whether `pid` is still the runner of `run_id`, not a later process that reused the id."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{protocol.ENV_RUN_ID}={run_id}".encode() in environ.split(b"\0")

"""The `bash` tool: one command at a time, in its own process group, in the run's sandbox.

Each command runs in a fresh process group so that a timeout or a cancelled run can end the
command together with everything it started, and nothing else; under bubblewrap the command is
also the init of its own PID namespace, so nothing it started outlives it (`tools/sandbox.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from typing import Any, Final

from agent_runner.tools.output import ToolError, ToolOutput, truncate
from agent_runner.tools.sandbox import ToolSandbox

DEFINITION: Final[dict[str, Any]] = {"type": "bash_20250124", "name": "bash"}
_READ_CHUNK = 64 * 1024


class BashTool:
    name: Final = "bash"
    definition: Final = DEFINITION

    def __init__(
        self,
        sandbox: ToolSandbox,
        env: Mapping[str, str],
        *,
        timeout_seconds: float = 120.0,
        max_output_chars: int = 30_000,
    ) -> None:
        self._sandbox = sandbox
        self._env = dict(env)
        self._timeout = timeout_seconds
        self._limit = max_output_chars
        self._groups: set[int] = set()

    async def __call__(self, tool_input: dict[str, Any]) -> ToolOutput:
        if tool_input.get("restart"):
            self.kill_all()
            return ToolOutput("tool has been restarted.")
        command = tool_input.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolError("the bash tool needs a non-empty `command` string")
        return await self._run(command)

    async def _spawn(self, command: str) -> asyncio.subprocess.Process:
        creating = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *self._sandbox.command(["bash", "-c", command]),
                cwd=self._sandbox.root,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # A group of its own, so a timeout kills the command and not the runner; but
                # the runner's session, so the sandbox's hard kill reaches it too.
                process_group=0,
            )
        )
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The command may already be running: finish creating it, so it can be killed.
            process = await creating
            self._kill(process.pid)
            await process.wait()
            raise

    async def _run(self, command: str) -> ToolOutput:
        process = await self._spawn(command)
        self._groups.add(process.pid)
        collected = bytearray()
        total = 0
        try:
            async with asyncio.timeout(self._timeout):
                total = await self._collect(process, collected)
                code = await process.wait()
        except TimeoutError:
            self._kill(process.pid)
            await process.wait()
            text, _ = truncate(collected.decode(errors="replace"), self._limit)
            return ToolOutput(
                f"{text}\n[command timed out after {self._timeout:g} s and was killed]",
                is_error=True,
            )
        finally:
            # Covers cancellation too: the command's whole group goes with the run.
            self._kill(process.pid)
            self._groups.discard(process.pid)
        decoded = collected.decode(errors="replace")
        text, truncated = truncate(decoded, self._limit, total - len(collected) + len(decoded))
        if code != 0:
            text = f"{text.rstrip()}\n[exit code {code}]" if text.strip() else f"[exit code {code}]"
        return ToolOutput(text, is_error=code != 0, truncated=truncated)

    async def _collect(self, process: asyncio.subprocess.Process, into: bytearray) -> int:
        """Read all output, keeping what the model can be shown; return how much there was."""
        assert process.stdout is not None
        # Reading everything keeps the command from blocking on a full pipe.
        total = 0
        while chunk := await process.stdout.read(_READ_CHUNK):
            total += len(chunk)
            if len(into) <= self._limit * 4:
                into.extend(chunk)
        return total

    @staticmethod
    def _kill(group: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)

    def kill_all(self) -> None:
        """End every running command's process group (on SIGTERM, before reporting)."""
        for group in list(self._groups):
            self._kill(group)

"""One run from start to finish: assignment, workspace, the agent loop, upload, final report.

Every way a run can end (success, a failed call to Claude, an exhausted budget, the wall-clock
limit, SIGTERM) goes through the same ending: tools killed, workspace uploaded if it changed,
an ERROR event when it did not succeed, the terminal RESULT, and every event flushed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from agent_runner import conversation, protocol, workspace_archive
from agent_runner.agent import Agent, ReplyCut
from agent_runner.config import EXIT_CANNOT_START, RunnerConfig
from agent_runner.conversation import Finish
from agent_runner.platform_client import PlatformClient, PlatformError, PlatformUnreachable
from agent_runner.protocol import EventType, Outcome, RunResult
from agent_runner.reporter import Reporter
from agent_runner.tools import Bubblewrap, Toolbox, ToolError, ToolSandbox
from agent_runner.tools import sandbox as tool_sandbox

EXIT_CODES: Final = {
    Outcome.SUCCEEDED: 0,
    Outcome.FAILED: 1,
    Outcome.TIMED_OUT: 124,
    Outcome.CANCELLED: 143,
}
# Claude's API can be briefly unavailable and so can the gateway (a platform restart); the SDK
# retries with backoff, honouring retry-after.
CLAUDE_RETRIES: Final = 8
UPLOAD_SECONDS: Final = 30.0
FLUSH_SECONDS: Final = 120.0
SANDBOX_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
# A notice names this many links left out of the workspace, then says how many more.
MAX_LEFT_OUT_SHOWN: Final = 10


@dataclass
class _Progress:
    """What the run has done so far, readable however it ended."""

    agent: Agent | None = None
    baseline: str | None = None
    toolbox: Toolbox | None = None
    cancel_requested: bool = False
    work: asyncio.Task[Finish] | None = None
    notes: list[str] = field(default_factory=list)

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self.toolbox is not None:
            self.toolbox.bash.kill_all()
        if self.work is not None:
            self.work.cancel()


def own_deadline(timeout_seconds: float, age_seconds: float) -> float:
    """How long the agent loop may still take: a little under the executor's hard limit.

    The executor counts from the moment it started this process; stopping first leaves time to
    save the workspace and report `timed_out` before the executor ends the sandbox.
    """
    margin = min(10.0, max(2.0, timeout_seconds / 10))
    return max(0.0, timeout_seconds - margin - age_seconds)


def process_age() -> float:
    """Seconds since this process started, 0 where /proc cannot tell."""
    try:
        # Field 22 of /proc/self/stat, counted after the parenthesised command name.
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, float(Path("/proc/uptime").read_text().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return 0.0


def tool_environment(env: Mapping[str, str], sandbox: ToolSandbox) -> dict[str, str]:
    """The environment commands run with: nothing of the runner's, the run token least of all."""
    kept = {name: env[name] for name in ("PATH", "LANG", "LC_ALL", "TZ") if name in env}
    if isinstance(sandbox, Bubblewrap):
        # Only /usr is there: the runner's own PATH may name places the sandbox does not have.
        kept["PATH"] = SANDBOX_PATH
    workspace = sandbox.workspace
    return {**kept, "HOME": workspace, "PWD": workspace, "TERM": "dumb"}


async def _work(
    config: RunnerConfig,
    assignment: protocol.Assignment,
    platform: PlatformClient,
    reporter: Reporter,
    progress: _Progress,
    env: Mapping[str, str],
) -> Finish:
    sandbox = tool_sandbox.for_mode(config.tool_sandbox, config.workspace)
    toolbox = progress.toolbox = Toolbox(
        assignment.allowed_tools, sandbox, tool_environment(env, sandbox)
    )
    archive = await platform.download_workspace()
    if archive is not None:
        await asyncio.to_thread(workspace_archive.unpack, archive, config.workspace)
    with workspace_archive.scratch_file() as scratch:
        unchanged = await asyncio.to_thread(workspace_archive.pack, config.workspace, scratch)
    progress.baseline = unchanged.digest
    # Imported here: __main__ starts loading the SDK in the background at process start.
    import anthropic

    claude = anthropic.AsyncAnthropic(
        base_url=config.platform_url + protocol.GATEWAY_PREFIX,
        api_key=config.run_token,
        max_retries=CLAUDE_RETRIES,
    )
    agent = progress.agent = Agent(claude, assignment, toolbox, reporter)
    try:
        limit = own_deadline(assignment.limits.timeout_seconds, process_age())
        async with asyncio.timeout(limit):
            return await agent.run()
    except TimeoutError:
        return Finish(
            Outcome.TIMED_OUT,
            f"the run reached its wall-clock limit of {assignment.limits.timeout_seconds} s "
            "(less the seconds kept to save the workspace); raise the agent's timeout_seconds "
            "or split the task",
            kind="timeout",
        )
    finally:
        await claude.close()


def _failure(exc: BaseException) -> Finish:
    import anthropic

    if isinstance(exc, ReplyCut):
        cause = exc.__cause__
        if isinstance(cause, anthropic.APIStatusError):  # an error event; no HTTP status
            described = conversation.describe_api_error(None, cause.body, str(cause))
            if described.kind == "overloaded":
                return described
        return Finish(
            Outcome.FAILED,
            f"Claude's reply was cut off {conversation.STREAM_ATTEMPTS} times in a row, the "
            f"last time: {exc}; check that the platform and the Anthropic API are up",
            kind="upstream",
        )
    if isinstance(exc, anthropic.APIStatusError):
        return conversation.describe_api_error(exc.status_code, exc.body, str(exc))
    if isinstance(exc, anthropic.APIConnectionError):
        return Finish(
            Outcome.FAILED,
            f"the LLM gateway could not be reached: {exc}; check that the platform is up",
            kind="gateway_unreachable",
        )
    if isinstance(exc, workspace_archive.ArchiveError | ToolError):
        return Finish(Outcome.FAILED, str(exc), kind="setup")
    if isinstance(exc, PlatformError | PlatformUnreachable):
        return Finish(Outcome.FAILED, str(exc), kind="platform")
    return Finish(Outcome.FAILED, f"the runner failed: {exc!r}", kind="runner")


def _left_out_notice(left_out: tuple[workspace_archive.LeftOut, ...]) -> str:
    shown = ", ".join(str(link) for link in left_out[:MAX_LEFT_OUT_SHOWN])
    more = len(left_out) - MAX_LEFT_OUT_SHOWN
    return (
        f"not saved with the workspace: {shown}{f' and {more} more' if more > 0 else ''}; "
        "a workspace keeps only links that point inside it, so use a relative link to a "
        "file in the workspace or copy the file in"
    )


async def _upload(
    config: RunnerConfig,
    platform: PlatformClient,
    reporter: Reporter,
    progress: _Progress,
    finish: Finish,
) -> Finish:
    """Upload the workspace if the agent changed it; a refused upload fails the run."""
    if progress.baseline is None:
        return finish
    try:
        with workspace_archive.scratch_file() as archive:
            packed = await asyncio.to_thread(workspace_archive.pack, config.workspace, archive)
            if packed.left_out:
                reporter.emit(
                    EventType.NOTICE,
                    {"message": _left_out_notice(packed.left_out), "kind": "workspace"},
                )
            if packed.digest != progress.baseline:
                await platform.upload_workspace(
                    archive, packed.size, deadline_seconds=UPLOAD_SECONDS
                )
    except (PlatformError, PlatformUnreachable, OSError) as exc:
        message = f"the workspace was not saved: {exc}"
        if finish.outcome is Outcome.SUCCEEDED:
            return Finish(Outcome.FAILED, message, kind="workspace")
        progress.notes.append(message)
    return finish


async def execute(config: RunnerConfig, env: Mapping[str, str], *, delivered: int = 0) -> int:
    """Run to the end; `delivered` events were already reported (the announcement)."""
    progress = _Progress()
    loop = asyncio.get_running_loop()
    # From the first moment, SIGTERM means "cancel the run and report it", never "die now":
    # the ending (upload, RESULT, flush) must still happen.
    loop.add_signal_handler(signal.SIGTERM, progress.request_cancel)
    platform = PlatformClient(config)
    try:
        try:
            assignment = await platform.assignment()
        except (PlatformError, PlatformUnreachable) as exc:
            print(f"agent-runner: ERROR: {exc}", file=sys.stderr)
            return EXIT_CANNOT_START
        reporter = Reporter(platform.post_events, delivered=delivered)
        reporter.start()
        reporter.emit(EventType.STATUS, {"status": "running"})
        finish = await _supervise(config, assignment, platform, reporter, env, progress)
        return await _finish(reporter, finish, progress)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await platform.aclose()


async def _supervise(
    config: RunnerConfig,
    assignment: protocol.Assignment,
    platform: PlatformClient,
    reporter: Reporter,
    env: Mapping[str, str],
    progress: _Progress,
) -> Finish:
    work = progress.work = asyncio.create_task(
        _work(config, assignment, platform, reporter, progress, env)
    )
    if progress.cancel_requested:
        work.cancel()
    try:
        finish = await work
    except asyncio.CancelledError:
        if not progress.cancel_requested:
            raise
        finish = Finish(Outcome.CANCELLED, "the run was cancelled", kind="cancelled")
    except Exception as exc:  # every failure must end as an ERROR event, never a silent exit
        finish = _failure(exc)
    finally:
        if progress.toolbox is not None:
            progress.toolbox.bash.kill_all()
    return await _upload(config, platform, reporter, progress, finish)


async def _finish(reporter: Reporter, finish: Finish, progress: _Progress) -> int:
    agent = progress.agent
    if finish.outcome is not Outcome.SUCCEEDED:
        message = "; ".join([finish.error or finish.outcome.value, *progress.notes])
        reporter.emit(EventType.ERROR, {"message": message, "kind": finish.kind or "failed"})
    new_messages = (
        conversation.closed(agent.new_messages, f"the run ended: {finish.outcome.value}")
        if agent is not None
        else []
    )
    result = RunResult(
        outcome=finish.outcome,
        error=finish.error,
        usage=agent.usage if agent is not None else protocol.Usage(),
        new_messages=new_messages,
    )
    reporter.emit(EventType.RESULT, result.model_dump(mode="json"))
    if not await reporter.close(FLUSH_SECONDS):
        print("agent-runner: ERROR: some events could not be delivered", file=sys.stderr)
    return EXIT_CODES[finish.outcome]

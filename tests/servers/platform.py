"""The real platform for tests: a subprocess, or served on the test's own event loop.

As a subprocess, on a free loopback port with its own data directory:

    with running_platform(tmp_path, env={"AGENT_PLATFORM_ANTHROPIC_BASE_URL": url}) as p:
        httpx.get(f"{p.base_url}/api/agents", headers=p.headers)

In the test's loop (tests/agent_platform's `served` fixture): `serving_in_loop`, `Served`,
`Caller`, and the steps below (`create_agent`, `start_run`, `wait_for_status`, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import uvicorn
from agent_platform.auth import ensure_user, hash_secret, issue_token, new_secret
from agent_platform.cli import GRACEFUL_SHUTDOWN_SECONDS, platform_server
from agent_platform.domain import Run, RunStatus, RunTransition, TokenKind, User, new_id, utcnow
from agent_platform.services import Services
from agent_platform.settings import Settings
from fastapi import FastAPI

STARTUP_SECONDS = 30.0
# More than the platform's own stop takes at most: its graceful period for open requests, then
# cancelling runs.
STOP_SECONDS = GRACEFUL_SHUTDOWN_SECONDS + 20.0
FORCED_STOP_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def platform_environment(data_dir: Path, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The test runner's environment without any platform or Anthropic setting, plus these."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT_PLATFORM_", "ANTHROPIC_", "AGENT_RUN"))
    }
    env.update(
        {
            "AGENT_PLATFORM_DATA_DIR": str(data_dir),
            "AGENT_PLATFORM_HOST": "127.0.0.1",
            "AGENT_PLATFORM_PORT": str(port),
            "AGENT_PLATFORM_PRINT_LOGIN_URL": "false",
            "AGENT_PLATFORM_CANCEL_GRACE_SECONDS": "3",
        }
    )
    env.update(extra)
    return env


def cli(env: Mapping[str, str], cwd: Path, *args: str) -> str:
    """Run `agent-platform <args>` with the platform's environment; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "agent_platform", *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"agent-platform {' '.join(args)} failed: {done.stderr}")
    return done.stdout.strip()


@dataclass
class RunningPlatform:
    base_url: str
    token: str
    data_dir: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def log_path(self) -> Path:
        return self.data_dir / "platform.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> str:
        return cli(self.env, self.data_dir, *args)

    def cpu_seconds(self) -> float:
        """CPU time the platform process has used so far, from /proc."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def new_user_token(self, user: str) -> str:
        return self.cli("token", "create", "--user", user)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent_platform", "serve"],
                env=self.env,
                cwd=self.data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the platform exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling a condition with a deadline
        raise TimeoutError(f"the platform was not ready in {STARTUP_SECONDS}s:\n{self.log()}")

    def kill(self) -> None:
        """Crash it: SIGKILL, no shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_SECONDS)

    def stop(self) -> None:
        """Shut it down as an operator would (SIGTERM), killing it if it hangs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_platform(
    data_dir: Path, env: Mapping[str, str] | None = None, *, user: str = "alice"
) -> Iterator[RunningPlatform]:
    """Start the platform, create `user` with an API token, yield, and stop it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = platform_environment(data_dir, port, env or {})
    token = cli(full_env, data_dir, "token", "create", "--user", user)
    platform = RunningPlatform(
        base_url=f"http://127.0.0.1:{port}", token=token, data_dir=data_dir, env=full_env
    )
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@asynccontextmanager
async def serving_in_loop(make_app: Callable[[int], FastAPI]) -> AsyncIterator[str]:
    """Serve `make_app(port)` on the running event loop as `agent-platform serve` would.

    The port is chosen first, so that the app can know its own URL. The server is the one the
    command runs, so it stops the same way: event streams ended, open requests given the
    command's grace period, then the app's own shutdown.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    server = platform_server(make_app(port), "127.0.0.1", port, handle_signals=False)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + STARTUP_SECONDS
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the server stopped while starting")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not start in {STARTUP_SECONDS}s")
        await asyncio.sleep(0.01)  # polling a condition with a deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            stuck = await _stop(server, task)
        finally:
            sock.close()
        if stuck is not None:
            raise TimeoutError(
                f"the platform did not stop in {STOP_SECONDS}s; its tasks were at:\n{stuck}"
            )


async def _stop(server: uvicorn.Server, task: asyncio.Task[None]) -> str | None:
    """Wait for the server to stop. If it does not in time, say where its tasks were, and
    force it to (cancelled, if even that takes long)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
    except TimeoutError:
        stuck = _task_stacks()
    else:
        return None
    server.force_exit = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, FORCED_STOP_SECONDS)
    return stuck


def _task_stacks() -> str:
    """Where each task of the running loop waits, to say why a stop hangs."""
    lines: list[str] = []
    for task in asyncio.all_tasks():
        lines.append(f"{task.get_name()}: {task.get_coro()!r}")
        for frame in task.get_stack(limit=8):
            lines.append(f"    {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
    return "\n".join(lines)


# `claude(token, max_retries=2)`: an SDK client of the served platform's LLM gateway.
Claude = Callable[..., anthropic.AsyncAnthropic]


@dataclass
class Caller:
    """A user of the served platform, with an httpx client carrying their API token."""

    user: User
    token: str
    http: httpx.AsyncClient


@dataclass
class Served:
    base_url: str
    settings: Settings
    services: Services

    async def caller(self, name: str) -> Caller:
        user = await ensure_user(self.services.store, name)
        issued = await issue_token(self.services.store, user, kind=TokenKind.API, name="test")
        http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {issued.secret}"},
            timeout=30,
        )
        return Caller(user, issued.secret, http)


# Steps tests take against a served platform.
WAIT_SECONDS = 20.0


async def create_agent(caller: Caller, **fields: Any) -> dict[str, Any]:
    answer = await caller.http.post("/api/agents", json={"name": "helper", **fields})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def start_run(caller: Caller, agent_id: str, task: str, **headers: str) -> dict[str, Any]:
    answer = await caller.http.post(
        f"/api/agents/{agent_id}/runs", json={"task": task}, headers=headers
    )
    assert answer.status_code in (200, 201), answer.text
    body: dict[str, Any] = answer.json()
    return body


async def wait_for_status(
    caller: Caller, run_id: str, statuses: set[str], seconds: float = WAIT_SECONDS
) -> dict[str, Any]:
    """Poll the run until its status is one of `statuses`, failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        body: dict[str, Any] = (await caller.http.get(f"/api/runs/{run_id}")).json()
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"run stayed {body['status']}: {body}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline


async def running_run(
    served: Served, caller: Caller, agent_id: str, task: str = "t"
) -> tuple[str, str]:
    """A run the test drives as its runner: running, with a run token the test holds.

    It is stored as running from the start, so the scheduler never launches a sandbox for it.
    """
    run = Run(
        id=new_id("run"),
        agent_id=agent_id,
        owner_id=caller.user.id,
        task=task,
        status=RunStatus.RUNNING,
        created_at=utcnow(),
    )
    await served.services.store.create_run(run)
    token = new_secret("run")
    running = frozenset({RunStatus.RUNNING})
    changed = await served.services.store.transition_run(
        RunTransition(
            run.id, running, RunStatus.RUNNING, utcnow(), run_token_hash=hash_secret(token)
        )
    )
    assert changed is not None
    return run.id, token


def event(seq: int, kind: str = "text_delta", **data: Any) -> dict[str, Any]:
    """One event as a runner posts it."""
    return {
        "seq": seq,
        "type": kind,
        "data": data or {"text": str(seq)},
        "time": datetime.now(UTC).isoformat(),
    }


def result_event(seq: int, outcome: str = "succeeded", **fields: Any) -> dict[str, Any]:
    return event(seq, "result", outcome=outcome, **fields)

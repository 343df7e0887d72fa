"""The real platform as a subprocess on a free loopback port, with its own data directory.

    with running_platform(tmp_path, env={"AGENT_PLATFORM_ANTHROPIC_BASE_URL": url}) as p:
        httpx.get(f"{p.base_url}/api/agents", headers=p.headers)

or, in a conftest, `from servers.platform import platform_server` and use the fixture (extra
environment through an `platform_env` fixture returning a dict, {} by default).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

STARTUP_SECONDS = 30.0
STOP_SECONDS = 15.0


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

    def restart(self) -> None:
        self.stop()
        self.start()


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


@pytest.fixture
def platform_env() -> dict[str, str]:
    """Extra environment for `platform_server`; override it in a test module or conftest."""
    return {}


@pytest.fixture
def platform_server(tmp_path: Path, platform_env: dict[str, str]) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path / "platform", platform_env) as platform:
        yield platform

"""The platform process crashes mid-run and starts again: no run is left hanging."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
from servers.platform import running_platform

SCRIPTED_RUNNER = Path(__file__).with_name("scripted_runner.py")


def test_a_run_whose_sandbox_died_with_the_platform_fails_honestly(tmp_path: Path) -> None:
    env = {"AGENT_PLATFORM_RUNNER_COMMAND": json.dumps([sys.executable, str(SCRIPTED_RUNNER)])}
    with running_platform(tmp_path / "p", env) as platform:
        http = httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10)
        agent = http.post("/api/agents", json={"name": "a"}).json()
        run = http.post(f"/api/agents/{agent['id']}/runs", json={"task": "hang"}).json()
        pid_file = platform.data_dir / "executor" / "local" / f"{run['id']}.pid"
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and http.get(f"/api/runs/{run['id']}/events").json()["items"]):
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)  # polling a condition with a deadline
        runner_pid = int(pid_file.read_text())

        platform.kill()
        assert Path(f"/proc/{runner_pid}").exists(), "the sandbox outlives a crashed platform"
        platform.start()

        finished = http.get(f"/api/runs/{run['id']}").json()
        assert finished["status"] == "failed"
        assert "restarted" in finished["error"]
        assert not Path(f"/proc/{runner_pid}").exists() or _zombie(runner_pid)
        events = http.get(f"/api/runs/{run['id']}/events").json()["items"]
        assert events[-1]["type"] == "result"
        http.close()


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

"""The platform process crashes mid-run and starts again: no run is left hanging."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_platform.executors.runner_process import RunnerRecord, is_running, read_record
from servers.platform import RunningPlatform, running_platform
from servers.waiting import wait_for

SCRIPTED_RUNNER = Path(__file__).with_name("scripted_runner.py")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    env = {"AGENT_PLATFORM_RUNNER_COMMAND": json.dumps([sys.executable, str(SCRIPTED_RUNNER)])}
    with running_platform(tmp_path / "p", env) as running:
        yield running


def _hanging_run(platform: RunningPlatform, http: httpx.Client) -> tuple[str, RunnerRecord]:
    """A run whose runner reported that it runs and now waits to be stopped; its record."""
    agent = http.post("/api/agents", json={"name": "a"}).json()
    run_id: str = http.post(f"/api/agents/{agent['id']}/runs", json={"task": "hang"}).json()["id"]
    path = platform.data_dir / "executor" / "local" / f"{run_id}.json"
    wait_for(
        lambda: path.exists() and bool(http.get(f"/api/runs/{run_id}/events").json()["items"]),
        "the sandbox to start",
    )
    record = read_record(path)
    assert record is not None
    return run_id, record


def _run(http: httpx.Client, run_id: str) -> dict[str, Any]:
    body: dict[str, Any] = http.get(f"/api/runs/{run_id}").json()
    return body


def test_a_runner_that_outlived_a_crash_is_adopted_and_still_cancellable(
    platform: RunningPlatform,
) -> None:
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10) as http:
        run_id, record = _hanging_run(platform, http)

        platform.kill()
        assert is_running(record), "the sandbox outlives a crashed platform"
        platform.start()

        assert _run(http, run_id)["status"] == "running"
        assert is_running(record)
        assert http.post(f"/api/runs/{run_id}/cancel").status_code == 202
        wait_for(lambda: _run(http, run_id)["status"] == "cancelled", "the cancel")
        assert not is_running(record)
        events = http.get(f"/api/runs/{run_id}/events").json()["items"]
        assert [e["type"] for e in events].count("result") == 1


def test_a_run_whose_runner_died_while_the_platform_was_down_fails_honestly(
    platform: RunningPlatform,
) -> None:
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10) as http:
        run_id, record = _hanging_run(platform, http)

        platform.kill()
        os.killpg(record.pid, signal.SIGKILL)
        wait_for(lambda: not is_running(record), "the runner to die")
        platform.start()

        finished = _run(http, run_id)
        assert finished["status"] == "failed"
        assert "restarted" in finished["error"]
        events = http.get(f"/api/runs/{run_id}/events").json()["items"]
        assert events[-1]["type"] == "result"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

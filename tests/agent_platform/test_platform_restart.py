"""The platform process crashes mid-run and starts again: no run is left hanging, and a call to
Claude it was serving is counted in the run's budget, neither held for good nor forgotten."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_platform.domain import StoredEvent, utcnow
from agent_platform.executors.runner_process import RunnerRecord, is_running, read_record
from agent_platform.store.sqlite import SqliteStore
from agent_runner.protocol import EventType, Outcome, RunResult, Usage
from servers.messages_api import MessagesApiServer, Reply, StreamCut, Text
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


def test_a_result_stored_as_the_platform_crashed_finishes_the_run_as_its_runner_said(
    platform: RunningPlatform,
) -> None:
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10) as http:
        run_id, record = _hanging_run(platform, http)
        agent_id = _run(http, run_id)["agent_id"]
        platform.kill()
        os.killpg(record.pid, signal.SIGKILL)
        wait_for(lambda: not is_running(record), "the runner to die")
        # The runner's last post was stored, and the platform died before finishing the run.
        said = [{"role": "user", "content": "hang"}, {"role": "assistant", "content": "Done."}]
        reported = RunResult(
            outcome=Outcome.SUCCEEDED, usage=Usage(input_tokens=7), new_messages=said
        )
        asyncio.run(_store_event(platform.data_dir / "platform.db", run_id, reported))
        platform.start()

        finished = _run(http, run_id)
        assert (finished["status"], finished["error"]) == ("succeeded", None)
        assert finished["usage"]["input_tokens"] == 7
        events = http.get(f"/api/runs/{run_id}/events").json()["items"]
        assert [e["type"] for e in events].count("result") == 1
        assert events[-1]["data"]["outcome"] == "succeeded"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        conversation = http.get(f"/api/agents/{agent_id}/conversation").json()["messages"]
        assert conversation == said


async def _store_event(path: Path, run_id: str, result: RunResult) -> None:
    store = await SqliteStore.open(path)
    try:
        seq = await store.last_event_seq(run_id) + 1
        data = result.model_dump(mode="json")
        await store.append_events(
            run_id, [StoredEvent(run_id, seq, EventType.RESULT.value, data, utcnow())]
        )
    finally:
        await store.aclose()


BUDGET = 40_000
# What the runner asks of each call (agent_runner.conversation.MAX_OUTPUT_TOKENS).
RUNNER_MAX_TOKENS = 8_192
BILLED = {"input_tokens": 100, "output_tokens": 20}


@pytest.fixture(params=["sqlite", "firestore"])
def claude_platform(
    request: pytest.FixtureRequest, messages_api: MessagesApiServer, tmp_path: Path
) -> Iterator[RunningPlatform]:
    env = {
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-upstream-restart-key",
    }
    if request.param == "firestore":
        emulator = request.getfixturevalue("firestore_emulator")
        env |= {
            **emulator.env,
            "AGENT_PLATFORM_STORE": "firestore",
            "AGENT_PLATFORM_GCP_PROJECT": emulator.new_project(),
        }
    with running_platform(tmp_path / "p", env) as running:
        yield running


def test_a_call_in_flight_when_the_platform_crashed_is_counted_and_the_run_goes_on(
    claude_platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    platform = claude_platform
    # The first reply stays open after its first words until the platform is gone; asked
    # again, Claude answers.
    script = messages_api.add_script(
        [StreamCut(Reply([Text("Done.")], usage=BILLED), hold_seconds=60)]
    )
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10) as http:
        limits = {"max_tokens": BUDGET}
        agent = http.post("/api/agents", json={"name": "a", "limits": limits}).json()
        run_id = http.post(f"/api/agents/{agent['id']}/runs", json={"task": script}).json()["id"]
        wait_for(lambda: len(messages_api.requests(script)) == 1, "the call to Claude")

        platform.kill()
        platform.start()

        wait_for(lambda: _run(http, run_id)["status"] != "running", "the run to end", timeout=60)
        run = _run(http, run_id)
    assert run["status"] == "succeeded", run
    lost, retried = messages_api.requests(script)
    assert lost.body["max_tokens"] == retried.body["max_tokens"] == RUNNER_MAX_TOKENS
    # The lost call counts as all it could have been billed: its input, bounded by its
    # request's bytes, and its max_tokens, as output. The retry counts what it was billed.
    usage = run["usage"]
    assert usage["input_tokens"] >= BILLED["input_tokens"]
    assert usage["output_tokens"] >= RUNNER_MAX_TOKENS + BILLED["output_tokens"]
    assert sum(usage.values()) <= BUDGET

"""Runs end to end through the scheduler and the local executor, with a stand-in runner."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from agent_runner import protocol
from servers.platform import (
    Caller,
    Served,
    create_agent,
    start_run,
    wait_for_status,
)
from servers.waiting import eventually


async def events_of(caller: Caller, run_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await caller.http.get(f"/api/runs/{run_id}/events")).json()[
        "items"
    ]
    return items


async def test_a_run_succeeds_and_the_next_run_continues_the_conversation(alice: Caller) -> None:
    agent = await create_agent(alice)
    first = await start_run(alice, agent["id"], "succeed")
    done = await wait_for_status(alice, first["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done
    assert done["usage"]["input_tokens"] == 10
    kinds = [e["type"] for e in await events_of(alice, first["id"])]
    assert kinds == ["status", "text_delta", "result"]
    second = await start_run(alice, agent["id"], "succeed")
    await wait_for_status(alice, second["id"], {"succeeded"})
    said = (await events_of(alice, second["id"]))[1]["data"]["text"]
    assert said == "seen 2 messages"


async def test_the_sandbox_gets_a_scrubbed_environment_and_a_fresh_directory(
    served: Served, alice: Caller
) -> None:
    os.environ["AGENT_PLATFORM_SECRET_PROBE"] = "must-not-leak"
    try:
        agent = await create_agent(alice)
        run = await start_run(alice, agent["id"], "report-env")
        await wait_for_status(alice, run["id"], {"succeeded"})
    finally:
        del os.environ["AGENT_PLATFORM_SECRET_PROBE"]
    report = (await events_of(alice, run["id"]))[1]["data"]
    env, cwd = report["env"], Path(report["cwd"])
    assert "AGENT_PLATFORM_SECRET_PROBE" not in env
    assert not [k for k in env if k.startswith("ANTHROPIC")]
    assert env[protocol.ENV_RUN_ID] == run["id"]
    assert env[protocol.ENV_PLATFORM_URL] == served.base_url
    assert env[protocol.ENV_RUN_TOKEN].startswith("run_")
    assert Path(env[protocol.ENV_WORKSPACE]).parent == cwd
    assert set(env) <= {
        "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "PYTHONUNBUFFERED",
        protocol.ENV_RUN_ID, protocol.ENV_PLATFORM_URL, protocol.ENV_RUN_TOKEN,
        protocol.ENV_WORKSPACE,
        protocol.ENV_TOOL_SANDBOX,
    }  # fmt: skip
    assert cwd.parent == served.settings.data_dir / "sandboxes"
    await eventually(lambda: not cwd.exists(), "the run's directory to go")


async def test_a_runner_that_exits_without_a_result_fails_the_run(alice: Caller) -> None:
    agent = await create_agent(alice)
    run = await start_run(alice, agent["id"], "exit-silently")
    done = await wait_for_status(alice, run["id"], {"failed", "succeeded"})
    assert done["status"] == "failed"
    assert "code 3" in done["error"]
    last = (await events_of(alice, run["id"]))[-1]
    assert last["type"] == "result"
    assert last["data"]["outcome"] == "failed"


async def test_cancelling_a_running_run_stops_its_sandbox(alice: Caller) -> None:
    agent = await create_agent(alice)
    run = await start_run(alice, agent["id"], "hang")
    await wait_for_status(alice, run["id"], {"running"})
    answer = await alice.http.post(f"/api/runs/{run['id']}/cancel")
    assert answer.status_code == 202
    done = await wait_for_status(alice, run["id"], {"cancelled", "failed"})
    assert done["status"] == "cancelled"


async def test_a_sandbox_that_ignores_sigterm_is_killed_with_its_children(alice: Caller) -> None:
    agent = await create_agent(alice)
    run = await start_run(alice, agent["id"], "hang-stubborn")
    await wait_for_status(alice, run["id"], {"running"})
    child = None
    deadline = time.monotonic() + 20
    while child is None:  # the runner reports its child right after it starts
        assert time.monotonic() < deadline, "the runner never reported its child"
        reported = [e for e in await events_of(alice, run["id"]) if "child_pid" in e["data"]]
        child = reported[0]["data"]["child_pid"] if reported else None
    await alice.http.post(f"/api/runs/{run['id']}/cancel")
    done = await wait_for_status(alice, run["id"], {"cancelled", "failed"})
    assert done["status"] == "cancelled"
    await eventually(
        lambda: not Path(f"/proc/{child}").exists() or _state(child) == "Z", "the child to end"
    )


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().split()[2]


async def test_cancelling_a_finished_run_changes_nothing(alice: Caller) -> None:
    agent = await create_agent(alice)
    run = await start_run(alice, agent["id"], "succeed")
    await wait_for_status(alice, run["id"], {"succeeded"})
    answer = await alice.http.post(f"/api/runs/{run['id']}/cancel")
    assert answer.json()["status"] == "succeeded"


async def test_a_run_over_its_time_limit_times_out(alice: Caller) -> None:
    agent = await create_agent(alice, limits={"timeout_seconds": 5})
    run = await start_run(alice, agent["id"], "hang")
    done = await wait_for_status(alice, run["id"], {"timed_out", "failed"}, seconds=30)
    assert done["status"] == "timed_out"
    assert "5s" in done["error"]


@pytest.fixture
def platform_settings() -> dict[str, Any]:
    return {"max_concurrent_runs": 1}


async def test_runs_past_the_concurrency_limit_wait_in_the_queue(alice: Caller) -> None:
    agent = await create_agent(alice)
    first = await start_run(alice, agent["id"], "hang")
    await wait_for_status(alice, first["id"], {"running"})
    second = await start_run(alice, agent["id"], "succeed")
    third = await start_run(alice, agent["id"], "succeed")
    assert (await alice.http.get(f"/api/runs/{second['id']}")).json()["status"] == "queued"
    cancelled = await alice.http.post(f"/api/runs/{third['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert (await events_of(alice, third["id"]))[-1]["data"]["outcome"] == "cancelled"
    await alice.http.post(f"/api/runs/{first['id']}/cancel")
    done = await wait_for_status(alice, second["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded"


async def test_a_run_cancelled_right_after_it_was_started_ends_cancelled(alice: Caller) -> None:
    agent = await create_agent(alice)
    runs = [await start_run(alice, agent["id"], "hang") for _ in range(3)]
    for run in runs:
        await alice.http.post(f"/api/runs/{run['id']}/cancel")
    for run in runs:
        done = await wait_for_status(alice, run["id"], {"cancelled", "failed", "timed_out"})
        assert done["status"] == "cancelled", done

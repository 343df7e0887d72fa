"""Whole runs: API → scheduler → local executor → the real runner → gateway → scripted Claude.

The platform is the real one, as a subprocess; the runner is the real `agent_runner` it spawns;
only Claude is played by the scripted Messages API server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_platform.workspaces import read_file
from agent_runner import protocol
from servers.messages_api import (
    HttpFailure,
    MessagesApiServer,
    Reply,
    Step,
    StreamCut,
    StreamFailure,
    Text,
    ToolUse,
)
from servers.platform import RunningPlatform, running_platform
from servers.processes import pids_running
from servers.waiting import wait_for

UPSTREAM_KEY = "sk-upstream-e2e-key"
EDITOR = "str_replace_based_edit_tool"
WAIT_SECONDS = 30.0
Event = dict[str, Any]


def _claude_env(messages_api: MessagesApiServer) -> dict[str, str]:
    return {
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": UPSTREAM_KEY,
        "AGENT_PLATFORM_MAX_CONCURRENT_RUNS": "8",
    }


@pytest.fixture(scope="module")
def platform(
    messages_api: MessagesApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("e2e"), _claude_env(messages_api)) as running:
        yield running


@pytest.fixture
async def http(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.base_url, headers=platform.headers, timeout=WAIT_SECONDS
    ) as client:
        yield client


async def _agent(http: httpx.AsyncClient, **fields: Any) -> str:
    answer = await http.post("/api/agents", json={"name": "coder", **fields})
    assert answer.status_code == 201, answer.text
    agent_id: str = answer.json()["id"]
    return agent_id


async def _run(http: httpx.AsyncClient, agent_id: str, task: str) -> str:
    answer = await http.post(f"/api/agents/{agent_id}/runs", json={"task": task})
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


async def _events(
    http: httpx.AsyncClient, run_id: str, *, after: int = 0, until: Callable[[Event], bool]
) -> list[Event]:
    """Subscribe to the run's SSE stream (resuming after `after`) until an event matches."""
    headers = {"Last-Event-ID": str(after)} if after else {}
    seen: list[Event] = []
    async with http.stream(
        "GET", f"/api/runs/{run_id}/events/stream", headers=headers, timeout=WAIT_SECONDS
    ) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]))
                if until(seen[-1]):
                    return seen
    raise AssertionError(f"the stream ended before the awaited event: {seen}")


def _is_result(event: Event) -> bool:
    return bool(event["type"] == "result")


async def _finished(http: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run once its stream has ended with the RESULT and its status is terminal."""
    await _events(http, run_id, until=_is_result)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        run: dict[str, Any] = (await http.get(f"/api/runs/{run_id}")).json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, f"run stayed {run['status']}"
        await asyncio.sleep(0.02)  # polling a condition with a deadline


async def _all_events(http: httpx.AsyncClient, run_id: str) -> list[Event]:
    items: list[Event] = (await http.get(f"/api/runs/{run_id}/events")).json()["items"]
    return items


def _of(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


def _workspace_of(platform: RunningPlatform, run_id: str) -> Path:
    return platform.data_dir / "sandboxes" / run_id / "workspace"


async def test_a_run_uses_tools_keeps_its_files_and_the_next_run_continues(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    first = messages_api.add_script(
        [
            Reply(
                [
                    Text("I'll write the note."),
                    ToolUse(
                        EDITOR, {"command": "create", "path": "notes.txt", "file_text": "42\n"}
                    ),
                ]
            ),
            Reply([ToolUse("bash", {"command": "cat notes.txt"})]),
            Reply([Text("Done.")], usage={"input_tokens": 50, "output_tokens": 3}),
        ]
    )
    agent_id = await _agent(http, system_prompt="Be brief.")
    run_id = await _run(http, agent_id, f"{first} write a note")

    # A subscriber that leaves after the first tool call and resumes from what it saw.
    head = await _events(http, run_id, until=lambda e: e["type"] == "tool_call")
    tail = await _events(http, run_id, after=head[-1]["seq"], until=_is_result)
    events = head + tail
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [s["status"] for s in _of(events, "status")] == ["starting", "running"]
    assert [c["name"] for c in _of(events, "tool_call")] == [EDITOR, "bash"]
    assert _of(events, "tool_result")[1]["output"] == "42\n"
    assert "".join(d["text"] for d in _of(events, "text_delta")) == "I'll write the note.Done."
    assert _of(events, "result")[0]["outcome"] == "succeeded"

    run = (await http.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["usage"]["input_tokens"] >= 50
    assert run["usage"]["output_tokens"] >= 3
    archive = (platform.data_dir / "workspaces" / f"{agent_id}.tar.gz").read_bytes()
    assert read_file(archive, "notes.txt") == b"42\n"

    second = messages_api.add_script(
        [Reply([ToolUse("bash", {"command": "cat notes.txt"})]), Reply([Text("It says 42.")])]
    )
    next_run = await _run(http, agent_id, f"{second} what does the note say?")
    assert (await _finished(http, next_run))["status"] == "succeeded"
    assert _of(await _all_events(http, next_run), "tool_result")[0]["output"] == "42\n"

    opening = messages_api.requests(second)[0]
    assert opening.headers["x-api-key"] == UPSTREAM_KEY
    assert "authorization" not in opening.headers
    texts = json.dumps(opening.body["messages"])
    assert first in texts  # the second run continues the first one's conversation
    assert opening.body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert opening.body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert texts.count("cache_control") == 2


async def test_the_tools_see_neither_the_runner_nor_the_key_nor_the_store(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    # Every process the tool can see, with its environment and command line.
    command = (
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; "
        "tr '\\0' '\\n' < $p/environ; done 2>/dev/null; echo ---; env"
    )
    script = messages_api.add_script(
        [Reply([ToolUse("bash", {"command": command})]), Reply([Text("ok")])]
    )
    run_id = await _run(http, await _agent(http), f"{script} inspect yourself")
    assert (await _finished(http, run_id))["status"] == "succeeded"
    output = _of(await _all_events(http, run_id), "tool_result")[0]["output"]
    processes, tool_env = output.split("---\n")
    assert "agent_runner" not in processes
    assert "agent_platform" not in processes
    for secret in (UPSTREAM_KEY, "platform.db", "ANTHROPIC", "AGENT_RUN_TOKEN", platform.token):
        assert secret not in output
    assert {line.split("=", 1)[0] for line in tool_env.splitlines() if "=" in line} <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "HOME",
        "PWD",
        "TERM",
        "SHLVL",
        "_",
    }


async def test_cancel_mid_tool_kills_the_tools_processes_within_two_seconds(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    command = "sleep 300.1 & (setsid sleep 300.2 &); wait"
    script = messages_api.add_script([Reply([ToolUse("bash", {"command": command})])])
    run_id = await _run(http, await _agent(http), f"{script} wait a long time")
    await _events(http, run_id, until=lambda e: e["type"] == "tool_call")
    wait_for(
        lambda: bool(pids_running("sleep 300.1")) and bool(pids_running("sleep 300.2")),
        "the tool's children",
    )

    cancelled_at = time.monotonic()
    assert (await http.post(f"/api/runs/{run_id}/cancel")).status_code == 202
    wait_for(
        lambda: not pids_running("sleep 300.1") and not pids_running("sleep 300.2"),
        "the tool's children to die",
        timeout=2.0,
    )
    assert time.monotonic() - cancelled_at < 2.0

    run = await _finished(http, run_id)
    assert run["status"] == "cancelled"
    assert _of(await _all_events(http, run_id), "result")[0]["outcome"] == "cancelled"


async def test_a_run_past_its_wall_clock_limit_ends_timed_out(
    http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    script = messages_api.add_script([Reply([ToolUse("bash", {"command": "sleep 300"})])])
    agent_id = await _agent(http, limits={"timeout_seconds": 5})
    run_id = await _run(http, agent_id, f"{script} take forever")
    run = await _finished(http, run_id)
    assert run["status"] == "timed_out"
    errors = _of(await _all_events(http, run_id), "error")
    assert errors[0]["kind"] == "timeout"


async def test_without_an_anthropic_key_a_run_fails_at_once_saying_how_to_set_one(
    messages_api: MessagesApiServer, tmp_path: Path
) -> None:
    env = {"AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url}
    script = messages_api.add_script([Reply([Text("never")])])
    with running_platform(tmp_path / "keyless", env) as keyless:
        async with httpx.AsyncClient(
            base_url=keyless.base_url, headers=keyless.headers, timeout=WAIT_SECONDS
        ) as client:
            run_id = await _run(client, await _agent(client), f"{script} hello")
            run = await _finished(client, run_id)
            errors = _of(await _all_events(client, run_id), "error")
    assert run["status"] == "failed"
    assert "AGENT_PLATFORM_ANTHROPIC_API_KEY" in errors[0]["message"]
    assert messages_api.requests(script) == []


async def test_a_platform_killed_mid_run_restarts_and_the_run_succeeds_with_each_event_once(
    messages_api: MessagesApiServer, tmp_path: Path
) -> None:
    wait_for_release = "while [ ! -e release ]; do sleep 0.02; done; echo released > done"
    script = messages_api.add_script(
        [
            Reply([Text("Waiting."), ToolUse("bash", {"command": wait_for_release})]),
            Reply([Text("Released.")]),
        ]
    )
    with running_platform(tmp_path / "crashy", _claude_env(messages_api)) as crashy:
        async with httpx.AsyncClient(
            base_url=crashy.base_url, headers=crashy.headers, timeout=WAIT_SECONDS
        ) as client:
            run_id = await _run(client, await _agent(client), f"{script} wait for release")
            before = await _events(client, run_id, until=lambda e: e["type"] == "tool_call")
            crashy.kill()
            # While the platform is down, the tool ends: the runner must keep its result and
            # reach Claude through the gateway once the platform is back.
            workspace = _workspace_of(crashy, run_id)
            (workspace / "release").touch()
            wait_for(lambda: (workspace / "done").exists(), "the tool to end")
            crashy.start()
            run = await _finished(client, run_id)
            events = await _all_events(client, run_id)
    assert run["status"] == "succeeded", run
    assert events[: len(before)] == before
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("result") == 1
    assert events[-1]["type"] == "result"
    assert _of(events, "tool_result")[0]["is_error"] is False
    assert "".join(d["text"] for d in _of(events, "text_delta")) == "Waiting.Released."
    assert len(messages_api.requests(script)) == 2


FAILURES: dict[str, tuple[list[Step], dict[str, Any], str, str]] = {
    "overloaded mid-stream beyond the retries": (
        [StreamFailure(Reply([Text("Half an answ")]), times=50)],
        {},
        "overloaded",
        "Claude is overloaded and retries ran out",
    ),
    "upstream 4xx": (
        [HttpFailure(400, "invalid_request_error", "prompt is too long")],
        {},
        "upstream",
        "prompt is too long",
    ),
    "overloaded beyond the retries": (
        [HttpFailure(529, "overloaded_error", "Overloaded", retry_after=0.01, times=50)],
        {},
        "overloaded",
        "retries ran out",
    ),
    "budget exhausted": (
        [
            Reply([ToolUse("bash", {"command": "true"})], usage={"input_tokens": 1_500}),
            Reply([Text("never asked")]),
        ],
        {"limits": {"max_tokens": 1_000}},
        "budget",
        "budget of 1000",
    ),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
async def test_a_failure_ends_the_run_with_a_clear_error_event(
    http: httpx.AsyncClient, messages_api: MessagesApiServer, case: str
) -> None:
    steps, agent_fields, kind, words = FAILURES[case]
    script = messages_api.add_script(steps)
    run_id = await _run(http, await _agent(http, **agent_fields), f"{script} try")
    run = await _finished(http, run_id)
    events = await _all_events(http, run_id)
    (error,) = _of(events, "error")
    assert run["status"] == "failed"
    assert error["kind"] == kind
    assert words in error["message"]
    assert events[-1]["type"] == "result"
    assert _of(events, "result")[0]["outcome"] == "failed"


def _log_entries(platform: RunningPlatform) -> list[dict[str, Any]]:
    return [json.loads(line) for line in platform.log().splitlines() if line.startswith("{")]


BILLED = {"input_tokens": 100, "output_tokens": 20}
CUTS: dict[str, Step] = {
    "truncated before message_stop": StreamCut(Reply([Text("Half an answer.")], usage=BILLED)),
    "chunked body broken": StreamCut(
        Reply([Text("Half an answer.")], usage=BILLED), break_body=True
    ),
    "overloaded mid-stream": StreamFailure(Reply([Text("Half an answer.")], usage=BILLED)),
}


@pytest.mark.parametrize("case", sorted(CUTS))
async def test_a_reply_cut_mid_stream_is_asked_again_and_its_usage_counted(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer, case: str
) -> None:
    script = messages_api.add_script([CUTS[case]])
    run_id = await _run(http, await _agent(http), f"{script} answer")
    run = await _finished(http, run_id)
    events = await _all_events(http, run_id)
    assert run["status"] == "succeeded", run
    assert len(messages_api.requests(script)) == 2
    (retrying,) = [s for s in _of(events, "status") if s["status"] == "retrying"]
    assert "asking again in 0.5 s" in retrying["message"]
    # The cut reply's text came before the notice, the whole reply after it.
    texts = [e["data"]["text"] for e in events if e["type"] == "text_delta"]
    assert texts[-1] == "Half an answer."
    # Both replies billed their input at message_start; the cut one its output as a token a
    # byte of what it streamed, the whole one what its message_delta reported.
    assert run["usage"]["input_tokens"] == 2 * BILLED["input_tokens"]
    assert run["usage"]["output_tokens"] == len("Half an answer.") + BILLED["output_tokens"]
    # The runner's result counts what its SDK saw: the cut reply's output estimate is the
    # gateway's alone, and the run's record keeps the larger count.
    reported = _of(events, "result")[0]["usage"]
    assert reported["input_tokens"] == run["usage"]["input_tokens"]
    assert reported["output_tokens"] < run["usage"]["output_tokens"]
    log = platform.log()
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log
    # The run can be traced in the log: its id is there, and the cut is a warning, not a crash.
    entries = [e for e in _log_entries(platform) if e.get("run_id") == run_id]
    assert any(e["message"] == "run started" for e in entries)
    warnings = [e for e in entries if e["level"] != "INFO"]
    if case == "overloaded mid-stream":
        assert warnings == []
    else:
        (warning,) = warnings
        assert warning["level"] == "WARNING"
        assert warning["message"].startswith("the Anthropic API's stream ")
        assert warning["usage"]["input_tokens"] == BILLED["input_tokens"]


async def test_a_reply_cut_every_time_fails_the_run_after_bounded_retries(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    cut = StreamCut(Reply([Text("Never whole.")], usage=BILLED), break_body=True, times=50)
    script = messages_api.add_script([cut])
    run_id = await _run(http, await _agent(http), f"{script} answer")
    run = await _finished(http, run_id)
    events = await _all_events(http, run_id)
    assert run["status"] == "failed"
    (error,) = _of(events, "error")
    assert error["kind"] == "upstream"
    assert "4 times in a row" in error["message"]
    assert "broke off" in error["message"]
    assert len(messages_api.requests(script)) == 4
    waits = [s["message"] for s in _of(events, "status") if s["status"] == "retrying"]
    assert [w.rsplit("asking again in ", 1)[1] for w in waits] == ["0.5 s", "1 s", "2 s"]
    assert run["usage"]["input_tokens"] == 4 * BILLED["input_tokens"]
    assert "Traceback" not in platform.log()


def test_a_runner_with_a_refused_token_exits_non_zero_saying_why(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        protocol.ENV_RUN_ID: "run_unknown",
        protocol.ENV_PLATFORM_URL: platform.base_url,
        protocol.ENV_RUN_TOKEN: "run_not-a-token",
        protocol.ENV_WORKSPACE: str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "agent_runner"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert done.returncode == 2
    assert "rejected the run token" in done.stderr


async def test_runs_of_one_agent_take_turns_and_keep_every_file(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)
    other_agent = await _agent(http)
    run_ids = []
    for name in ("a", "b", "c"):
        script = messages_api.add_script(
            [
                Reply([ToolUse("bash", {"command": f"sleep 0.5; echo {name} > {name}.txt"})]),
                Reply([Text("written")]),
            ]
        )
        run_ids.append(await _run(http, agent_id, f"{script} write {name}"))
    other_script = messages_api.add_script(
        [Reply([ToolUse("bash", {"command": "sleep 0.5"})]), Reply([Text("ok")])]
    )
    other_run = await _run(http, other_agent, f"{other_script} wait")

    # While the agent's runs take turns, another agent's run goes on beside them.
    statuses: list[list[str]] = []
    other_ran_beside = False
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        runs = [(await http.get(f"/api/runs/{run_id}")).json() for run_id in run_ids]
        statuses.append([run["status"] for run in runs])
        other = (await http.get(f"/api/runs/{other_run}")).json()["status"]
        other_ran_beside |= other == "running" and "running" in statuses[-1]
        if all(s not in ("queued", "running") for s in statuses[-1]):
            break
        assert time.monotonic() < deadline, statuses[-1]
        await asyncio.sleep(0.02)  # polling a condition with a deadline
    assert all(seen.count("running") <= 1 for seen in statuses), statuses
    assert any(seen.count("queued") == 2 for seen in statuses), statuses
    assert statuses[-1] == ["succeeded"] * 3
    assert other_ran_beside

    archive = (platform.data_dir / "workspaces" / f"{agent_id}.tar.gz").read_bytes()
    assert [read_file(archive, f"{name}.txt") for name in "abc"] == [b"a\n", b"b\n", b"c\n"]

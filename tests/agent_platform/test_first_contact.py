"""First contact: a new user's fresh clone, the README's `make up` and its commands, literally.

Nothing here hands the platform a path or a setting a new user would not have: the clone is
fresh, `make up` runs with its defaults (the port is the Makefile's documented PORT), and the
commands are the README's, with only the host and port of the URL changed. Claude is played by
the scripted Messages API, reached through AGENT_PLATFORM_ANTHROPIC_BASE_URL.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers.messages_api import MessagesApiServer, Reply, Text, ToolUse
from servers.platform import free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# `make up` in a fresh clone creates its environment first; uv's cache makes that seconds.
STARTUP_SECONDS = 240.0
RUN_SECONDS = 60.0


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A fresh clone for each test, as each new user has."""
    target = tmp_path / "agent-platform"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def _user_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """A new user's shell: none of the platform's settings, nor this test run's virtualenv."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AGENT_PLATFORM_", "ANTHROPIC_", "AGENT_RUN", "VIRTUAL_ENV"))
    }
    own_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != own_bin)
    return {**env, **extra}


@contextmanager
def make_up(clone: Path, port: int, env: Mapping[str, str]) -> Iterator[list[str]]:
    """`make up PORT=<port>` in the clone until it serves; yields the lines it printed."""
    printed: list[str] = []
    process = subprocess.Popen(
        ["make", "up", f"PORT={port}"],
        cwd=clone,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        for line in process.stdout:
            printed.append(line.rstrip())
            if line.startswith("Sign in as admin"):
                break
            assert time.monotonic() < deadline, "\n".join(printed)
        else:
            raise AssertionError("make up ended:\n" + "\n".join(printed))
        _wait_healthy(f"http://127.0.0.1:{port}")
        yield printed
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait_healthy(base_url: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{base_url} never became ready"
        time.sleep(0.1)  # polling a condition with a deadline


def _sh(clone: Path, env: Mapping[str, str], command: str) -> str:
    """A README command in bash, in the clone, as the user types it."""
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=clone,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _readme_session(
    clone: Path, env: Mapping[str, str], port: int, task: str
) -> list[dict[str, Any]]:
    """The README's API section: a token, an agent, a run, and its SSE stream to the end."""
    url = f"http://127.0.0.1:{port}"
    readme_commands = (
        "TOKEN=$(python3 -m uv run agent-platform token create)",
        'H="Authorization: Bearer $TOKEN"',
        'curl -s -X POST http://127.0.0.1:8000/api/agents -H "$H" -H \'Content-Type: '
        'application/json\' \\\n  -d \'{"name": "log-reader", "system_prompt": "Answer in '
        "one sentence.\"}'",
        'curl -sN http://127.0.0.1:8000/api/runs/$RUN/events/stream -H "$H"',
    )
    for command in readme_commands:
        assert command in README, f"the README no longer shows: {command}"
    script = f"""
set -euo pipefail
TOKEN=$(python3 -m uv run agent-platform token create)
H="Authorization: Bearer $TOKEN"
AGENT=$(curl -s -X POST {url}/api/agents -H "$H" -H 'Content-Type: application/json' \\
  -d '{{"name": "log-reader", "system_prompt": "Answer in one sentence."}}' \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
RUN=$(curl -s -X POST {url}/api/agents/$AGENT/runs -H "$H" \\
  -H 'Content-Type: application/json' -H 'Idempotency-Key: count-files-1' \\
  -d '{json.dumps({"task": task})}' \\
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
curl -sN {url}/api/runs/$RUN/events/stream -H "$H"
"""
    stream = _sh(clone, env, script)
    return [json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:")]


def test_make_up_without_a_key_ends_the_run_with_the_readmes_error(clone: Path) -> None:
    port = free_port()
    env = _user_environment({})
    with make_up(clone, port, env) as printed:
        events = _readme_session(clone, env, port, "How many files are in the workspace?")
    assert f"AI Agent Platform on http://127.0.0.1:{port}" in printed
    assert any("bubblewrap sandbox" in line for line in printed), printed
    result = events[-1]
    assert result["type"] == "result"
    assert result["data"]["outcome"] == "failed"
    shown = re.search(r'"error":"([^"…]+)…"', README)
    assert shown is not None, "the README shows no run error"
    assert result["data"]["error"].startswith(shown.group(1)), (result, shown.group(1))


def test_make_up_carries_a_run_to_success_and_streams_it(
    clone: Path, messages_api: MessagesApiServer
) -> None:
    script = messages_api.add_script(
        [
            Reply([ToolUse("bash", {"command": "ls | wc -l"})]),
            Reply([Text("The workspace holds no files.")]),
        ]
    )
    port = free_port()
    env = _user_environment(
        {
            "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
            "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-first-contact-test-key",
        }
    )
    with make_up(clone, port, env):
        events = _readme_session(clone, env, port, f"{script} How many files are there?")
    kinds = [event["type"] for event in events]
    assert kinds[0] == "status"
    assert "tool_call" in kinds
    assert [e["data"]["output"] for e in events if e["type"] == "tool_result"] == ["0\n"]
    text = "".join(e["data"]["text"] for e in events if e["type"] == "text_delta")
    assert text == "The workspace holds no files."
    assert events[-1]["type"] == "result"
    assert events[-1]["data"]["outcome"] == "succeeded", events[-1]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

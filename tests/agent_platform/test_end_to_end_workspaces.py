"""Workspaces under hostile agents: links out, workspaces past the limits, archives no run can
unpack.

The platform is the real one, as a subprocess, running the real runner, on SQLite and on the
Firestore emulator; Claude is played by the scripted Messages API server.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from servers.firestore_emulator import FirestoreEmulator
from servers.messages_api import MessagesApiServer, Reply, Text, ToolUse
from servers.platform import RunningPlatform, running_platform

UNPACKED_LIMIT = 1024 * 1024
ARCHIVE_LIMIT = 256 * 1024
WAIT_SECONDS = 60.0
Event = dict[str, Any]


@pytest.fixture(scope="module", params=["sqlite", "firestore"])
def platform(
    request: pytest.FixtureRequest,
    messages_api: MessagesApiServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningPlatform]:
    env = {
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-upstream-workspaces",
        "AGENT_PLATFORM_WORKSPACE_MAX_UNPACKED_BYTES": str(UNPACKED_LIMIT),
        "AGENT_PLATFORM_WORKSPACE_MAX_BYTES": str(ARCHIVE_LIMIT),
    }
    if request.param == "firestore":
        emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
        env |= {
            **emulator.env,
            "AGENT_PLATFORM_STORE": "firestore",
            "AGENT_PLATFORM_GCP_PROJECT": emulator.new_project(),
        }
    with running_platform(tmp_path_factory.mktemp(request.param), env) as running:
        yield running


@pytest.fixture
async def http(platform: RunningPlatform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.base_url, headers=platform.headers, timeout=WAIT_SECONDS
    ) as client:
        yield client


async def _agent(http: httpx.AsyncClient) -> str:
    answer = await http.post("/api/agents", json={"name": "hostile"})
    assert answer.status_code == 201, answer.text
    agent_id: str = answer.json()["id"]
    return agent_id


async def _finished_run(
    http: httpx.AsyncClient, agent_id: str, task: str
) -> tuple[dict[str, Any], list[Event]]:
    """Run the task to its end: the run and its events."""
    answer = await http.post(f"/api/agents/{agent_id}/runs", json={"task": task})
    assert answer.status_code == 201, answer.text
    run_id = answer.json()["id"]
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        run: dict[str, Any] = (await http.get(f"/api/runs/{run_id}")).json()
        if run["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, f"run stayed {run['status']}"
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    events: list[Event] = (await http.get(f"/api/runs/{run_id}/events")).json()["items"]
    return run, events


def _of(events: list[Event], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == kind]


async def _bash_run(
    http: httpx.AsyncClient, messages_api: MessagesApiServer, agent_id: str, command: str
) -> tuple[dict[str, Any], list[Event]]:
    script = messages_api.add_script(
        [Reply([ToolUse("bash", {"command": command})]), Reply([Text("Done.")])]
    )
    return await _finished_run(http, agent_id, f"{script} {command}")


async def _listing(http: httpx.AsyncClient, agent_id: str) -> dict[str, dict[str, Any]]:
    answer = await http.get(f"/api/agents/{agent_id}/files")
    assert answer.status_code == 200, answer.text
    return {item["path"]: item for item in answer.json()["items"]}


def _plant(platform: RunningPlatform, agent_id: str, archive: bytes) -> None:
    """Store a workspace as an older platform, or a damaged disk, left it."""
    stored = platform.data_dir / "workspaces" / f"{agent_id}.tar.gz"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(archive)


def _archive_with_link_out() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        note = tarfile.TarInfo("notes.txt")
        note.size = 2
        tar.addfile(note, io.BytesIO(b"n\n"))
        link = tarfile.TarInfo("db_link")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../platform.db"
        tar.addfile(link)
    return buffer.getvalue()


async def test_a_link_out_is_left_out_with_a_notice_and_a_link_inside_is_kept(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)

    run, events = await _bash_run(
        http,
        messages_api,
        agent_id,
        "echo hi > kept.txt && ln -s kept.txt alias && ln -s ../../../platform.db db_link",
    )

    assert run["status"] == "succeeded", events
    (notice,) = _of(events, "notice")
    assert notice["kind"] == "workspace"
    assert "db_link (a link to ../../../platform.db, outside the workspace)" in notice["message"]
    files = await _listing(http, agent_id)
    assert sorted(files) == ["alias", "kept.txt"]
    assert files["alias"]["link_target"] == "kept.txt"

    again, events = await _bash_run(http, messages_api, agent_id, "cat alias")
    assert again["status"] == "succeeded", events
    assert _of(events, "tool_result")[0]["output"] == "hi\n"


async def test_a_link_that_leads_out_through_another_link_is_left_out_and_the_next_run_works(
    http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)

    run, events = await _bash_run(
        http,
        messages_api,
        agent_id,
        "echo hi > kept.txt && mkdir x && ln -s . s && ln -s ../s/.. x/t",
    )

    assert run["status"] == "succeeded", events
    (notice,) = _of(events, "notice")
    assert "x/t (a link to ../s/.., outside the workspace)" in notice["message"]
    assert sorted(await _listing(http, agent_id)) == ["kept.txt", "s", "x"]
    again, events = await _bash_run(http, messages_api, agent_id, "cat s/kept.txt")
    assert again["status"] == "succeeded", events
    assert _of(events, "tool_result")[0]["output"] == "hi\n"


async def test_a_hard_link_is_kept_as_a_file_that_outlives_the_other_name(
    http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)

    run, events = await _bash_run(http, messages_api, agent_id, "echo shared > a && ln a b")

    assert run["status"] == "succeeded", events
    files = await _listing(http, agent_id)
    assert files["b"] == {"path": "b", "size": 7, "is_dir": False, "link_target": None}
    read = await http.get(f"/api/agents/{agent_id}/files/b")
    assert (read.status_code, read.content) == (200, b"shared\n")
    deleted = await http.delete(f"/api/agents/{agent_id}/files/a")
    assert deleted.status_code == 204, deleted.text
    again, events = await _bash_run(http, messages_api, agent_id, "cat b")
    assert again["status"] == "succeeded", events
    assert _of(events, "tool_result")[0]["output"] == "shared\n"


async def test_a_workspace_past_the_archive_limit_fails_the_run_and_the_old_one_is_kept(
    http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)
    first, _ = await _bash_run(http, messages_api, agent_id, "echo keep > keep.txt")
    assert first["status"] == "succeeded"

    # Random bytes do not compress: the archive is past the limit, and is streamed up whole.
    run, events = await _bash_run(
        http, messages_api, agent_id, "head -c 16M /dev/urandom > noise.bin"
    )

    assert run["status"] == "failed"
    (error,) = _of(events, "error")
    assert error["kind"] == "workspace"
    assert f"more than the limit of {ARCHIVE_LIMIT} bytes" in error["message"]
    assert "AGENT_PLATFORM_WORKSPACE_MAX_BYTES" in error["message"]
    assert sorted(await _listing(http, agent_id)) == ["keep.txt"]


async def test_a_workspace_past_the_unpacked_limit_is_refused_and_the_old_one_kept(
    http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)
    first, _ = await _bash_run(http, messages_api, agent_id, "echo keep > keep.txt")
    assert first["status"] == "succeeded"

    # Two megabytes of zeros pack into a few kilobytes: only the unpacked size tells.
    run, events = await _bash_run(http, messages_api, agent_id, "head -c 2M /dev/zero > big.bin")

    assert run["status"] == "failed"
    (error,) = _of(events, "error")
    assert error["kind"] == "workspace"
    assert f"more than the limit of {UNPACKED_LIMIT} bytes" in error["message"]
    assert "AGENT_PLATFORM_WORKSPACE_MAX_UNPACKED_BYTES" in error["message"]
    assert "the agent keeps its previous workspace" in error["message"]
    assert sorted(await _listing(http, agent_id)) == ["keep.txt"]


async def test_an_entry_no_run_can_unpack_is_named_and_deleting_it_frees_the_agent(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)
    _plant(platform, agent_id, _archive_with_link_out())

    run, events = await _bash_run(http, messages_api, agent_id, "cat notes.txt")

    assert run["status"] == "failed"
    (error,) = _of(events, "error")
    assert error["kind"] == "setup"
    assert "db_link is a link that leads outside the workspace" in error["message"]
    assert "delete it from the agent's files or reset the agent's workspace" in error["message"]
    assert str(platform.data_dir) not in error["message"]
    assert "sandboxes" not in error["message"]
    files = await _listing(http, agent_id)
    assert files["db_link"]["link_target"] == "../../../platform.db"

    deleted = await http.delete(f"/api/agents/{agent_id}/files/db_link")
    assert deleted.status_code == 204, deleted.text

    run, events = await _bash_run(http, messages_api, agent_id, "cat notes.txt")
    assert run["status"] == "succeeded", events
    assert _of(events, "tool_result")[0]["output"] == "n\n"


async def test_resetting_a_damaged_workspace_makes_the_agent_usable_again(
    platform: RunningPlatform, http: httpx.AsyncClient, messages_api: MessagesApiServer
) -> None:
    agent_id = await _agent(http)
    _plant(platform, agent_id, b"\x1f\x8b but not really gzip")

    run, events = await _bash_run(http, messages_api, agent_id, "ls")
    assert run["status"] == "failed"
    assert "reset the agent's workspace" in _of(events, "error")[0]["message"]

    reset = await http.delete(f"/api/agents/{agent_id}/workspace")
    assert reset.status_code == 204, reset.text

    run, events = await _bash_run(http, messages_api, agent_id, "echo fresh > new.txt")
    assert run["status"] == "succeeded", events
    assert sorted(await _listing(http, agent_id)) == ["new.txt"]

"""Each family of routes refuses bodies above its own limit, in the shape its callers read."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest
from agent_platform.workspaces import read_file
from agent_runner import protocol
from servers.messages_api import MessagesApiServer, Reply, Text
from servers.platform import Caller, Claude, Served, create_agent, running_run

API_LIMIT = 1024
WORKSPACE_LIMIT = 8 * 1024
GATEWAY_LIMIT = 32 * 1024


@pytest.fixture
def platform_settings(messages_api: MessagesApiServer) -> dict[str, Any]:
    return {
        "max_body_bytes": API_LIMIT,
        "workspace_max_bytes": WORKSPACE_LIMIT,
        "gateway_max_body_bytes": GATEWAY_LIMIT,
        "anthropic_base_url": messages_api.base_url,
        "anthropic_api_key": "sk-upstream-limits-key",
    }


@pytest.fixture
async def runner(served: Served, alice: Caller) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A running run of a new agent, and an HTTP client holding its run token."""
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield run_id, client


def _archive(size: int) -> bytes:
    """A gzipped tar of about `size` bytes: random content does not compress."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb") as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        content = os.urandom(size)
        info = tarfile.TarInfo("noise.bin")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


async def test_an_api_body_over_the_api_limit_is_an_api_error(alice: Caller) -> None:
    answer = await alice.http.post("/api/agents", json={"name": "a", "description": "x" * 2000})
    assert answer.status_code == 413
    assert answer.json()["error"] == "content_too_large"
    assert f"larger than {API_LIMIT} bytes" in answer.json()["message"]


async def test_a_runner_workspace_upload_may_outgrow_the_api_limit_up_to_the_workspace_limit(
    runner: tuple[str, httpx.AsyncClient],
) -> None:
    run_id, client = runner
    path = protocol.WORKSPACE_PATH.format(run_id=run_id)
    archive = _archive(3 * API_LIMIT)
    assert API_LIMIT < len(archive) < WORKSPACE_LIMIT

    assert (await client.put(path, content=archive)).status_code == 204
    assert read_file((await client.get(path)).content, "noise.bin") is not None


@pytest.mark.parametrize("sent", ["declared", "chunked"])
async def test_a_runner_workspace_upload_over_the_workspace_limit_says_which_setting(
    runner: tuple[str, httpx.AsyncClient], sent: str
) -> None:
    run_id, client = runner
    archive = _archive(2 * WORKSPACE_LIMIT)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(archive), 1024):
            yield archive[start : start + 1024]

    content: bytes | AsyncIterator[bytes] = archive if sent == "declared" else chunks()
    answer = await client.put(protocol.WORKSPACE_PATH.format(run_id=run_id), content=content)
    assert answer.status_code == 413
    # The runner reads its workspace endpoint's answers by their `detail`.
    assert "AGENT_PLATFORM_WORKSPACE_MAX_BYTES" in answer.json()["message"]


async def test_a_workspace_file_upload_may_outgrow_the_api_limit(alice: Caller) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"
    content = os.urandom(3 * API_LIMIT)

    answer = await alice.http.put(f"{files}/noise.bin", content=content)

    assert answer.status_code == 201, answer.text
    assert (await alice.http.get(f"{files}/noise.bin")).content == content
    too_big = await alice.http.put(f"{files}/more.bin", content=os.urandom(2 * WORKSPACE_LIMIT))
    assert too_big.status_code == 413
    assert "AGENT_PLATFORM_WORKSPACE_MAX_BYTES" in too_big.json()["message"]


async def test_a_conversation_longer_than_any_api_body_goes_through_the_gateway(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    agent = await create_agent(alice)
    _, token = await running_run(served, alice, agent["id"])
    marker = messages_api.add_script([Reply([Text("read it all")])])
    long_turn = f"{marker} " + "word " * (4 * API_LIMIT)

    reply = await claude(token, max_retries=0).messages.create(
        model="claude-test", max_tokens=100, messages=[{"role": "user", "content": long_turn}]
    )

    assert reply.content[0].type == "text"
    assert reply.content[0].text == "read it all"
    (upstream,) = messages_api.requests(marker)
    assert upstream.body["messages"][0]["content"] == long_turn


async def test_a_conversation_over_the_gateway_limit_is_an_anthropic_error_for_the_sdk(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    agent = await create_agent(alice)
    _, token = await running_run(served, alice, agent["id"])
    marker = messages_api.add_script([Reply([Text("never")])])
    too_long = f"{marker} " + "word " * GATEWAY_LIMIT

    with pytest.raises(anthropic.RequestTooLargeError) as refused:
        await claude(token, max_retries=0).messages.create(
            model="claude-test", max_tokens=100, messages=[{"role": "user", "content": too_long}]
        )

    assert refused.value.status_code == 413
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "request_too_large"
    assert f"limit of {GATEWAY_LIMIT} bytes" in refused.value.body["error"]["message"]
    assert messages_api.requests(marker) == []

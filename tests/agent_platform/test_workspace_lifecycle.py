"""An owner deletes a workspace entry, resets a workspace, deletes an agent with its workspace.

On every store (SQLite, the Firestore emulator) and every blob store (the local directory,
Cloud Storage as fake-gcs-server), since each pair keeps its part of an agent.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import httpx
import pytest
from agent_runner import protocol
from servers.firestore_emulator import FirestoreEmulator
from servers.gcs_server import GcsServer, gcs_server
from servers.platform import Caller, Served, create_agent, result_event, running_run

__all__ = ["gcs_server"]

BACKENDS = [(store, blobs) for store in ("sqlite", "firestore") for blobs in ("local", "gcs")]


@pytest.fixture(params=BACKENDS, ids=[f"{store}-{blobs}" for store, blobs in BACKENDS])
def platform_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    store, blobs = request.param
    settings: dict[str, Any] = {"store": store, "blob_store": blobs, "gcp_project": "test"}
    if store == "firestore":
        emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
        settings["gcp_project"] = emulator.new_project()
    if blobs == "gcs":
        server: GcsServer = request.getfixturevalue("gcs_server")
        settings["gcs_bucket"] = server.new_bucket()
    return settings


def _raw_workspace(served: Served, request: pytest.FixtureRequest, agent_id: str) -> bool:
    """Whether the agent's archive is there, seen in the blob store's own storage."""
    if served.settings.blob_store == "local":
        return (served.settings.data_dir / "workspaces" / f"{agent_id}.tar.gz").exists()
    server: GcsServer = request.getfixturevalue("gcs_server")
    bucket = server.client().bucket(served.settings.gcs_bucket)
    return bucket.get_blob(f"workspaces/{agent_id}.tar.gz") is not None


def _archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("docs", "docs/deep"):
            folder = tarfile.TarInfo(name)
            folder.type = tarfile.DIRTYPE
            tar.addfile(folder)
        for name, content in (("a.txt", b"a"), ("docs/deep/b.txt", b"b"), ("keep.txt", b"k")):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("alias")
        link.type = tarfile.SYMTYPE
        link.linkname = "keep.txt"
        tar.addfile(link)
    return buffer.getvalue()


async def _agent_with_workspace(served: Served, caller: Caller) -> str:
    """An agent whose finished run left the workspace of `_archive()`."""
    agent = await create_agent(caller)
    run_id, token = await running_run(served, caller, agent["id"])
    async with httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as runner:
        path = protocol.WORKSPACE_PATH.format(run_id=run_id)
        answer = await runner.put(path, content=_archive())
        assert answer.status_code == 204, answer.text
        ended = await runner.post(
            protocol.EVENTS_PATH.format(run_id=run_id), json={"events": [result_event(1)]}
        )
        assert ended.json() == {"acked_seq": 1}
    agent_id: str = agent["id"]
    return agent_id


async def _paths(caller: Caller, agent_id: str) -> list[str]:
    answer = await caller.http.get(f"/api/agents/{agent_id}/files")
    assert answer.status_code == 200, answer.text
    return [item["path"] for item in answer.json()["items"]]


async def test_deleting_an_agent_deletes_its_workspace(
    served: Served, alice: Caller, request: pytest.FixtureRequest
) -> None:
    agent = await create_agent(alice)
    kept = await create_agent(alice)
    for each in (agent, kept):
        uploaded = await alice.http.put(f"/api/agents/{each['id']}/files/a.md", content=b"a")
        assert uploaded.status_code == 201, uploaded.text
    assert _raw_workspace(served, request, agent["id"])

    deleted = await alice.http.delete(f"/api/agents/{agent['id']}")

    assert deleted.status_code == 204, deleted.text
    assert not _raw_workspace(served, request, agent["id"])
    assert _raw_workspace(served, request, kept["id"])
    assert await _paths(alice, kept["id"]) == ["a.md"]


async def test_a_file_a_link_or_a_folder_is_deleted_and_the_rest_kept(
    served: Served, alice: Caller
) -> None:
    agent_id = await _agent_with_workspace(served, alice)
    files = f"/api/agents/{agent_id}/files"
    listed = (await alice.http.get(files)).json()["items"]
    assert {"path": "alias", "size": 0, "is_dir": False, "link_target": "keep.txt"} in listed

    answers = [
        await alice.http.delete(f"{files}/a.txt"),
        await alice.http.delete(f"{files}/alias"),
        await alice.http.delete(f"{files}/docs"),
    ]
    missing = await alice.http.delete(f"{files}/a.txt")

    assert [a.status_code for a in answers] == [204, 204, 204]
    assert missing.status_code == 404
    assert missing.json()["message"] == "a.txt is not in the workspace"
    assert await _paths(alice, agent_id) == ["keep.txt"]
    assert (await alice.http.get(f"{files}/keep.txt")).content == b"k"


async def test_resetting_the_workspace_empties_it(
    served: Served, alice: Caller, request: pytest.FixtureRequest
) -> None:
    agent_id = await _agent_with_workspace(served, alice)

    reset = await alice.http.delete(f"/api/agents/{agent_id}/workspace")

    assert reset.status_code == 204, reset.text
    assert not _raw_workspace(served, request, agent_id)
    assert await _paths(alice, agent_id) == []


async def test_a_workspace_is_not_changed_under_a_running_run(
    served: Served, alice: Caller
) -> None:
    agent_id = await _agent_with_workspace(served, alice)
    await running_run(served, alice, agent_id)

    entry = await alice.http.delete(f"/api/agents/{agent_id}/files/a.txt")
    reset = await alice.http.delete(f"/api/agents/{agent_id}/workspace")

    assert [entry.status_code, reset.status_code] == [409, 409]
    assert "queued or running run" in reset.json()["message"]
    assert "a.txt" in await _paths(alice, agent_id)


async def test_another_users_workspace_cannot_be_changed(
    served: Served, alice: Caller, bob: Caller
) -> None:
    agent_id = await _agent_with_workspace(served, alice)

    entry = await bob.http.delete(f"/api/agents/{agent_id}/files/a.txt")
    reset = await bob.http.delete(f"/api/agents/{agent_id}/workspace")
    agent = await bob.http.delete(f"/api/agents/{agent_id}")

    assert [entry.status_code, reset.status_code, agent.status_code] == [404, 404, 404]
    assert "a.txt" in await _paths(alice, agent_id)

"""The runner's workspace endpoints and the local blob store behind them."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_platform.workspaces import (
    LocalBlobStore,
    WorkspaceFile,
    WorkspaceFileNotFound,
    WorkspaceTooLarge,
    list_files,
    read_file,
)
from agent_runner import protocol, workspace_archive
from agent_runner.config import RunnerConfig
from agent_runner.platform_client import PlatformClient, PlatformError
from servers.platform import Caller, Served, create_agent, running_run

MAX_BYTES = 4096
MAX_UNPACKED_BYTES = 64 * 1024
MAX_FILES = 8


@pytest.fixture
def platform_settings() -> dict[str, Any]:
    return {
        "workspace_max_bytes": MAX_BYTES,
        "workspace_max_unpacked_bytes": MAX_UNPACKED_BYTES,
        "workspace_max_files": MAX_FILES,
    }


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb") as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _runner(served: Served, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def test_an_uploaded_workspace_is_what_the_next_run_downloads(
    served: Served, alice: Caller, tmp_path: Path
) -> None:
    agent = await create_agent(alice)
    first, token = await running_run(served, alice, agent["id"])
    workspace = tmp_path / "workspace"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "main.py").write_text("print('hi')\n")
    async with _runner(served, token) as runner:
        path = protocol.WORKSPACE_PATH.format(run_id=first)
        assert (await runner.get(path)).status_code == 204  # a new agent has none yet
        with workspace_archive.scratch_file() as archive:
            workspace_archive.pack(workspace, archive)
            answer = await runner.put(path, content=archive.read())
        assert answer.status_code == 204, answer.text
    second, token = await running_run(served, alice, agent["id"])
    async with _runner(served, token) as runner:
        answer = await runner.get(protocol.WORKSPACE_PATH.format(run_id=second))
    assert answer.headers["content-type"] == "application/gzip"
    assert read_file(answer.content, "src/main.py") == b"print('hi')\n"


async def test_an_oversized_upload_is_refused_and_the_old_workspace_kept(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    path = protocol.WORKSPACE_PATH.format(run_id=run_id)
    async with _runner(served, token) as runner:
        assert (await runner.put(path, content=_archive({"a.txt": b"old"}))).status_code == 204
        huge = _archive({"noise.bin": os.urandom(2 * MAX_BYTES)})
        assert len(huge) > MAX_BYTES
        refused = await runner.put(path, content=huge)
        assert refused.status_code == 413
        assert "AGENT_PLATFORM_WORKSPACE_MAX_BYTES" in refused.json()["message"]
        kept = await runner.get(path)
    assert read_file(kept.content, "a.txt") == b"old"


def _with_link(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("a.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"new"))
        link = tarfile.TarInfo(name)
        link.type = tarfile.SYMTYPE
        link.linkname = target
        tar.addfile(link)
    return buffer.getvalue()


def _entries(*entries: tuple[str, bytes | tuple[bytes, str]]) -> bytes:
    """An archive of files (name, contents) and links (name, (SYMTYPE or LNKTYPE, target))."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, what in entries:
            info = tarfile.TarInfo(name)
            if isinstance(what, bytes):
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
            else:
                info.type, info.linkname = what
                tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "status", "words"),
    [
        (
            _archive({"zeros.bin": bytes(MAX_UNPACKED_BYTES + 1)}),
            413,
            f"the workspace's files add up to more than the limit of {MAX_UNPACKED_BYTES} "
            "bytes; delete large or generated files from the workspace (or raise "
            "AGENT_PLATFORM_WORKSPACE_MAX_UNPACKED_BYTES)",
        ),
        (
            _archive({f"f{i}": b"" for i in range(MAX_FILES + 1)}),
            413,
            f"more than the limit of {MAX_FILES} files, folders and links",
        ),
        (
            _with_link("db_link", "../../../platform.db"),
            400,
            "the workspace cannot be kept: db_link is a link to ../../../platform.db, "
            "outside the workspace",
        ),
        (_archive({"../up.txt": b"x"}), 400, "../up.txt is a path outside the workspace"),
        (
            # `x/t` reads as `s/..`, the root; with `s -> .` it is the root's parent.
            _entries(("x/t", (tarfile.SYMTYPE, "../s/..")), ("s", (tarfile.SYMTYPE, "."))),
            400,
            "x/t is a link to ../s/.., which leads outside the workspace through a link",
        ),
        (
            _entries(("b", (tarfile.LNKTYPE, "a"))),
            400,
            "b is a hard link to a, which the workspace does not hold before it",
        ),
        (
            # A GNU long name (or PAX header) is read whole: refused by its size, unread.
            _entries((f"{'n' * (64 * 1024 + 1)}", b"x")),
            400,
            "an entry has an extended tar header (its name, link target or attributes) of ",
        ),
        (
            _entries((f"{'d/' * 2100}f", b"x")),
            400,
            "has a path of 4201 bytes, more than the 4096 bytes allowed",
        ),
    ],
    ids=[
        "unpacked-size",
        "entries",
        "link-out",
        "path-out",
        "link-out-through-a-link",
        "hard-link-to-nothing",
        "huge-header",
        "long-path",
    ],
)
async def test_an_upload_past_a_limit_or_leading_out_is_refused_and_the_old_workspace_kept(
    served: Served, alice: Caller, archive: bytes, status: int, words: str
) -> None:
    assert len(archive) <= MAX_BYTES  # small packed: only what it unpacks to tells
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    path = protocol.WORKSPACE_PATH.format(run_id=run_id)
    async with _runner(served, token) as runner:
        assert (await runner.put(path, content=_archive({"a.txt": b"old"}))).status_code == 204
        refused = await runner.put(path, content=archive)
        kept = await runner.get(path)
    assert refused.status_code == status
    assert words in refused.json()["message"]
    assert refused.json()["message"].endswith("the agent keeps its previous workspace")
    assert read_file(kept.content, "a.txt") == b"old"


async def test_a_link_inside_the_workspace_is_kept(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    path = protocol.WORKSPACE_PATH.format(run_id=run_id)
    async with _runner(served, token) as runner:
        stored = await runner.put(path, content=_with_link("docs/alias", "../a.txt"))
    listed = await alice.http.get(f"/api/agents/{agent['id']}/files")
    link = await alice.http.get(f"/api/agents/{agent['id']}/files/docs/alias")
    assert stored.status_code == 204, stored.text
    assert {"path": "docs/alias", "size": 0, "is_dir": False, "link_target": "../a.txt"} in (
        listed.json()["items"]
    )
    assert link.status_code == 404
    assert link.json()["message"] == "docs/alias is a link to ../a.txt; open ../a.txt instead"


async def test_an_upload_that_is_not_an_archive_is_refused(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with _runner(served, token) as runner:
        answer = await runner.put(
            protocol.WORKSPACE_PATH.format(run_id=run_id), content=b"just some bytes"
        )
    assert answer.status_code == 400
    assert "gzipped tar" in answer.json()["message"]


async def test_the_runner_reports_the_platform_s_reason_for_a_refused_upload(
    served: Served, alice: Caller, tmp_path: Path
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    config = RunnerConfig(
        run_id=run_id, platform_url=served.base_url, run_token=token, workspace=tmp_path
    )
    client = PlatformClient(config)
    try:
        with pytest.raises(PlatformError) as refused:
            await client.upload_workspace(io.BytesIO(b"just some bytes"), 15, deadline_seconds=5)
    finally:
        await client.aclose()
    assert refused.value.status == 400
    assert str(refused.value) == (
        "uploading the workspace: HTTP 400: the workspace upload is not a gzipped tar "
        "archive; the workspace is unchanged"
    )


async def test_a_token_of_another_run_gets_no_workspace(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    run_id, _ = await running_run(served, alice, agent["id"])
    _, other_token = await running_run(served, alice, agent["id"])
    async with _runner(served, other_token) as runner:
        answer = await runner.get(protocol.WORKSPACE_PATH.format(run_id=run_id))
    assert answer.status_code == 401
    assert answer.json()["message"] == "this run token belongs to another run"
    assert answer.headers["www-authenticate"] == "Bearer"  # as every 401 says how to sign in


async def test_the_local_store_keeps_one_archive_per_agent(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, max_bytes=MAX_BYTES)
    async with store.reading("agt_1") as missing:
        assert missing is None
    listed = [WorkspaceFile("d/f.txt", 1, is_dir=False)]
    await store.put("agt_1", io.BytesIO(_archive({"d/f.txt": b"x"})), listed)
    assert await store.listing("agt_1") == listed
    async with store.reading("agt_1") as archive:
        assert archive is not None
        assert list_files(archive) == [WorkspaceFile("d/f.txt", 1, is_dir=False)]
        with pytest.raises(WorkspaceFileNotFound):
            read_file(archive, "missing.txt")
    with pytest.raises(WorkspaceTooLarge):
        await store.put("agt_1", io.BytesIO(b"x" * (MAX_BYTES + 1)), [])
    await store.delete("agt_1")
    async with store.reading("agt_1") as deleted:
        assert deleted is None


async def test_the_local_store_refuses_ids_that_are_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an agent id"):
        await LocalBlobStore(tmp_path / "ws").put("../escape", io.BytesIO(b"x"), [])


async def test_a_listing_is_served_from_what_was_stored_without_reading_the_archive(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with _runner(served, token) as runner:
        path = protocol.WORKSPACE_PATH.format(run_id=run_id)
        assert (await runner.put(path, content=_archive({"a.txt": b"a"}))).status_code == 204
    # Garbage of the same size over the same file, its times put back: only reading the
    # archive could tell.
    stored = served.settings.data_dir / "workspaces" / f"{agent['id']}.tar.gz"
    before = stored.stat()
    with stored.open("r+b") as archive:
        archive.write(b"\0" * before.st_size)
    os.utime(stored, ns=(before.st_atime_ns, before.st_mtime_ns))

    files = f"/api/agents/{agent['id']}/files"
    listed = await alice.http.get(files)
    read = await alice.http.get(f"{files}/a.txt")

    assert [item["path"] for item in listed.json()["items"]] == ["a.txt"]
    assert read.status_code == 500
    assert "workspace archive is damaged" in read.json()["message"]

"""What the API gives the dashboard: its page, sessions from API tokens, each agent's latest run
and the files of an agent's workspace, through the real app on loopback.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
from servers.platform import Caller, Served, create_agent, running_run, start_run

WORKSPACE_LIMIT = 4096


@pytest.fixture
def platform_settings() -> dict[str, Any]:
    # Small enough to reach in a test; a run never starts here, so nothing else needs more.
    return {"workspace_max_bytes": WORKSPACE_LIMIT, "max_concurrent_runs": 1}


async def test_the_dashboard_page_is_served_with_a_strict_content_security_policy(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as http:
        page = await http.get("/")
        script = await http.get("/ui/app.js")

    assert page.status_code == 200
    assert '<script type="module" src="/ui/app.js">' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


async def test_an_api_token_opens_a_browser_session(served: Served, alice: Caller) -> None:
    answer = await alice.http.post("/api/auth/session")

    assert answer.status_code == 204
    session = answer.cookies["ap_session"]
    async with httpx.AsyncClient(
        base_url=served.base_url, cookies={"ap_session": session}
    ) as browser:
        me = await browser.get("/api/me")
    assert me.json()["name"] == "alice"
    assert "HttpOnly" in answer.headers.get_list("set-cookie")[0]


async def test_a_session_cannot_be_opened_without_a_token(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as anonymous:
        answer = await anonymous.post("/api/auth/session")

    assert answer.status_code == 401
    assert "Bearer" in answer.json()["message"]


async def test_listed_agents_carry_their_newest_run(alice: Caller) -> None:
    idle = await create_agent(alice, name="idle")
    busy = await create_agent(alice, name="busy")
    await start_run(alice, busy["id"], "first")
    newest = await start_run(alice, busy["id"], "second")

    listed = {a["name"]: a for a in (await alice.http.get("/api/agents")).json()["items"]}

    assert listed["idle"]["id"] == idle["id"]
    assert listed["idle"]["latest_run"] is None
    assert listed["busy"]["latest_run"]["id"] == newest["id"]
    assert listed["busy"]["latest_run"]["task"] == "second"


async def test_a_new_agent_has_an_empty_workspace(alice: Caller) -> None:
    agent = await create_agent(alice)

    answer = await alice.http.get(f"/api/agents/{agent['id']}/files")

    assert answer.status_code == 200
    assert answer.json() == {"items": []}


async def test_an_uploaded_file_is_listed_and_read_back_as_inert_text(alice: Caller) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"

    uploaded = await alice.http.put(f"{files}/site/index.html", content=b"<script>x</script>")
    listed = await alice.http.get(files)
    read = await alice.http.get(f"{files}/site/index.html")

    assert uploaded.status_code == 201
    assert uploaded.json() == {
        "path": "site/index.html",
        "size": 18,
        "is_dir": False,
        "link_target": None,
    }
    assert listed.json()["items"] == [
        {"path": "site", "size": 0, "is_dir": True, "link_target": None},
        {"path": "site/index.html", "size": 18, "is_dir": False, "link_target": None},
    ]
    assert read.content == b"<script>x</script>"
    assert read.headers["content-type"] == "text/plain; charset=utf-8"
    assert read.headers["x-content-type-options"] == "nosniff"
    assert read.headers["content-security-policy"].startswith("sandbox")
    assert read.headers["content-disposition"].startswith("inline")


async def test_a_download_is_an_attachment_and_binary_files_are_octet_streams(
    alice: Caller,
) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"
    await alice.http.put(f"{files}/logo.bin", content=b"\x89PNG\xff\x00")

    answer = await alice.http.get(f"{files}/logo.bin", params={"download": "true"})

    assert answer.content == b"\x89PNG\xff\x00"
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"] == "attachment; filename*=UTF-8''logo.bin"


async def test_a_missing_file_is_not_found_in_words(alice: Caller) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"

    before_any = await alice.http.get(f"{files}/notes.md")
    await alice.http.put(f"{files}/a.md", content=b"a")
    missing = await alice.http.get(f"{files}/notes.md")

    assert before_any.status_code == 404
    assert "has no files yet" in before_any.json()["message"]
    assert missing.status_code == 404
    assert missing.json()["message"] == "notes.md is not in the workspace"


async def test_an_upload_with_an_unusable_path_is_refused_and_changes_nothing(
    alice: Caller,
) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"
    await alice.http.put(f"{files}/docs/a.md", content=b"a")

    backslash = await alice.http.put(f"{files}/docs\\b.md", content=b"b")
    onto_folder = await alice.http.put(f"{files}/docs", content=b"b")

    assert backslash.status_code == 422
    assert "backslashes" in backslash.json()["message"]
    assert onto_folder.status_code == 409
    assert "docs is a folder" in onto_folder.json()["message"]
    listed = (await alice.http.get(files)).json()["items"]
    assert [f["path"] for f in listed] == ["docs", "docs/a.md"]


async def test_an_upload_that_would_outgrow_the_workspace_is_refused(alice: Caller) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"

    answer = await alice.http.put(f"{files}/noise.bin", content=os.urandom(WORKSPACE_LIMIT * 2))

    assert answer.status_code == 413
    assert "more than the limit" in answer.json()["message"]
    assert (await alice.http.get(files)).json()["items"] == []


async def test_an_upload_waits_for_the_agents_run_to_finish(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    await running_run(served, alice, agent["id"])

    answer = await alice.http.put(f"/api/agents/{agent['id']}/files/a.md", content=b"a")

    assert answer.status_code == 409
    assert "try again once it has finished" in answer.json()["message"]


async def test_another_users_workspace_is_not_found(alice: Caller, bob: Caller) -> None:
    agent = await create_agent(alice)
    await alice.http.put(f"/api/agents/{agent['id']}/files/secret.md", content=b"s")

    listed = await bob.http.get(f"/api/agents/{agent['id']}/files")
    read = await bob.http.get(f"/api/agents/{agent['id']}/files/secret.md")
    written = await bob.http.put(f"/api/agents/{agent['id']}/files/x.md", content=b"x")

    assert [listed.status_code, read.status_code, written.status_code] == [404, 404, 404]


async def test_a_person_following_a_used_login_link_is_sent_to_the_sign_in_page(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as browser:
        answer = await browser.get(
            "/login", params={"code": "apl_used"}, headers={"Accept": "text/html"}
        )
        script = await browser.get("/login", params={"code": "apl_used"})

    assert answer.status_code == 303
    assert answer.headers["location"] == "/?login=expired"
    assert script.status_code == 401
    assert "used already or has expired" in script.json()["message"]


async def test_a_damaged_workspace_is_reported_and_left_as_it_is(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    files = f"/api/agents/{agent['id']}/files"
    stored = served.settings.data_dir / "workspaces" / f"{agent['id']}.tar.gz"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"not a gzipped tar")

    listed = await alice.http.get(files)
    read = await alice.http.get(f"{files}/a.md")
    uploaded = await alice.http.put(f"{files}/a.md", content=b"a")

    assert [listed.status_code, read.status_code, uploaded.status_code] == [500, 500, 500]
    assert "workspace archive is damaged" in listed.json()["message"]
    assert uploaded.json()["message"].endswith("nothing was added to it")
    assert stored.read_bytes() == b"not a gzipped tar"

"""Every endpoint, called by another user: nothing of the owner's is found, nothing changes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from agent_platform.api import create_app
from agent_platform.settings import Settings
from agent_runner import protocol
from servers.platform import Caller, Served, create_agent, running_run
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# (method, path, json body) per route that names an object of a user; {agent}, {run} and
# {token} stand for the owner's ids.
MATRIX: list[tuple[str, str, dict[str, object] | None]] = [
    ("GET", "/api/agents/{agent}", None),
    ("PATCH", "/api/agents/{agent}", {"name": "taken"}),
    ("DELETE", "/api/agents/{agent}", None),
    ("GET", "/api/agents/{agent}/conversation", None),
    ("POST", "/api/agents/{agent}/runs", {"task": "steal"}),
    ("GET", "/api/agents/{agent}/runs", None),
    ("GET", "/api/agents/{agent}/files", None),
    ("GET", "/api/agents/{agent}/files/notes.md", None),
    ("DELETE", "/api/agents/{agent}/files/notes.md", None),
    ("DELETE", "/api/agents/{agent}/workspace", None),
    ("GET", "/api/runs/{run}", None),
    ("POST", "/api/runs/{run}/cancel", None),
    ("GET", "/api/runs/{run}/events", None),
    ("GET", "/api/runs/{run}/events/stream", None),
    ("DELETE", "/api/tokens/{token}", None),
]
# Followed over WebSocket, tested below.
UNSCOPED = {"/api/runs/{run_id}/events/ws"}
# Runners call these with a run token, which opens its own run only (tested apart).
RUN_SCOPED = ("/api/runner/", protocol.GATEWAY_PREFIX + "/")


def _template(path: str) -> str:
    return re.sub(r"\{(agent|run|token)\}", lambda m: "{" + m.group(1) + "_id}", path)


def test_the_matrix_covers_every_route_that_names_an_object(tmp_path: Path) -> None:
    app = create_app(Settings(_env_file=None, data_dir=tmp_path))
    paths: set[str] = {getattr(route, "path", "") for route in app.routes}
    owned = {
        path
        for path in paths
        if "{" in path and path not in UNSCOPED and not path.startswith(RUN_SCOPED)
    }
    in_matrix = {_template(path) for _, path, _ in MATRIX}
    missing = {p for p in owned if not p.startswith(("/docs", "/openapi", "/redoc"))} - in_matrix
    assert not missing, f"add these routes to the tenancy matrix: {sorted(missing)}"


def _masked(text: str, ids: dict[str, str]) -> str:
    for kind, value in ids.items():
        text = text.replace(value, f"<{kind}>")
    return text


@pytest.fixture
async def owned(served: Served, alice: Caller) -> dict[str, str]:
    agent = await create_agent(alice, name="private")
    run_id, _ = await running_run(served, alice, agent["id"])
    token = (await alice.http.post("/api/tokens", json={"name": "mine"})).json()
    return {"agent": agent["id"], "run": run_id, "token": token["id"]}


@pytest.mark.parametrize(("method", "path", "body"), MATRIX)
async def test_another_users_object_is_not_found(
    alice: Caller,
    bob: Caller,
    owned: dict[str, str],
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    before = {
        "agent": (await alice.http.get(f"/api/agents/{owned['agent']}")).json(),
        "runs": (await alice.http.get("/api/runs")).json(),
        "tokens": (await alice.http.get("/api/tokens")).json(),
    }
    answer = await bob.http.request(method, path.format(**owned), json=body)
    assert answer.status_code == 404, answer.text
    ghosts = {"agent": "agt_ghost", "run": "run_ghost", "token": "tok_ghost"}
    ghost = await bob.http.request(method, path.format(**ghosts), json=body)
    assert _masked(answer.text, owned) == _masked(ghost.text, ghosts)
    after = {
        "agent": (await alice.http.get(f"/api/agents/{owned['agent']}")).json(),
        "runs": (await alice.http.get("/api/runs")).json(),
        "tokens": (await alice.http.get("/api/tokens")).json(),
    }
    assert after == before


async def test_another_users_lists_are_empty(
    alice: Caller, bob: Caller, owned: dict[str, str]
) -> None:
    assert (await bob.http.get("/api/agents")).json() == {"items": []}
    assert (await bob.http.get("/api/runs")).json() == {"items": []}
    assert owned["token"] not in (await bob.http.get("/api/tokens")).text


async def test_another_users_run_cannot_be_followed_over_websocket(
    served: Served, bob: Caller, owned: dict[str, str]
) -> None:
    url = served.base_url.replace("http", "ws") + f"/api/runs/{owned['run']}/events/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {bob.token}"}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404


async def test_an_identity_header_is_never_trusted(served: Served, alice: Caller) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as anonymous:
        for header in ("X-User-Id", "X-Forwarded-User", "X-Goog-Authenticated-User-Email"):
            answer = await anonymous.get("/api/agents", headers={header: alice.user.id})
            assert answer.status_code == 401

"""The REST API through a real server: agents, runs, tokens, probes, and refusals of bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from agent_runner.protocol import TOOL_NAMES
from servers.platform import Caller, Served, create_agent, start_run, wait_for_status


async def test_an_agent_is_created_read_updated_and_deleted(alice: Caller) -> None:
    agent = await create_agent(
        alice, description="reads logs", system_prompt="be terse", limits={"max_turns": 4}
    )
    assert agent["limits"]["max_turns"] == 4
    assert agent["allowed_tools"]
    got = (await alice.http.get(f"/api/agents/{agent['id']}")).json()
    assert got == agent
    patched = await alice.http.patch(f"/api/agents/{agent['id']}", json={"name": "renamed"})
    assert patched.status_code == 200
    assert patched.json()["name"] == "renamed"
    assert patched.json()["system_prompt"] == "be terse"
    listed = (await alice.http.get("/api/agents")).json()["items"]
    assert [a["name"] for a in listed] == ["renamed"]
    assert (await alice.http.delete(f"/api/agents/{agent['id']}")).status_code == 204
    assert (await alice.http.get(f"/api/agents/{agent['id']}")).status_code == 404


async def test_an_agent_update_changes_only_the_fields_sent(alice: Caller) -> None:
    agent = await create_agent(alice, system_prompt="be terse")
    patched = await alice.http.patch(
        f"/api/agents/{agent['id']}", json={"limits": {"max_turns": 9}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["limits"]["max_turns"] == 9
    assert patched.json()["name"] == agent["name"]
    assert patched.json()["system_prompt"] == "be terse"
    nulled = await alice.http.patch(f"/api/agents/{agent['id']}", json={"name": None})
    assert nulled.status_code == 422
    assert "name" in nulled.json()["message"]


async def test_an_agent_without_a_model_gets_the_default_model(
    alice: Caller, served: Served
) -> None:
    agent = await create_agent(alice)
    assert agent["model"] == served.settings.default_model


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, "body.name"),
        ({"name": ""}, "body.name"),
        ({"name": "a", "limits": {"max_turns": 0}}, "body.limits.max_turns"),
        ({"name": "a", "allowed_tools": ["rm -rf"]}, "body.allowed_tools.0"),
        ({"name": "a", "colour": "red"}, "body.colour"),
    ],
)
async def test_an_invalid_agent_is_refused_with_what_is_wrong(
    alice: Caller, body: dict[str, object], location: str
) -> None:
    answer = await alice.http.post("/api/agents", json=body)
    assert answer.status_code == 422
    error = answer.json()
    assert error["error"] == "unprocessable_content" or error["error"] == "unprocessable_entity"
    assert location in error["message"]
    assert [d["location"] for d in error["details"]] == [location]
    assert (await alice.http.get("/api/agents")).json()["items"] == []


async def test_a_body_that_is_not_json_is_refused(alice: Caller) -> None:
    answer = await alice.http.post(
        "/api/agents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert "json" in answer.json()["message"].lower()


async def test_an_oversized_body_is_refused_before_it_is_read(
    alice: Caller, served: Served
) -> None:
    big = "x" * (served.settings.max_body_bytes + 1)
    answer = await alice.http.post("/api/agents", json={"name": "a", "description": big})
    assert answer.status_code == 413
    assert answer.json()["error"] == "content_too_large"
    assert (await alice.http.get("/api/agents")).json()["items"] == []


async def test_an_oversized_chunked_body_is_refused(alice: Caller, served: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(served.settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    answer = await alice.http.post(
        "/api/agents", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413


async def test_every_tool_the_runner_knows_is_accepted_on_an_agent(alice: Caller) -> None:
    agent = await create_agent(alice, allowed_tools=sorted(TOOL_NAMES))
    assert agent["allowed_tools"] == sorted(TOOL_NAMES)


async def test_an_agent_with_an_unknown_tool_is_refused_naming_the_known_ones(
    alice: Caller,
) -> None:
    created = await alice.http.post(
        "/api/agents", json={"name": "a", "allowed_tools": ["bash", "browser"]}
    )
    agent = await create_agent(alice, allowed_tools=["bash"])
    updated = await alice.http.patch(
        f"/api/agents/{agent['id']}", json={"allowed_tools": ["web_search"]}
    )
    for answer, tool in ((created, "browser"), (updated, "web_search")):
        assert answer.status_code == 422
        assert f"unknown tool '{tool}'" in answer.json()["message"]
        assert all(name in answer.json()["message"] for name in TOOL_NAMES)
    assert [a["id"] for a in (await alice.http.get("/api/agents")).json()["items"]] == [agent["id"]]
    assert (await alice.http.get(f"/api/agents/{agent['id']}")).json()["allowed_tools"] == ["bash"]


async def test_an_unknown_path_is_a_json_404(alice: Caller) -> None:
    answer = await alice.http.get("/api/nothing-here")
    assert answer.status_code == 404
    assert "/api/nothing-here" in answer.json()["message"]


async def test_a_run_is_created_once_per_idempotency_key(alice: Caller) -> None:
    agent = await create_agent(alice)
    first = await alice.http.post(
        f"/api/agents/{agent['id']}/runs", json={"task": "do it"}, headers={"Idempotency-Key": "k"}
    )
    again = await alice.http.post(
        f"/api/agents/{agent['id']}/runs", json={"task": "do it"}, headers={"Idempotency-Key": "k"}
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    runs = (await alice.http.get(f"/api/agents/{agent['id']}/runs")).json()["items"]
    assert [r["id"] for r in runs] == [first.json()["id"]]


async def test_an_idempotency_key_reused_for_another_task_is_a_conflict(alice: Caller) -> None:
    agent = await create_agent(alice)
    await start_run(alice, agent["id"], "one", **{"Idempotency-Key": "k"})
    answer = await alice.http.post(
        f"/api/agents/{agent['id']}/runs", json={"task": "two"}, headers={"Idempotency-Key": "k"}
    )
    assert answer.status_code == 409
    assert "Idempotency-Key" in answer.json()["message"]


async def test_an_empty_task_is_refused(alice: Caller) -> None:
    agent = await create_agent(alice)
    answer = await alice.http.post(f"/api/agents/{agent['id']}/runs", json={"task": "   "})
    assert answer.status_code == 422
    assert (await alice.http.get("/api/runs")).json()["items"] == []


async def test_runs_are_listed_and_filtered_by_status(alice: Caller) -> None:
    agent = await create_agent(alice)
    run = await start_run(alice, agent["id"], "succeed")
    await wait_for_status(alice, run["id"], {"succeeded"})
    succeeded = await alice.http.get("/api/runs", params={"status": "succeeded"})
    assert [r["id"] for r in succeeded.json()["items"]] == [run["id"]]
    failed = await alice.http.get("/api/runs", params={"status": "failed"})
    assert failed.json()["items"] == []
    bad = await alice.http.get("/api/runs", params={"status": "sleeping"})
    assert bad.status_code == 422


async def test_an_agent_with_active_runs_cannot_be_deleted(alice: Caller) -> None:
    agent = await create_agent(alice)
    run = await start_run(alice, agent["id"], "hang")
    await wait_for_status(alice, run["id"], {"running"})
    answer = await alice.http.delete(f"/api/agents/{agent['id']}")
    assert answer.status_code == 409
    await alice.http.post(f"/api/runs/{run['id']}/cancel")
    await wait_for_status(alice, run["id"], {"cancelled"})
    assert (await alice.http.delete(f"/api/agents/{agent['id']}")).status_code == 204


async def test_api_tokens_are_created_listed_and_revoked(alice: Caller, served: Served) -> None:
    created = await alice.http.post("/api/tokens", json={"name": "laptop"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    async with httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {secret}"}
    ) as laptop:
        assert (await laptop.get("/api/me")).json()["name"] == "alice"
        names = [t["name"] for t in (await laptop.get("/api/tokens")).json()["items"]]
        assert "laptop" in names
        assert "secret" not in (await laptop.get("/api/tokens")).text
        revoked = await alice.http.delete(f"/api/tokens/{created.json()['id']}")
        assert revoked.status_code == 204
        assert (await laptop.get("/api/me")).status_code == 401


async def test_probes_answer_and_metrics_count_requests(alice: Caller, served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as anonymous:
        assert (await anonymous.get("/healthz")).json() == {
            "status": "ok",
            "details": {"executor": "local", "local_sandbox": served.settings.local_sandbox},
        }
        assert (await anonymous.get("/readyz")).json() == {"status": "ready"}
        await alice.http.get("/api/agents")
        metrics = (await anonymous.get("/metrics")).text
    assert 'agent_platform_http_requests_total{method="GET",route="/api/agents",status="200"}' in (
        metrics
    )


async def test_the_openapi_spec_is_served(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as anonymous:
        spec = (await anonymous.get("/openapi.json")).json()
    assert "/api/agents/{agent_id}/runs" in spec["paths"]
    assert "/api/runs/{run_id}/events/stream" in spec["paths"]

"""What a runner sees: its assignment and event ingestion, with a run-scoped token."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from agent_runner import protocol
from servers.platform import Caller, Served, create_agent, event, result_event, running_run
from servers.waiting import eventually


def runner(served: Served, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def as_python_writes_it(body: dict[str, Any]) -> dict[str, Any]:
    """Request arguments sending `body` as Python's json module writes it, which httpx does not:
    NaN and infinities spelled out, and lone surrogates escaped. The platform's parser reads both;
    a browser reads neither."""
    return {"content": json.dumps(body), "headers": {"content-type": "application/json"}}


def events_path(run_id: str) -> str:
    return protocol.EVENTS_PATH.format(run_id=run_id)


async def test_a_runner_reads_its_assignment_with_the_conversation(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice, system_prompt="be brief", limits={"max_turns": 7})
    await served.services.store.append_conversation(
        alice.user.id, agent["id"], [{"role": "user", "content": "earlier"}]
    )
    run_id, token = await running_run(served, alice, agent["id"], "count files")
    async with runner(served, token) as http:
        answer = await http.get(protocol.ASSIGNMENT_PATH.format(run_id=run_id))
    assignment = protocol.Assignment.model_validate(answer.json())
    assert assignment.task == "count files"
    assert assignment.system_prompt == "be brief"
    assert assignment.limits.max_turns == 7
    assert assignment.conversation == [{"role": "user", "content": "earlier"}]


async def test_a_runner_token_opens_only_its_own_run(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    _run_a, token_a = await running_run(served, alice, agent["id"])
    run_b, _ = await running_run(served, alice, agent["id"])
    async with runner(served, token_a) as http:
        other = await http.get(protocol.ASSIGNMENT_PATH.format(run_id=run_b))
        post = await http.post(events_path(run_b), json={"events": [event(1)]})
    assert other.status_code == 401
    assert post.status_code == 401
    assert await served.services.store.list_events(run_b) == []


async def test_user_tokens_and_made_up_tokens_are_not_run_tokens(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, _ = await running_run(served, alice, agent["id"])
    for token in (alice.token, "run_made-up"):
        async with runner(served, token) as http:
            answer = await http.get(protocol.ASSIGNMENT_PATH.format(run_id=run_id))
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"


async def test_events_are_acknowledged_and_stored_once(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with runner(served, token) as http:
        first = await http.post(events_path(run_id), json={"events": [event(1), event(2)]})
        again = await http.post(events_path(run_id), json={"events": [event(2), event(3)]})
    assert first.json() == {"acked_seq": 2}
    assert again.json() == {"acked_seq": 3}
    stored = await served.services.store.list_events(run_id)
    assert [e.seq for e in stored] == [1, 2, 3]


async def test_a_batch_that_leaves_a_gap_is_refused_with_where_to_resume(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with runner(served, token) as http:
        await http.post(events_path(run_id), json={"events": [event(1)]})
        gap = await http.post(events_path(run_id), json={"events": [event(4)]})
        shuffled = await http.post(events_path(run_id), json={"events": [event(3), event(2)]})
    assert gap.status_code == 409
    assert "send again from seq 2" in gap.json()["message"]
    assert shuffled.status_code == 422
    assert [e.seq for e in await served.services.store.list_events(run_id)] == [1]


async def test_a_malformed_batch_is_refused_and_nothing_is_stored(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    bad_batches: list[dict[str, Any]] = [
        {"events": []},
        {"events": [{**event(1), "type": "gossip"}]},
        {"events": [event(1), {**result_event(2), "data": {"outcome": "maybe"}}]},
        {"events": [event(1), result_event(2), event(3)]},
        # Half a surrogate pair, which JSON can escape and no UTF-8 encoder writes.
        {"events": [event(1, text="\ud800")]},
    ]
    async with runner(served, token) as http:
        for batch in bad_batches:
            answer = await http.post(events_path(run_id), **as_python_writes_it(batch))
            assert answer.status_code == 422, batch
            assert answer.json()["message"]
    assert await served.services.store.list_events(run_id) == []


async def test_an_event_no_encoder_can_write_is_refused_and_other_runs_post_as_usual(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    hostile, hostile_token = await running_run(served, alice, agent["id"])
    honest, honest_token = await running_run(served, alice, agent["id"])
    unwritable = as_python_writes_it({"events": [event(1, text="\udfff")]})
    async with runner(served, hostile_token) as bad, runner(served, honest_token) as good:
        refused, stored = await asyncio.gather(
            bad.post(events_path(hostile), **unwritable),
            good.post(events_path(honest), json={"events": [event(1), event(2)]}),
        )
    assert refused.status_code == 422
    assert "lone surrogates" in refused.text
    assert stored.json() == {"acked_seq": 2}
    assert [e.seq for e in await served.services.store.list_events(honest)] == [1, 2]


async def test_numbers_json_cannot_spell_are_streamed_as_null(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    batch = {"events": [event(1, ratio=float("nan"), ceiling=float("inf"))]}
    frames: list[dict[str, Any]] = []

    async def follow() -> None:
        async with alice.http.stream("GET", f"/api/runs/{run_id}/events/stream") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    frames.append(json.loads(line[6:], parse_constant=_refuse))
                    return

    # Following before the post, so the event comes live from the bus, not from the store.
    following = asyncio.create_task(follow())
    await eventually(lambda: served.services.bus.subscriber_count() == 1, "the subscription")
    async with runner(served, token) as http:
        answer = await http.post(events_path(run_id), **as_python_writes_it(batch))
    assert answer.status_code == 200, answer.text
    await asyncio.wait_for(following, 30)
    assert frames[0]["data"] == {"ratio": None, "ceiling": None}
    listed = (await alice.http.get(f"/api/runs/{run_id}/events")).json()["items"]
    assert listed[0]["data"] == {"ratio": None, "ceiling": None}


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


async def test_the_result_event_finishes_the_run_with_usage_and_conversation(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"], "say hi")
    messages = [{"role": "user", "content": "say hi"}, {"role": "assistant", "content": "hi"}]
    result = result_event(2, usage={"input_tokens": 12, "output_tokens": 3}, new_messages=messages)
    async with runner(served, token) as http:
        ack = await http.post(events_path(run_id), json={"events": [event(1), result]})
        assert ack.json() == {"acked_seq": 2}
        resent = await http.post(events_path(run_id), json={"events": [event(1), result]})
        assert resent.json() == {"acked_seq": 2}
        late = await http.post(events_path(run_id), json={"events": [event(3)]})
        assert late.status_code == 409
        assignment = await http.get(protocol.ASSIGNMENT_PATH.format(run_id=run_id))
        assert assignment.status_code == 401
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["usage"]["input_tokens"] == 12
    assert run["finished_at"] is not None
    conversation = (await alice.http.get(f"/api/agents/{agent['id']}/conversation")).json()
    assert conversation["messages"] == messages


async def test_a_failed_result_keeps_the_runners_error(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with runner(served, token) as http:
        await http.post(
            events_path(run_id),
            json={"events": [result_event(1, "failed", error="the model refused")]},
        )
    run = (await alice.http.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "failed"
    assert run["error"] == "the model refused"

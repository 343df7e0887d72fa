"""Live event streams: every event exactly once and in order, across disconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from agent_runner import protocol
from servers.platform import (
    Caller,
    Served,
    create_agent,
    event,
    result_event,
    running_run,
)
from servers.waiting import eventually
from websockets.asyncio.client import connect


class Runner:
    def __init__(self, served: Served, run_id: str, token: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.path = protocol.EVENTS_PATH.format(run_id=run_id)

    async def send(self, first: int, last: int, *, finish: bool = False) -> None:
        events = [event(seq) for seq in range(first, last + 1)]
        if finish:
            events.append(result_event(last + 1))
        answer = await self.http.post(self.path, json={"events": events})
        assert answer.status_code == 200, answer.text


async def sse(
    caller: Caller, run_id: str, *, headers: dict[str, str] | None = None, after: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """Parse the run's SSE stream into events (ids checked against their seq)."""
    async with caller.http.stream(
        "GET", f"/api/runs/{run_id}/events/stream", params={"after": after}, headers=headers
    ) as answer:
        assert answer.status_code == 200
        frame: dict[str, str] = {}
        async for line in answer.aiter_lines():
            if line.startswith(":"):
                continue
            if line:
                field, _, value = line.partition(": ")
                frame[field] = value
                continue
            if frame:
                parsed = json.loads(frame["data"])
                assert frame["id"] == str(parsed["seq"])
                assert frame["event"] == parsed["type"]
                yield parsed
                frame = {}


async def test_an_sse_subscriber_that_reconnects_gets_every_event_once_in_order(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    runner = Runner(served, run_id, token)
    await runner.send(1, 10)
    received: list[int] = []
    async for item in sse(alice, run_id):
        received.append(item["seq"])
        if item["seq"] == 7:
            break
    await runner.send(11, 20)

    async def resume() -> None:
        async for item in sse(alice, run_id, headers={"Last-Event-ID": str(received[-1])}):
            received.append(item["seq"])

    follower = asyncio.create_task(resume())
    await runner.send(21, 30)
    await runner.send(31, 40, finish=True)
    await asyncio.wait_for(follower, 20)
    assert received == list(range(1, 42))


async def test_a_websocket_subscriber_that_reconnects_gets_every_event_once_in_order(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    runner = Runner(served, run_id, token)
    url = served.base_url.replace("http", "ws") + f"/api/runs/{run_id}/events/ws"
    headers = {"Authorization": f"Bearer {alice.token}"}
    await runner.send(1, 5)
    received: list[int] = []
    async with connect(url, additional_headers=headers) as socket:
        while not received or received[-1] < 5:
            received.append(json.loads(await socket.recv())["seq"])
    await runner.send(6, 9)
    async with connect(f"{url}?after={received[-1]}", additional_headers=headers) as socket:
        await runner.send(10, 12, finish=True)
        async for message in socket:
            received.append(json.loads(message)["seq"])
    assert received == list(range(1, 14))


async def test_twenty_subscribers_of_one_run_each_get_every_event(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    runner = Runner(served, run_id, token)
    await runner.send(1, 1)

    async def subscriber() -> list[int]:
        return [item["seq"] async for item in sse(alice, run_id)]

    subscribers = [asyncio.create_task(subscriber()) for _ in range(20)]
    await eventually(lambda: served.services.bus.subscriber_count() == 20, "20 subscribers")
    for first in range(2, 200, 25):
        await runner.send(first, first + 24)
    await runner.send(202, 210, finish=True)
    results = await asyncio.wait_for(asyncio.gather(*subscribers), 30)
    assert all(result == list(range(1, 212)) for result in results)


async def test_a_streamed_event_reads_as_it_does_in_the_event_list(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    data: dict[str, Any] = {"text": 'h\u00e9llo "q" </script>', "n": 1.5, "deep": [1, {"a": []}]}
    runner = Runner(served, run_id, token)
    first = {**event(1), "data": data}
    answer = await runner.http.post(runner.path, json={"events": [first, result_event(2)]})
    assert answer.status_code == 200, answer.text
    streamed = [item async for item in sse(alice, run_id)]
    listed = (await alice.http.get(f"/api/runs/{run_id}/events")).json()["items"]
    assert streamed == listed
    assert streamed[0]["data"] == data


async def test_the_stream_of_a_finished_run_replays_it_and_ends(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    await Runner(served, run_id, token).send(1, 3, finish=True)
    assert [item["seq"] async for item in sse(alice, run_id, after=2)] == [3, 4]


async def test_a_last_event_id_that_is_not_a_seq_is_refused(served: Served, alice: Caller) -> None:
    agent = await create_agent(alice)
    run_id, _ = await running_run(served, alice, agent["id"])
    answer = await alice.http.get(
        f"/api/runs/{run_id}/events/stream", headers={"Last-Event-ID": "yesterday"}
    )
    assert answer.status_code == 400

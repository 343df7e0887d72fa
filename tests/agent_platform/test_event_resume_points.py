"""Where a reader resumes a run's events (`after`, `Last-Event-ID`): strict digits, bounded.

Every malformed value is refused before the store is asked, in the way each surface can say
it: 422 on the REST page, 400 before an SSE stream starts, a close code with a reason on the
WebSocket. Both stores, since an unbounded seq overflowed SQLite's 64-bit integers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from agent_runner import protocol
from agent_runner.protocol import MAX_SEQ
from servers.platform import (
    Caller,
    Served,
    create_agent,
    event,
    result_event,
    running_run,
    wait_for_status,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# Past the stores' 64-bit integers, or not ASCII digits though `str.isdigit` or `int` take them.
MALFORMED = [
    str(MAX_SEQ + 1),
    str(2**70),
    "²",
    "١٢",
    "-1",
    "+1",
    " 1",
    "1.0",
    "1_000",
    "",
    "9" * 5_000,
]


@pytest.fixture(params=["sqlite", "firestore"])
def platform_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    emulator = request.getfixturevalue("firestore_emulator")
    return {"store": "firestore", "gcp_project": emulator.new_project()}


async def _finished_run(served: Served, caller: Caller) -> str:
    """A run whose three events (the last its result) are stored, and which has ended."""
    agent = await create_agent(caller)
    run_id, token = await running_run(served, caller, agent["id"])
    answer = await httpx.AsyncClient(base_url=served.base_url).post(
        protocol.EVENTS_PATH.format(run_id=run_id),
        json={"events": [event(1), event(2), result_event(3)]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text
    await wait_for_status(caller, run_id, {"succeeded"})
    return run_id


def _says_what_a_seq_is(message: str, name: str) -> None:
    assert message.startswith(f"{name} must be a seq"), message
    assert str(MAX_SEQ) in message


async def test_the_rest_page_refuses_a_malformed_after_with_422(
    served: Served, alice: Caller
) -> None:
    run_id = await _finished_run(served, alice)
    for raw in MALFORMED:
        answer = await alice.http.get(f"/api/runs/{run_id}/events", params={"after": raw})
        assert answer.status_code == 422, (raw, answer.text)
        body = answer.json()
        assert body["error"] == "unprocessable_entity"
        assert body["details"][0]["location"] == "query.after"
        assert "after must be a seq" in body["message"]
    for raw, seqs in [(str(MAX_SEQ), []), ("0001", [2, 3]), ("0", [1, 2, 3])]:
        answer = await alice.http.get(f"/api/runs/{run_id}/events", params={"after": raw})
        assert answer.status_code == 200, answer.text
        assert [item["seq"] for item in answer.json()["items"]] == seqs


async def test_the_sse_stream_refuses_a_malformed_resume_point_with_400_before_it_starts(
    served: Served, alice: Caller
) -> None:
    run_id = await _finished_run(served, alice)
    path = f"/api/runs/{run_id}/events/stream"
    for raw in MALFORMED:
        answers = [(await alice.http.get(path, params={"after": raw}), "after")]
        # HTTP trims a header's surrounding blanks; it carries Latin-1: "²" arrives as itself,
        # "١٢" as other non-digits.
        if raw == raw.strip():
            value = raw.encode("utf-8" if raw == "١٢" else "latin-1")
            by_header = await alice.http.get(path, headers={b"Last-Event-ID": value})
            answers.append((by_header, "Last-Event-ID"))
        for answer, name in answers:
            assert answer.status_code == 400, (raw, name, answer.text)
            assert answer.headers["content-type"] == "application/json"
            _says_what_a_seq_is(answer.json()["message"], name)
    # The largest seq a store holds is a valid resume point: nothing comes after it.
    for query, headers in [({"after": str(MAX_SEQ)}, {}), ({}, {"Last-Event-ID": str(MAX_SEQ)})]:
        answer = await alice.http.get(path, params=query, headers=headers)
        assert answer.status_code == 200
        assert "data:" not in answer.text


async def test_the_websocket_closes_with_4400_and_a_reason_on_a_malformed_after(
    served: Served, alice: Caller
) -> None:
    run_id = await _finished_run(served, alice)
    url = served.base_url.replace("http", "ws") + f"/api/runs/{run_id}/events/ws"
    headers = {"Authorization": f"Bearer {alice.token}"}
    for raw in MALFORMED:
        async with connect(f"{url}?after={quote(raw)}", additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None, raw
        assert closed.value.rcvd.code == 4400, raw
        _says_what_a_seq_is(closed.value.rcvd.reason, "after")
    async with connect(f"{url}?after={MAX_SEQ}", additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1000


async def test_a_runner_cannot_store_a_seq_past_what_the_stores_hold(
    served: Served, alice: Caller
) -> None:
    agent = await create_agent(alice)
    run_id, token = await running_run(served, alice, agent["id"])
    async with httpx.AsyncClient(
        base_url=served.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as runner:
        path = protocol.EVENTS_PATH.format(run_id=run_id)
        refused = await runner.post(path, json={"events": [event(MAX_SEQ + 1)]})
        assert refused.status_code == 422, refused.text
        assert refused.json()["details"][0]["location"] == "body.events.0.seq"
        stored = await runner.post(path, json={"events": [event(1)]})
        assert stored.status_code == 200, stored.text

"""A WebSocket refusal always arrives with its code: close reasons fit in the close frame."""

from __future__ import annotations

import pytest
from agent_platform.api.websocket_close import MAX_REASON_BYTES, close_reason
from servers.platform import Caller, Served
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


@pytest.mark.parametrize("character", ["a", "é", "→", "🙂"])
def test_a_long_reason_is_cut_to_the_frame_on_a_character_boundary(character: str) -> None:
    reason = character * 200
    cut = close_reason(reason)
    assert len(cut.encode()) <= MAX_REASON_BYTES
    assert len(cut.encode()) > MAX_REASON_BYTES - len(character.encode())
    assert reason.startswith(cut)


def test_a_short_reason_is_kept_whole() -> None:
    assert close_reason("the run has finished") == "the run has finished"


async def test_a_run_id_of_5_kb_is_refused_with_4404_and_a_reason(
    served: Served, alice: Caller
) -> None:
    # Long, but within the 8 KB request line the server's WebSocket handshake reads.
    run_id = "run_" + "x" * 5_000
    url = served.base_url.replace("http", "ws") + f"/api/runs/{run_id}/events/ws"
    headers = {"Authorization": f"Bearer {alice.token}"}
    async with connect(url, additional_headers=headers) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    assert "no run" in closed.value.rcvd.reason
    assert run_id not in closed.value.rcvd.reason

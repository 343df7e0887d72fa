"""A graceful stop (SIGTERM) ends open event streams, so the platform exits promptly."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers.platform import RunningPlatform, running_platform
from servers.waiting import wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

SCRIPTED_RUNNER = Path(__file__).with_name("scripted_runner.py")
WAIT_SECONDS = 20.0
# Far below uvicorn's own backstop (cli.GRACEFUL_SHUTDOWN_SECONDS): the streams must end at once.
EXIT_SECONDS = 5.0


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[RunningPlatform]:
    env = {"AGENT_PLATFORM_RUNNER_COMMAND": json.dumps([sys.executable, str(SCRIPTED_RUNNER)])}
    with running_platform(tmp_path / "p", env) as running:
        yield running


def _sse_seqs(response: httpx.Response, seqs: list[int], ended: threading.Event) -> None:
    """Collect the `id:` lines of an SSE stream until it ends (cleanly, or cut off)."""
    try:
        for line in response.iter_lines():
            if line.startswith("id: "):
                seqs.append(int(line.removeprefix("id: ")))
    except httpx.HTTPError:
        return
    ended.set()


def _until_closed(ws: ClientConnection, seqs: list[int]) -> ConnectionClosed:
    """Collect the seqs of the socket's messages until it closes; how it closed."""
    while True:
        try:
            seqs.append(json.loads(ws.recv(timeout=WAIT_SECONDS))["seq"])
        except ConnectionClosed as closed:
            return closed


def test_a_sigterm_ends_open_streams_and_a_resumed_subscriber_gets_every_event_once(
    platform: RunningPlatform,
) -> None:
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10) as http:
        agent = http.post("/api/agents", json={"name": "a"}).json()
        run_id = http.post(f"/api/agents/{agent['id']}/runs", json={"task": "hang"}).json()["id"]
        wait_for(lambda: bool(http.get(f"/api/runs/{run_id}/events").json()["items"]), "events")

    sse = httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=30)
    ws_url = platform.base_url.replace("http", "ws") + f"/api/runs/{run_id}/events/ws"
    with (
        sse,
        sse.stream("GET", f"/api/runs/{run_id}/events/stream") as response,
        connect(ws_url, additional_headers=platform.headers) as ws,
    ):
        assert response.status_code == 200
        sse_seqs: list[int] = []
        sse_ended = threading.Event()
        reader = threading.Thread(target=_sse_seqs, args=(response, sse_seqs, sse_ended))
        reader.start()
        ws_seqs: list[int] = [json.loads(ws.recv(timeout=WAIT_SECONDS))["seq"]]
        wait_for(lambda: bool(sse_seqs), "the SSE stream's first event")

        assert platform.process is not None
        platform.process.send_signal(signal.SIGTERM)
        assert platform.process.wait(EXIT_SECONDS) == 0, platform.log()
        assert "Traceback" not in platform.log()

        reader.join(WAIT_SECONDS)
        assert sse_ended.is_set(), "the SSE stream was cut off instead of ending"
        closed = _until_closed(ws, ws_seqs)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1012

    platform.start()
    with httpx.Client(base_url=platform.base_url, headers=platform.headers, timeout=10) as http:
        if http.get(f"/api/runs/{run_id}").json()["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            assert http.post(f"/api/runs/{run_id}/cancel").status_code == 202
        last = sse_seqs[-1]
        resumed: list[int] = []
        with http.stream(
            "GET", f"/api/runs/{run_id}/events/stream", headers={"Last-Event-ID": str(last)}
        ) as response:
            for line in response.iter_lines():
                if line.startswith("id: "):
                    resumed.append(int(line.removeprefix("id: ")))
        stored: list[dict[str, Any]] = http.get(f"/api/runs/{run_id}/events").json()["items"]
    everything = sse_seqs + resumed
    assert everything == [e["seq"] for e in stored] == list(range(1, len(everything) + 1))
    assert stored[-1]["type"] == "result"
    assert ws_seqs == sse_seqs

"""Events reach the platform in order, once, even when it is away for a while."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from agent_runner.config import RunnerConfig
from agent_runner.platform_client import PlatformClient
from agent_runner.protocol import BatchAck, EventBatch, EventType
from agent_runner.reporter import Reporter
from servers.in_thread import ThreadedServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Ingestion:
    """The platform's events endpoint as far as a runner can tell: stores by seq, acks."""

    def __init__(self) -> None:
        self.stored: list[int] = []
        self.notices: list[dict[str, Any]] = []
        self.batches = 0
        self.lock = threading.Lock()

    async def post(self, request: Request) -> JSONResponse:
        with self.lock:
            self.batches += 1
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"detail": "unknown token"}, status_code=401)
        batch = EventBatch.model_validate_json(await request.body())
        with self.lock:
            for event in batch.events:
                if event.seq == len(self.stored) + 1:
                    self.stored.append(event.seq)
                    if event.type is EventType.NOTICE:
                        self.notices.append(event.data)
            acked = len(self.stored)
        return JSONResponse(BatchAck(acked_seq=acked).model_dump())

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/api/runner/runs/{run_id}/events", self.post, methods=["POST"])]
        )


TOKEN = "run-token"


def _client(port: int, tmp_path: Path, token: str = TOKEN) -> PlatformClient:
    return PlatformClient(
        RunnerConfig("run_1", f"http://127.0.0.1:{port}", token, tmp_path), retry_seconds=5
    )


async def test_events_emitted_while_the_platform_is_down_arrive_once_it_is_back(
    tmp_path: Path,
) -> None:
    ingestion = Ingestion()
    first = ThreadedServer(ingestion.app()).start()
    port = first.port
    client = _client(port, tmp_path)
    reporter = Reporter(client.post_events)
    reporter.start()
    reporter.emit(EventType.STATUS, {"status": "running"})
    async with asyncio.timeout(10):
        while ingestion.stored != [1]:
            await asyncio.sleep(0.01)  # polling a condition with a deadline
    first.stop()

    for n in range(700):  # more than one batch's worth, emitted while nobody listens
        reporter.emit(EventType.TEXT_DELTA, {"text": str(n)})
    second = ThreadedServer(ingestion.app(), port=port).start()
    try:
        assert await reporter.close(within=20)
    finally:
        second.stop()
        await client.aclose()
    assert ingestion.stored == list(range(1, 702))


async def test_a_refused_token_stops_reporting_instead_of_retrying_forever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingestion = Ingestion()
    server = ThreadedServer(ingestion.app()).start()
    client = _client(server.port, tmp_path, token="wrong")
    reporter = Reporter(client.post_events)
    reporter.start()
    reporter.emit(EventType.STATUS, {"status": "running"})
    try:
        assert not await reporter.close(within=10)
    finally:
        server.stop()
        await client.aclose()
    assert ingestion.batches == 1
    assert "rejected the run token" in capsys.readouterr().err


async def test_an_event_naming_a_file_that_is_not_utf8_is_sent_with_valid_text(
    tmp_path: Path,
) -> None:
    # A link left out of the workspace is named in a notice, with whatever bytes its name has;
    # emitting it must not fail, or the run would end without its workspace or its result.
    ingestion = Ingestion()
    server = ThreadedServer(ingestion.app()).start()
    client = _client(server.port, tmp_path)
    try:
        reporter = Reporter(client.post_events)
        reporter.start()
        name = os.fsdecode(b"link-\xff")
        reporter.emit(EventType.NOTICE, {"kind": "links", "message": name, "lone": "\ud800"})
        assert await reporter.close(within=10)
    finally:
        server.stop()
        await client.aclose()
    assert ingestion.stored == [1]
    assert ingestion.notices == [{"kind": "links", "message": "link-\ufffd", "lone": "\ufffd"}]

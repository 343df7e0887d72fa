"""Failures nothing else handles still answer in the API's error shape, logged once, masked.

Cloud Storage is fake-gcs-server on loopback; its bucket goes away mid-test, as it does for a
platform that loses access to it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agent_platform.api import create_app
from agent_platform.auth import new_secret
from agent_platform.logs import JsonFormatter
from agent_platform.settings import Settings
from agent_runner.protocol import GATEWAY_PREFIX
from fastapi import FastAPI
from servers.gcs_server import GcsServer, gcs_server
from servers.platform import Caller, Served, create_agent, serving_in_loop

__all__ = ["gcs_server"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def errors(self) -> list[dict[str, Any]]:
        """The platform's own error lines (an earlier test's leftover task may log here too)."""
        entries = [json.loads(line) for line in self.lines]
        return [
            e
            for e in entries
            if e["level"] in ("ERROR", "CRITICAL") and e["logger"].startswith("agent_platform")
        ]


@pytest.fixture
def logs() -> Iterator[_Lines]:
    """Every log line the platform writes during the test, as its JSON formatter writes it."""
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture
def platform_settings(gcs_server: GcsServer) -> dict[str, Any]:
    return {"blob_store": "gcs", "gcs_bucket": gcs_server.new_bucket(), "gcp_project": "test"}


async def test_a_failing_cloud_storage_answers_503_and_says_to_try_again(
    served: Served, alice: Caller, gcs_server: GcsServer, logs: _Lines
) -> None:
    agent = await create_agent(alice)
    path = f"/api/agents/{agent['id']}/files/notes.md"
    assert (await alice.http.put(path, content=b"one")).status_code == 201
    gcs_server.client().bucket(served.settings.gcs_bucket).delete(force=True)
    answer = await alice.http.put(path, content=b"two")
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["retry-after"] == "5"
    body = answer.json()
    assert body["error"] == "service_unavailable"
    assert body["details"] == []
    assert "storage is unavailable; try again" in body["message"]
    [logged] = logs.errors()
    assert (logged["method"], logged["path"]) == ("PUT", path)
    assert f"gs://{served.settings.gcs_bucket}" in logged["message"]
    assert "Exception in ASGI application" not in "".join(logs.lines)


async def test_an_unexpected_failure_answers_500_in_the_error_shape_logged_once_masked(
    tmp_path: Path, logs: _Lines
) -> None:
    secret = new_secret("run")

    async def fail() -> None:
        raise RuntimeError(f"the store said:\n{secret}")

    def make_app(port: int) -> FastAPI:
        settings = Settings(_env_file=None, data_dir=tmp_path, port=port, print_login_url=False)
        app = create_app(settings)
        app.add_api_route("/api/failing", fail)
        app.add_api_route(f"{GATEWAY_PREFIX}/v1/failing", fail, methods=["POST"])
        return app

    async with serving_in_loop(make_app) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.get("/api/failing")
        assert answer.status_code == 500, answer.text
        assert answer.headers["content-type"] == "application/json"
        body = answer.json()
        assert set(body) == {"error", "message", "details"}
        assert body["error"] == "internal_server_error"
        assert "try again" in body["message"]
        # The gateway answers in the Messages API's shape, which the runner's SDK reads.
        gateway = await http.post(f"{GATEWAY_PREFIX}/v1/failing")
        assert gateway.status_code == 500
        assert gateway.json()["error"]["type"] == "api_error"
    assert secret not in answer.text
    first, second = logs.errors()
    assert (first["method"], first["path"]) == ("GET", "/api/failing")
    assert (second["method"], second["path"]) == ("POST", f"{GATEWAY_PREFIX}/v1/failing")
    assert "RuntimeError: the store said:\n[secret]" in first["exception"]
    assert secret[:-1] not in "".join(logs.lines)
    assert "Exception in ASGI application" not in "".join(logs.lines)

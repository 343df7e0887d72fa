"""Signing in: one-time login links, browser sessions with CSRF protection, hashed secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from agent_platform.auth import issue_token
from agent_platform.cli import login_url
from agent_platform.domain import TokenKind, utcnow
from agent_platform.logs import JsonFormatter
from servers.platform import Caller, Served
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin


@asynccontextmanager
async def signed_in(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client that opened the admin's login link."""
    url = await login_url(served.settings)
    async with httpx.AsyncClient(base_url=served.base_url) as browser:
        answer = await browser.get(url.removeprefix(served.base_url))
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"
        yield browser


async def test_a_login_link_opens_a_session_once(served: Served) -> None:
    url = await login_url(served.settings)
    async with httpx.AsyncClient(base_url=served.base_url) as browser:
        first = await browser.get(url)
        cookie = first.headers.get_list("set-cookie")
        assert any(
            "ap_session=" in c and "HttpOnly" in c and "SameSite=strict" in c for c in cookie
        )
        assert (await browser.get("/api/me")).json()["name"] == "admin"
    async with httpx.AsyncClient(base_url=served.base_url) as another:
        again = await another.get(url)
        assert again.status_code == 401
        assert "login-url" in again.json()["message"]


async def test_an_expired_login_link_is_refused(served: Served) -> None:
    store = served.services.store
    admin = await store.find_user_by_name("admin") or (await served.caller("admin")).user
    issued = await issue_token(
        store,
        admin,
        kind=TokenKind.LOGIN,
        name="old link",
        ttl=timedelta(minutes=1),
        now=utcnow() - timedelta(hours=1),
    )
    async with httpx.AsyncClient(base_url=served.base_url) as browser:
        assert (await browser.get("/login", params={"code": issued.secret})).status_code == 401


async def test_a_session_change_needs_the_csrf_token(served: Served) -> None:
    async with signed_in(served) as browser:
        refused = await browser.post("/api/agents", json={"name": "a"})
        assert refused.status_code == 403
        assert "X-CSRF-Token" in refused.json()["message"]
        assert (await browser.get("/api/agents")).json()["items"] == []
        csrf = browser.cookies["ap_csrf"]
        made = await browser.post("/api/agents", json={"name": "a"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201


async def test_logging_out_ends_the_session(served: Served) -> None:
    async with signed_in(served) as browser:
        csrf = browser.cookies["ap_csrf"]
        assert (
            await browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
        ).status_code == 204
        browser.cookies.clear()
    async with signed_in(served) as browser:
        assert (await browser.get("/api/me")).status_code == 200


async def test_a_session_websocket_from_another_origin_is_refused(served: Served) -> None:
    async with signed_in(served) as browser:
        session = browser.cookies["ap_session"]
    url = served.base_url.replace("http", "ws") + "/api/runs/run_any/events/ws"
    headers = {"Cookie": f"ap_session={session}"}
    evil = Origin("https://evil.example")
    async with connect(url, additional_headers=headers, origin=evil) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_requests_without_a_valid_credential_are_unauthorized(
    served: Served, alice: Caller
) -> None:
    async with httpx.AsyncClient(base_url=served.base_url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer ap_wrong"}, {"Authorization": alice.token}):
            answer = await anonymous.get("/api/agents", headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error"] == "unauthorized"


async def test_secrets_are_stored_only_as_hashes(served: Served, alice: Caller) -> None:
    await served.services.store.ping()
    stored = b"".join(p.read_bytes() for p in served.settings.data_dir.glob("platform.db*"))
    assert alice.token.encode() not in stored
    assert len(await served.services.store.list_tokens(alice.user.id)) == 1


def test_log_lines_are_json_with_secrets_masked() -> None:
    record = logging.LogRecord(
        "agent_platform", logging.INFO, __file__, 1, "sent %s", ("run_" + "x" * 43,), None
    )
    record.run_id = "run_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "sent [secret]"
    assert line["run_id"] == "run_1"
    assert line["level"] == "INFO"

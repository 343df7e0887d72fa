"""Fixtures of the platform tests: stores of every backend, and the platform served in-loop.

To run the store contract suite against another backend, add its factory to STORE_BACKENDS.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import pytest
from agent_platform.api import create_app
from agent_platform.settings import Settings
from agent_platform.store import Store
from agent_platform.store.firestore import FirestoreStore
from agent_platform.store.sqlite import SqliteStore
from agent_runner.protocol import GATEWAY_PREFIX
from servers.firestore_emulator import FirestoreEmulator, firestore_emulator
from servers.platform import Caller, Claude, Served, serving_in_loop

SCRIPTED_RUNNER = Path(__file__).with_name("scripted_runner.py")


async def sqlite_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / "contract.db")


async def firestore_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    emulator: FirestoreEmulator = request.getfixturevalue(firestore_emulator.__name__)
    return FirestoreStore.open(emulator.new_project())


StoreFactory = Callable[[pytest.FixtureRequest, Path], Awaitable[Store]]
STORE_BACKENDS: dict[str, StoreFactory] = {"sqlite": sqlite_store, "firestore": firestore_store}


@pytest.fixture(params=sorted(STORE_BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await STORE_BACKENDS[request.param](request, tmp_path)
    try:
        yield opened
    finally:
        await opened.aclose()


@pytest.fixture
def platform_settings(tmp_path: Path) -> dict[str, Any]:
    """Settings of the served platform; override in a module to change them."""
    return {}


@pytest.fixture
async def served(tmp_path: Path, platform_settings: dict[str, Any]) -> AsyncIterator[Served]:
    settings: Settings | None = None
    apps: list[Any] = []

    def make_app(port: int) -> Any:
        nonlocal settings
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            port=port,
            runner_command=[sys.executable, str(SCRIPTED_RUNNER)],
            cancel_grace_seconds=2,
            print_login_url=False,
            **platform_settings,
        )
        app = create_app(settings)
        apps.append(app)
        return app

    async with serving_in_loop(make_app) as base_url:
        assert settings is not None
        yield Served(base_url, settings, apps[0].state.services)


@pytest.fixture
async def claude(served: Served) -> AsyncIterator[Claude]:
    """`claude(token, max_retries=2)`: an SDK client of the gateway, closed after the test."""
    clients: list[anthropic.AsyncAnthropic] = []

    def open_client(token: str, max_retries: int = 2) -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(
            base_url=served.base_url + GATEWAY_PREFIX, api_key=token, max_retries=max_retries
        )
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest.fixture
async def alice(served: Served) -> AsyncIterator[Caller]:
    caller = await served.caller("alice")
    async with caller.http:
        yield caller


@pytest.fixture
async def bob(served: Served) -> AsyncIterator[Caller]:
    caller = await served.caller("bob")
    async with caller.http:
        yield caller

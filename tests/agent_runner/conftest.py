"""Fixtures of the runner's tests: the scripted Messages API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from servers.messages_api import MessagesApiServer


@pytest.fixture(scope="session")
def messages_api() -> Iterator[MessagesApiServer]:
    server = MessagesApiServer().start()
    yield server
    server.stop()

"""A warm sandbox's runner waits for its run on its pod's address and takes exactly one handover."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from agent_runner import handover
from agent_runner.config import ConfigError
from agent_runner.wire_names import (
    ENV_HANDOVER_HOST,
    ENV_HANDOVER_PORT,
    ENV_RUN_ID,
    HANDOVER_PATH,
)
from servers.control_plane import free_port
from servers.waiting import wait_for

TOKEN = "handover-test-token"


@pytest.fixture
def waiting() -> Iterator[tuple[str, list[handover.Handover]]]:
    """A runner's listener on loopback, awaiting its handover in a thread."""
    port = free_port()
    listener = handover.bind("127.0.0.1", port)
    received: list[handover.Handover] = []
    thread = threading.Thread(target=lambda: received.append(handover.await_handover(listener)))
    thread.start()
    yield f"http://127.0.0.1:{port}", received
    if thread.is_alive():  # a test that never handed over: end the wait with a valid one
        httpx.post(
            f"http://127.0.0.1:{port}{HANDOVER_PATH}", json={"run_id": "x", "run_token": "y"}
        )
    thread.join(timeout=10)


def test_the_first_valid_handover_is_accepted_and_the_port_then_closes(
    waiting: tuple[str, list[handover.Handover]],
) -> None:
    url, received = waiting

    answer = httpx.post(f"{url}{HANDOVER_PATH}", json={"run_id": "run-1", "run_token": TOKEN})

    assert answer.status_code == 202
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}{HANDOVER_PATH}", json={"run_id": "run-2", "run_token": TOKEN})
    assert [(h.run_id, h.run_token) for h in received] == [("run-1", TOKEN)]


@pytest.mark.parametrize(
    "body",
    [
        {"run_id": "run-1"},
        {"run_id": "run-1", "run_token": ""},
        {"run_id": "run-1", "run_token": TOKEN, "platform_url": "http://elsewhere"},
        ["run-1", TOKEN],
    ],
    ids=["no-token", "empty-token", "extra-field", "not-an-object"],
)
def test_a_malformed_handover_is_refused_and_the_runner_keeps_waiting(
    waiting: tuple[str, list[handover.Handover]], body: object
) -> None:
    url, received = waiting

    refused = httpx.post(f"{url}{HANDOVER_PATH}", json=body)
    accepted = httpx.post(f"{url}{HANDOVER_PATH}", json={"run_id": "run-1", "run_token": TOKEN})

    assert refused.status_code == 400
    assert TOKEN not in refused.text
    assert accepted.status_code == 202
    wait_for(lambda: bool(received), timeout=10, what="the handover to be taken")
    assert received[0].run_id == "run-1"


def test_the_handover_is_not_shown_in_its_repr() -> None:
    assert TOKEN not in repr(handover.Handover("run-1", TOKEN))


def test_a_runner_named_by_its_environment_awaits_no_handover() -> None:
    env = {ENV_HANDOVER_PORT: "8790", ENV_RUN_ID: "run-1"}

    assert handover.address(env) is None
    assert handover.address({ENV_HANDOVER_PORT: "8790", ENV_HANDOVER_HOST: "10.1.2.3"}) == (
        "10.1.2.3",
        8790,
    )


def test_a_port_that_is_not_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a TCP port"):
        handover.address({ENV_HANDOVER_PORT: "http"})

"""A run's token budget holds against calls in parallel: the gateway reserves before it forwards.

The real platform's gateway, called with the real SDK, in front of the scripted Messages API
server; on both stores, since the reservation lives in the store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from servers.messages_api import MessagesApiServer, Reply, Text
from servers.platform import Caller, Claude, Served, create_agent, running_run

BUDGET = 1_000
CALLS = 30


@pytest.fixture(params=["sqlite", "firestore"])
def platform_settings(
    request: pytest.FixtureRequest, messages_api: MessagesApiServer
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "anthropic_base_url": messages_api.base_url,
        "anthropic_api_key": "sk-upstream-test-key",
    }
    if request.param == "firestore":
        emulator = request.getfixturevalue("firestore_emulator")
        settings |= {"store": "firestore", "gcp_project": emulator.new_project()}
    return settings


async def _usage(caller: Caller, run_id: str) -> int:
    usage = (await caller.http.get(f"/api/runs/{run_id}")).json()["usage"]
    return sum(usage.values())


async def test_thirty_parallel_calls_never_spend_more_than_the_budget(
    served: Served, alice: Caller, messages_api: MessagesApiServer, claude: Claude
) -> None:
    agent = await create_agent(alice, limits={"max_tokens": BUDGET})
    run_id, token = await running_run(served, alice, agent["id"])
    # Each reply bills 50 tokens of input and all the output it may, up to 100.
    marker = messages_api.add_script(
        [Reply([Text("ok")], usage={"input_tokens": 50, "output_tokens": 100})]
    )
    client = claude(token, max_retries=0)

    async def call() -> str:
        """The word answered, or the message of the gateway's refusal."""
        try:
            await client.messages.create(
                model="claude-test", max_tokens=100, messages=[{"role": "user", "content": marker}]
            )
        except (anthropic.RateLimitError, anthropic.PermissionDeniedError) as refused:
            return refused.message
        return "answered"

    in_flight = "tokens of the run's budget of 1000 are reserved by its calls in flight"
    exhausted = f"the run's token budget of {BUDGET} is exhausted"
    outcomes = await asyncio.gather(*(call() for _ in range(CALLS)))
    answered = outcomes.count("answered")
    assert answered >= 1
    refusals = [o for o in outcomes if o != "answered"]
    assert all(in_flight in o or exhausted in o for o in refusals), refusals
    assert len(messages_api.requests(marker)) == answered
    # A call granted less than it asked had its answer capped, and billed less.
    assert 50 * answered < await _usage(alice, run_id) <= BUDGET

    # Nothing stays reserved: one call after another, the run spends what is left, and no more.
    while (outcome := await call()) == "answered":
        answered += 1
    assert exhausted in outcome
    used = await _usage(alice, run_id)
    assert used <= BUDGET
    assert used > BUDGET - 200  # refused only once a call's input and answer could not fit
    assert len(messages_api.requests(marker)) == answered

"""`POST /llm/v1/messages`: the Anthropic Messages API for runners, with a run token as the key.

A runner's SDK sends its run token where it would put an API key. Only tokens of live runs are
accepted and a run whose token budget is spent is refused; the rest is forwarded upstream by
`agent_platform.llm_gateway`. Errors answer in Anthropic's own shape (see `agent_runner.protocol`)
because the runner's SDK is what parses them.
"""

from __future__ import annotations

import json
from typing import Final

from agent_runner.protocol import GATEWAY_PREFIX
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from agent_platform.api.deps import LiveRunDep, ServicesDep
from agent_platform.llm_gateway import MESSAGES_PATH, anthropic_error

KEY_SETTING: Final = "AGENT_PLATFORM_ANTHROPIC_API_KEY"

router = APIRouter(prefix=GATEWAY_PREFIX, include_in_schema=False)


@router.post(MESSAGES_PATH)
async def messages(request: Request, run: LiveRunDep, services: ServicesDep) -> Response:
    """Forward one Messages API request of a live run, its max_tokens capped by the budget."""
    if not services.gateway.configured:
        return anthropic_error(
            503,
            "not_configured",
            f"no Anthropic API key is configured on the platform: set {KEY_SETTING} "
            f"(or {KEY_SETTING}_FILE) in its environment or .env and restart it",
        )
    store = services.store
    agent = await store.get_agent(run.owner_id, run.agent_id)
    if agent is None:
        return anthropic_error(404, "not_found_error", "the run's agent no longer exists")
    budget = agent.limits.max_tokens
    remaining = budget - run.usage.total_tokens
    if remaining <= 0:
        return anthropic_error(
            403,
            "budget_exhausted",
            f"the run's token budget of {budget} is exhausted ({run.usage.total_tokens} "
            "used); raise the agent's max_tokens",
        )
    body = await request.body()
    try:
        params = json.loads(body)
    except ValueError:
        return anthropic_error(400, "invalid_request_error", "the body is not JSON")
    if not isinstance(params, dict):
        return anthropic_error(400, "invalid_request_error", "the body must be an object")
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > remaining:
        # The reply may not overrun the budget; re-encode only when it has to change.
        body = json.dumps({**params, "max_tokens": remaining}).encode()
    streamed = params.get("stream") is True
    return await services.gateway.forward(request, store, run, body, streamed=streamed)

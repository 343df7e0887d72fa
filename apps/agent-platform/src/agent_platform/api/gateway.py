"""`POST /llm/v1/messages`: the Anthropic Messages API for runners, with a run token as the key.

A runner's SDK sends its run token where it would put an API key. Only tokens of live runs are
accepted. Before a call goes upstream, its most expensive outcome is reserved against the run's
token budget, atomically in the store: its request's size in bytes (a token of input is never
less than a byte) plus its `max_tokens`, lowered to what is free. A call that cannot reserve its
input and one token to answer is refused: 403 `budget_exhausted` when the budget is spent, 429
(which the SDK retries) while the run's other calls in flight hold the rest. The reservation is
settled with the usage the reply reports, so any number of calls at once stay within the budget.
Each reservation is a `TokenHold` of the replica serving the call, which ends after the longest
the call may take: a call lost with its replica counts as used, never as held for good.
Tokens the API adds by itself (its own client tools' definitions, a few hundred a call) are not
in the request; the settled usage counts them. Input the request only points to (a URL or Files
API source, server tools, MCP servers) could be any size, so such a request is refused with a
400 (`agent_platform.request_bound`).

The call is forwarded upstream by `agent_platform.llm_gateway`. Errors answer in Anthropic's
own shape (see `agent_runner.protocol`) because the runner's SDK is what parses them.
"""

from __future__ import annotations

import json
from typing import Final

from agent_runner.protocol import GATEWAY_PREFIX
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from agent_platform.api.deps import LiveRunDep, ServicesDep
from agent_platform.domain import Reservation, utcnow
from agent_platform.llm_gateway import MESSAGES_PATH, anthropic_error
from agent_platform.request_bound import unbounded_input

KEY_SETTING: Final = "AGENT_PLATFORM_ANTHROPIC_API_KEY"
# When a call refused for want of tokens held by calls in flight may try again.
RETRY_SECONDS: Final = 1

router = APIRouter(prefix=GATEWAY_PREFIX, include_in_schema=False)


@router.post(MESSAGES_PATH)
async def messages(request: Request, run: LiveRunDep, services: ServicesDep) -> Response:
    """Forward one Messages API request of a live run once its tokens are reserved."""
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
    body = await request.body()
    try:
        params = json.loads(body)
    except ValueError:
        return anthropic_error(400, "invalid_request_error", "the body is not JSON")
    if not isinstance(params, dict):
        return anthropic_error(400, "invalid_request_error", "the body must be an object")
    max_tokens = params.get("max_tokens")
    if type(max_tokens) is not int or max_tokens < 1:
        return anthropic_error(
            400, "invalid_request_error", "max_tokens must be a positive integer"
        )
    if (unbounded := unbounded_input(params)) is not None:
        return anthropic_error(400, "invalid_request_error", unbounded)
    # The input's tokens are known only from the reply; a token is never less than a byte of
    # the request, so its size bounds them.
    prompt = len(body)
    budget = agent.limits.max_tokens
    hold = services.gateway.new_hold(services.scheduler.replica_id)
    reservation = await store.reserve_tokens(
        run.id, hold, budget=budget, least=prompt + 1, most=prompt + max_tokens, now=utcnow()
    )
    if reservation is None:
        return anthropic_error(404, "not_found_error", "the run no longer exists")
    if not reservation.granted:
        return _over_budget(budget, reservation, prompt)
    answer_tokens = reservation.granted - prompt
    if answer_tokens < max_tokens:
        # The reply may not overrun the budget; re-encode only when it has to change.
        body = json.dumps({**params, "max_tokens": answer_tokens}).encode()
    streamed = params.get("stream") is True
    return await services.gateway.forward(
        request,
        store,
        run,
        body,
        streamed=streamed,
        hold=hold,
        reserved=reservation.granted,
        max_output=min(answer_tokens, max_tokens),
    )


def _over_budget(budget: int, reservation: Reservation, prompt: int) -> Response:
    """Why a call's tokens could not be reserved: spent for good, or held by calls in flight."""
    need = (
        f"this call needs at least {prompt + 1} ({prompt} for its {prompt}-byte request, "
        "counted as a token a byte, and 1 to answer)"
    )
    if reservation.used + prompt + 1 > budget:
        return anthropic_error(
            403,
            "budget_exhausted",
            f"the run's token budget of {budget} is exhausted: {reservation.used} used, and "
            f"{need}; raise the agent's max_tokens",
        )
    # Freed when the calls in flight are answered: worth another try.
    return anthropic_error(
        429,
        "rate_limit_error",
        f"{reservation.held} tokens of the run's budget of {budget} are reserved by its calls "
        f"in flight and {reservation.used} used, and {need}; retry when those calls end",
        retry=True,
        retry_after=RETRY_SECONDS,
    )

"""How large a request body each family of routes takes, all in one place.

The API's own bodies are small; a runner's workspace upload may be as large as a workspace; a
long conversation through the LLM gateway may be far larger than any API body.
"""

from __future__ import annotations

import re
from typing import Final

from agent_runner import protocol
from starlette.responses import JSONResponse, Response

from agent_platform.api.body_limit import RouteLimit
from agent_platform.api.schemas import Error
from agent_platform.llm_gateway import request_too_large
from agent_platform.settings import Settings

GATEWAY_PATHS: Final = re.compile(re.escape(protocol.GATEWAY_PREFIX) + "/")
RUNNER_WORKSPACE: Final = re.compile(
    re.escape(protocol.WORKSPACE_PATH).replace(re.escape("{run_id}"), "[^/]+") + "$"
)
WORKSPACE_FILES: Final = re.compile(r"/api/agents/[^/]+/files/")
ANY_PATH: Final = re.compile("")


def _workspace_message(limit: int) -> str:
    return (
        f"the upload is more than the limit of {limit} bytes of a workspace; delete large or "
        "generated files from the workspace (or raise AGENT_PLATFORM_WORKSPACE_MAX_BYTES)"
    )


def _api_refusal(message: str) -> Response:
    body = Error(error="content_too_large", message=message)
    return JSONResponse(body.model_dump(), status_code=413)


def route_limits(settings: Settings) -> tuple[RouteLimit, ...]:
    """The body limit of each family of routes; the first whose path matches applies."""
    return (
        RouteLimit(GATEWAY_PATHS, settings.gateway_max_body_bytes, request_too_large),
        RouteLimit(
            RUNNER_WORKSPACE,
            settings.workspace_max_bytes,
            lambda limit: _api_refusal(_workspace_message(limit)),
        ),
        RouteLimit(
            WORKSPACE_FILES,
            settings.workspace_max_bytes,
            lambda limit: _api_refusal(_workspace_message(limit)),
        ),
        RouteLimit(
            ANY_PATH,
            settings.max_body_bytes,
            lambda limit: _api_refusal(f"the request body is larger than {limit} bytes"),
        ),
    )

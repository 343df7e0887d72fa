"""Every error as `{"error", "message", "details"}` JSON, with a message that says what to fix.

That shape is `agent_runner.protocol.ErrorBody`. The one exception is the LLM gateway under
`GATEWAY_PREFIX`, which answers in Anthropic's shape because the runner's SDK parses it.
An exception no handler takes answers 500 in the same shapes (`UncaughtErrors`).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from agent_runner.protocol import GATEWAY_PREFIX
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_platform.api.schemas import Error
from agent_platform.llm_gateway import anthropic_error
from agent_platform.workspaces import WorkspaceStorageError

logger = logging.getLogger(__name__)
# Long enough for a brief Cloud Storage outage to pass, short enough for someone waiting.
STORAGE_RETRY_SECONDS: Final = 5


def error_response(
    status: int,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Error(
        error=HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_"),
        message=message,
        details=details or [],
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _describe(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    details = [
        {"location": ".".join(str(p) for p in e["loc"]), "problem": e["msg"], "type": e["type"]}
        for e in errors
    ]
    summary = "; ".join(f"{d['location']}: {d['problem']}" for d in details[:5])
    return f"the request is not valid: {summary}", details


# The gateway's errors keep Anthropic's shape, whose `error.type` the SDK reads.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    message = (
        error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    )
    if error.status_code == 404 and error.detail == "Not Found":
        message = f"nothing is at {request.method} {request.url.path}"
    if error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    if request.url.path.startswith(GATEWAY_PREFIX + "/"):
        return anthropic_error(
            error.status_code, _ANTHROPIC_TYPES.get(error.status_code, "api_error"), message
        )
    headers = None if error.headers is None else dict(error.headers)
    return error_response(error.status_code, message, headers=headers)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    message, details = _describe(list(error.errors()))
    return error_response(422, message, details)


async def _storage_error(request: Request, error: Exception) -> JSONResponse:
    # The storage's own message names the bucket and what to check: for operators, not callers.
    logger.error(
        "%s %s: %s",
        request.method,
        request.url.path,
        error,
        extra={"method": request.method, "path": request.url.path},
    )
    return error_response(
        503,
        f"the workspace storage is unavailable; try again in {STORAGE_RETRY_SECONDS} seconds",
        headers={"Retry-After": str(STORAGE_RETRY_SECONDS)},
    )


def _internal_error(path: str) -> JSONResponse:
    message = "the platform failed to answer this request; try again, and report it if it lasts"
    if path.startswith(GATEWAY_PREFIX + "/"):
        return anthropic_error(500, "api_error", message)
    return error_response(500, message)


class UncaughtErrors:
    """An exception no handler takes: logged once, answered 500 in the error shape.

    Starlette's own last resort answers text/plain and raises the exception again, which the
    server then logs a second time as "Exception in ASGI application", without the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, watched_send)
        except Exception:
            method, path = scope["method"], scope["path"]
            logger.exception("%s %s failed", method, path, extra={"method": method, "path": path})
            # Once the answer has begun, the connection is all there is left to end.
            if not started:
                await _internal_error(path)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(WorkspaceStorageError, _storage_error)

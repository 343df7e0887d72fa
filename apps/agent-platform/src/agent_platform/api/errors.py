"""Every error as `{"error", "message", "details"}` JSON, with a message that says what to fix."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from agent_platform.api.schemas import Error


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


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    message = (
        error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    )
    if error.status_code == 404 and error.detail == "Not Found":
        message = f"nothing is at {request.method} {request.url.path}"
    if error.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    headers = None if error.headers is None else dict(error.headers)
    return error_response(error.status_code, message, headers=headers)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    message, details = _describe(list(error.errors()))
    return error_response(422, message, details)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)

"""Dependencies routes declare: the services, the calling user, the calling runner's run.

A runner's routes (its assignment, events, workspace, and the LLM gateway) all authenticate
with the run token through `live_run`/`reporting_run` or their path-checked forms.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from agent_platform.auth import (
    CsrfRejected,
    IdentityUnavailable,
    Unauthenticated,
    bearer_of,
    identify,
    resolve_run_token,
)
from agent_platform.domain import Run, User
from agent_platform.services import Services

UNAUTHENTICATED = HTTPException(
    401,
    "a valid credential is required: send `Authorization: Bearer <token>` "
    "(`agent-platform token create`) or sign in through the login URL",
    headers={"WWW-Authenticate": "Bearer"},
)


def get_services(connection: HTTPConnection) -> Services:
    services: Services = connection.app.state.services
    return services


async def _services(connection: HTTPConnection) -> Services:
    # A coroutine, so that FastAPI does not send every request through its thread pool.
    return get_services(connection)


ServicesDep = Annotated[Services, Depends(_services)]


async def current_user(connection: HTTPConnection, services: ServicesDep) -> User:
    try:
        return await identify(services.identity_sources, connection)
    except Unauthenticated:
        raise UNAUTHENTICATED from None
    except CsrfRejected:
        raise HTTPException(
            403,
            "a change from a browser must come from this origin; signed in with the session "
            "cookie, it also needs the X-CSRF-Token header",
        ) from None
    except IdentityUnavailable as error:
        raise HTTPException(503, f"{error}; try again shortly") from None


UserDep = Annotated[User, Depends(current_user)]


async def _run_of_token(request: Request, services: ServicesDep, *, live: bool) -> Run:
    # The Anthropic SDK sends its key as `x-api-key`, so the gateway's callers put it there.
    secret = request.headers.get("x-api-key") or bearer_of(request)
    if not secret:
        raise UNAUTHENTICATED
    try:
        return await resolve_run_token(services.store, secret, live=live)
    except Unauthenticated:
        raise HTTPException(
            401,
            "the run token is unknown or its run has finished; only a live run's token is accepted"
            if live
            else "the run token is unknown or its run has finished",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None


async def live_run(request: Request, services: ServicesDep) -> Run:
    """The not-yet-finished run whose run-scoped token the request carries, or 401."""
    return await _run_of_token(request, services, live=True)


async def reporting_run(request: Request, services: ServicesDep) -> Run:
    """Like `live_run`, but a finished run may still re-send what it reported."""
    return await _run_of_token(request, services, live=False)


LiveRunDep = Annotated[Run, Depends(live_run)]


def _same_run(run: Run, run_id: str) -> Run:
    if run.id != run_id:
        raise HTTPException(
            401, "this run token belongs to another run", headers={"WWW-Authenticate": "Bearer"}
        )
    return run


# The path-checked forms call `live_run`/`reporting_run` rather than declare them as
# dependencies: FastAPI's solving of those two (the run's, and the services' under it) takes
# 9% of the instructions of a runner's post of one event, as valgrind's callgrind counts them.
async def live_path_run(run_id: str, request: Request) -> Run:
    """`live_run`, which must be the run named by the path's `{run_id}`."""
    return _same_run(await live_run(request, get_services(request)), run_id)


async def reporting_path_run(run_id: str, request: Request) -> Run:
    """`reporting_run`, which must be the run named by the path's `{run_id}`."""
    return _same_run(await reporting_run(request, get_services(request)), run_id)


PathRunDep = Annotated[Run, Depends(live_path_run)]
ReportingPathRunDep = Annotated[Run, Depends(reporting_path_run)]

"""Signing in with a one-time login URL, who am I, and the caller's API tokens."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response

from agent_platform.api.deps import ServicesDep, UserDep
from agent_platform.api.schemas import TokenCreate, TokenCreated, TokenList, TokenOut, UserOut
from agent_platform.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    Unauthenticated,
    bearer_of,
    hash_secret,
    issue_token,
    new_secret,
    redeem_login_code,
)
from agent_platform.domain import TokenKind, User
from agent_platform.services import Services

router = APIRouter(tags=["auth"])


@router.get("/login", response_class=RedirectResponse, status_code=303)
async def login(
    request: Request,
    services: ServicesDep,
    code: str = Query(min_length=1, max_length=200),
) -> Response:
    """Exchange a one-time login code for a browser session, then open the dashboard."""
    try:
        user = await redeem_login_code(services.store, code)
    except Unauthenticated:
        if "text/html" in request.headers.get("accept", ""):
            # A person followed the link: the dashboard's sign-in page says what happened.
            return RedirectResponse("/?login=expired", status_code=303)
        raise HTTPException(
            401,
            "this login link was used already or has expired; ask for a new one "
            "with `agent-platform login-url`",
        ) from None
    return await _open_session(request, services, user, RedirectResponse("/", status_code=303))


@router.post("/api/auth/session", status_code=204)
async def session_from_token(request: Request, user: UserDep, services: ServicesDep) -> Response:
    """Open a browser session for the user of the API token in `Authorization: Bearer`.

    The dashboard's sign-in with a token: the token itself is never kept by the browser.
    """
    if bearer_of(request) is None:
        raise HTTPException(
            401,
            "send the API token as `Authorization: Bearer <token>` to open a session with it",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return await _open_session(request, services, user, Response(status_code=204))


async def _open_session(
    request: Request, services: Services, user: User, response: Response
) -> Response:
    """Issue a session for `user` and set its cookies on `response`."""
    ttl = timedelta(seconds=services.settings.session_ttl_seconds)
    issued = await issue_token(
        services.store, user, kind=TokenKind.SESSION, name="browser session", ttl=ttl
    )
    secure = request.url.scheme == "https"
    max_age = services.settings.session_ttl_seconds
    response.set_cookie(
        SESSION_COOKIE,
        issued.secret,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
    )
    response.set_cookie(
        CSRF_COOKIE, new_secret("csrf"), max_age=max_age, samesite="strict", secure=secure
    )
    return response


@router.post("/api/auth/logout", status_code=204)
async def logout(request: Request, user: UserDep, services: ServicesDep) -> Response:
    """End the browser session this request carries."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        await services.store.consume_token(hash_secret(secret), TokenKind.SESSION)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE)
    response.delete_cookie(CSRF_COOKIE)
    return response


@router.get("/api/me")
async def me(user: UserDep) -> UserOut:
    return UserOut.of(user)


@router.get("/api/tokens")
async def list_tokens(user: UserDep, services: ServicesDep) -> TokenList:
    tokens = await services.store.list_tokens(user.id)
    return TokenList(items=[TokenOut.of(t) for t in tokens if t.kind is TokenKind.API])


@router.post("/api/tokens", status_code=201)
async def create_token(body: TokenCreate, user: UserDep, services: ServicesDep) -> TokenCreated:
    """A new API token; its secret is in this answer only."""
    issued = await issue_token(services.store, user, kind=TokenKind.API, name=body.name)
    return TokenCreated(**TokenOut.of(issued.token).model_dump(), secret=issued.secret)


@router.delete("/api/tokens/{token_id}", status_code=204)
async def delete_token(token_id: str, user: UserDep, services: ServicesDep) -> Response:
    if not await services.store.delete_token(user.id, token_id):
        raise HTTPException(404, f"you have no token {token_id}")
    return Response(status_code=204)

"""Who is calling: users by API token or browser session, runners by run-scoped token.

Secrets are random, shown once and stored only as SHA-256 hashes. Identity comes from a
credential, never from a header a client can set (`X-User-Id` and friends are ignored). Behind
Google IAP, its signed header is a third source (`agent_platform.iap`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from starlette.requests import HTTPConnection

from agent_platform.domain import (
    ApiToken,
    Run,
    TokenKind,
    User,
    new_id,
    utcnow,
)
from agent_platform.store import Store, StoreError

SESSION_COOKIE = "ap_session"
CSRF_COOKIE = "ap_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN_NAME = "admin"


class Unauthenticated(Exception):
    """No valid credential: the answer is 401, whatever the reason."""


class CsrfRejected(Exception):
    """A browser change without proof that this origin sent it: the answer is 403."""


class IdentityUnavailable(Exception):
    """The credential cannot be checked right now (its keys are out of reach): 503."""


def new_secret(prefix: str) -> str:
    """A bearer secret; the prefix tells a reader what kind of token leaked, if one does."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_of(connection: HTTPConnection) -> str | None:
    scheme, _, credential = connection.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    secret: str


async def issue_token(
    store: Store,
    user: User,
    *,
    kind: TokenKind,
    name: str,
    ttl: timedelta | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    now = now or utcnow()
    prefix = {TokenKind.API: "ap", TokenKind.SESSION: "aps", TokenKind.LOGIN: "apl"}[kind]
    secret = new_secret(prefix)
    token = ApiToken(
        id=new_id("tok"),
        user_id=user.id,
        name=name,
        kind=kind,
        token_hash=hash_secret(secret),
        created_at=now,
        expires_at=None if ttl is None else now + ttl,
    )
    await store.create_token(token)
    return IssuedToken(token, secret)


async def ensure_user(store: Store, name: str, *, is_admin: bool = False) -> User:
    """The user with this name, created if missing (by this call or a concurrent one)."""
    user = await store.find_user_by_name(name)
    if user is None:
        user = User(id=new_id("usr"), name=name, created_at=utcnow(), is_admin=is_admin)
        try:
            await store.create_user(user)
        except StoreError:
            # A browser's first page opens several requests at once: one of them created it.
            existing = await store.find_user_by_name(name)
            if existing is None:
                raise
            return existing
    return user


async def user_for_secret(
    store: Store, secret: str, kinds: frozenset[TokenKind], now: datetime | None = None
) -> User:
    token = await store.find_token(hash_secret(secret))
    if token is None or token.kind not in kinds:
        raise Unauthenticated
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        raise Unauthenticated
    user = await store.get_user(token.user_id)
    if user is None:
        raise Unauthenticated
    return user


async def redeem_login_code(store: Store, code: str, now: datetime | None = None) -> User:
    """Exchange a one-time login code for its user; the code is gone afterwards."""
    token = await store.consume_token(hash_secret(code), TokenKind.LOGIN)
    if token is None or (token.expires_at is not None and token.expires_at <= (now or utcnow())):
        raise Unauthenticated
    user = await store.get_user(token.user_id)
    if user is None:
        raise Unauthenticated
    return user


class IdentitySource(Protocol):
    async def identify(self, connection: HTTPConnection) -> User | None:
        """The caller's user, None if this source does not apply; raise if it applies but fails."""


class BearerTokens:
    """`Authorization: Bearer <API token>`, for scripts, the CLI and the dashboard alike."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def identify(self, connection: HTTPConnection) -> User | None:
        secret = bearer_of(connection)
        if secret is None:
            return None
        return await user_for_secret(
            self._store, secret, frozenset({TokenKind.API, TokenKind.SESSION})
        )


class SessionCookies:
    """The browser session a login URL opens.

    The cookie is HttpOnly and SameSite=Strict; a request that changes something must also
    repeat the readable CSRF cookie in the X-CSRF-Token header (double submit), and a
    WebSocket must come from this origin.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def identify(self, connection: HTTPConnection) -> User | None:
        secret = connection.cookies.get(SESSION_COOKIE)
        if not secret:
            return None
        user = await user_for_secret(self._store, secret, frozenset({TokenKind.SESSION}))
        if connection.scope["type"] == "websocket":
            require_same_origin(connection)
        elif connection.scope["method"] not in SAFE_METHODS:
            expected = connection.cookies.get(CSRF_COOKIE, "")
            given = connection.headers.get(CSRF_HEADER, "")
            if not expected or not hmac.compare_digest(expected, given):
                raise CsrfRejected
        return user


def require_same_origin(connection: HTTPConnection) -> None:
    """Refuse a WebSocket or a change that a browser sent from another origin.

    For credentials the browser attaches by itself (cookies, a proxy's signed header), so that
    another site cannot act with them.
    """
    is_change = (
        connection.scope["type"] == "websocket" or connection.scope["method"] not in SAFE_METHODS
    )
    if is_change and not _same_origin(connection):
        raise CsrfRejected


def _same_origin(connection: HTTPConnection) -> bool:
    origin = connection.headers.get("origin")
    host = connection.headers.get("host")
    if origin is None:
        return True  # not a browser: browsers always send Origin on WebSocket handshakes
    return host is not None and origin.split("://", 1)[-1] == host


async def identify(sources: tuple[IdentitySource, ...], connection: HTTPConnection) -> User:
    for source in sources:
        user = await source.identify(connection)
        if user is not None:
            return user
    raise Unauthenticated


async def resolve_run_token(store: Store, secret: str, *, live: bool = True) -> Run:
    """The run a run-scoped token belongs to; with `live`, only while the run is not finished."""
    run = await store.find_run_by_token(hash_secret(secret))
    if run is None or (live and run.status.is_terminal):
        raise Unauthenticated
    return run

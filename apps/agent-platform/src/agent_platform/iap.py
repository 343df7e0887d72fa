"""Google Identity-Aware Proxy as an identity source: the user IAP signed the request for.

IAP adds a short-lived ES256 JWT to every request it lets through, in `x-goog-iap-jwt-assertion`.
Only that signature, checked against Google's published keys and this backend's audience, says
who the caller is. The plain `x-goog-authenticated-user-*` headers IAP also adds are never read:
anything that reaches the pods around IAP could set them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from google.auth import exceptions as google_auth_errors
from google.auth import jwt
from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection

from agent_platform.auth import (
    IdentityUnavailable,
    Unauthenticated,
    ensure_user,
    require_same_origin,
)
from agent_platform.domain import User
from agent_platform.settings import Settings
from agent_platform.store import Store

log = logging.getLogger(__name__)

ASSERTION_HEADER = "x-goog-iap-jwt-assertion"
ISSUER = "https://cloud.google.com/iap"
ALGORITHM = "ES256"
# Clocks of Google's front ends and the nodes differ by far less; IAP's tokens live 10 minutes.
LEEWAY_SECONDS = 30
# IAP rotates its keys and publishes new ones well before signing with them: a token naming an
# unseen key triggers a refetch, at most this often, so that made-up key ids cannot make every
# request wait on Google. Known keys are refetched hourly, so that a withdrawn one stops counting.
REFETCH_COOLDOWN_SECONDS = 5.0
KEYS_MAX_AGE_SECONDS = 3600.0
FETCH_TIMEOUT_SECONDS = 5.0


class InvalidAssertion(Unauthenticated):
    """IAP's header is there but does not prove who the caller is; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class IapIdentity:
    subject: str
    email: str | None

    @property
    def user_name(self) -> str:
        """The platform user's name: the verified email, else IAP's stable subject id."""
        return self.email or self.subject


class Jwk(BaseModel):
    """One key of a JWK set; fields of key types this verifier does not use are ignored."""

    kty: str
    kid: str | None = None
    crv: str | None = None
    x: str | None = None
    y: str | None = None


class JwkSet(BaseModel):
    keys: list[Jwk]


def _base64url_int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def public_keys(jwk_set: JwkSet) -> dict[str, bytes]:
    """Key id → PEM public key, for every P-256 key of the set (the only curve ES256 uses)."""
    keys: dict[str, bytes] = {}
    for jwk in jwk_set.keys:
        if jwk.kty != "EC" or jwk.crv != "P-256" or not (jwk.kid and jwk.x and jwk.y):
            continue
        try:
            numbers = ec.EllipticCurvePublicNumbers(
                _base64url_int(jwk.x), _base64url_int(jwk.y), ec.SECP256R1()
            )
            key = numbers.public_key()
        except ValueError:
            log.warning("IAP's key set holds a key %s that is not a P-256 point", jwk.kid)
            continue
        keys[jwk.kid] = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    return keys


def key_id_of(assertion: str) -> str:
    """The id of the key the assertion says it is signed with, once its algorithm is ES256."""
    try:
        header: Any = jwt.decode_header(assertion)  # type: ignore[no-untyped-call]
    except (google_auth_errors.GoogleAuthError, ValueError, TypeError) as error:
        raise InvalidAssertion(f"not a JWT ({error})") from None
    if not isinstance(header, Mapping):
        raise InvalidAssertion("the JWT header is not an object")
    # Checked before any key is chosen: "none", HMAC with a public key as its secret and RSA
    # are all refused, whatever a key set holds.
    if header.get("alg") != ALGORITHM:
        raise InvalidAssertion(f"alg is {header.get('alg')!r}, not {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidAssertion("the JWT header names no key (kid)")
    return kid


def verify_assertion(assertion: str, key_id: str, key: bytes, *, audience: str) -> IapIdentity:
    """The identity in an assertion whose signature, times, issuer and audience all check out."""
    try:
        claims: Any = jwt.decode(  # type: ignore[no-untyped-call]
            assertion,
            certs={key_id: key},
            audience=audience,
            clock_skew_in_seconds=LEEWAY_SECONDS,
        )
    except (google_auth_errors.GoogleAuthError, ValueError, TypeError) as error:
        raise InvalidAssertion(str(error)) from None
    if not isinstance(claims, Mapping):
        raise InvalidAssertion("the JWT claims are not an object")
    if claims.get("iss") != ISSUER:
        raise InvalidAssertion(f"iss is {claims.get('iss')!r}, not {ISSUER}")
    subject, email = claims.get("sub"), claims.get("email")
    if not isinstance(subject, str) or not subject:
        raise InvalidAssertion("the JWT has no subject (sub)")
    return IapIdentity(subject, email if isinstance(email, str) and email else None)


class IapKeys:
    """IAP's public keys, fetched without blocking the event loop and cached."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._keys: dict[str, bytes] = {}
        self._fetched_at: float | None = None
        self._fetch_failed = False
        self._lock = asyncio.Lock()

    async def key(self, key_id: str) -> bytes:
        """The PEM key with this id; refetches the set once when the id is new or the set old."""
        if self._due(key_id):
            async with self._lock:
                if self._due(key_id):  # unless a concurrent request has just fetched it
                    await self._fetch()
        key = self._keys.get(key_id)
        if key is not None:
            return key
        if self._fetch_failed:
            raise IdentityUnavailable(f"IAP's keys could not be fetched from {self._url}")
        raise InvalidAssertion(f"IAP publishes no key {key_id!r}")

    def _due(self, key_id: str) -> bool:
        if self._fetched_at is None:
            return True
        age = time.monotonic() - self._fetched_at
        limit = KEYS_MAX_AGE_SECONDS if key_id in self._keys else REFETCH_COOLDOWN_SECONDS
        return age >= limit

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            answer = await self._http.get(self._url)
            answer.raise_for_status()
            keys = public_keys(JwkSet.model_validate_json(answer.content))
        except (httpx.HTTPError, ValidationError) as error:
            # Keep the keys already known: a brief outage at Google signs nobody out.
            log.warning("cannot fetch IAP's keys from %s: %s", self._url, error)
            self._fetch_failed = True
            return
        if not keys:
            log.warning("IAP's key set at %s holds no P-256 key", self._url)
            self._fetch_failed = True
            return
        self._keys = keys
        self._fetch_failed = False


class IapAssertions:
    """The `IdentitySource` of IAP's signed header: its user, created on first sight."""

    def __init__(self, store: Store, keys: IapKeys, audience: str) -> None:
        self._store = store
        self._keys = keys
        self._audience = audience

    async def identify(self, connection: HTTPConnection) -> User | None:
        assertion = connection.headers.get(ASSERTION_HEADER)
        if assertion is None:
            return None
        try:
            key_id = key_id_of(assertion)
            key = await self._keys.key(key_id)
            identity = verify_assertion(assertion, key_id, key, audience=self._audience)
        except InvalidAssertion as error:
            log.warning("refused IAP's signed header: %s", error.reason)
            raise
        # The browser sends IAP's cookie, and so gets the header, whichever site made it ask.
        require_same_origin(connection)
        return await ensure_user(self._store, identity.user_name)


@asynccontextmanager
async def open_iap(settings: Settings, store: Store) -> AsyncIterator[IapAssertions | None]:
    """IAP's identity source when the settings name an audience; None otherwise."""
    if settings.iap_audience is None:
        yield None
        return
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as http:
        yield IapAssertions(store, IapKeys(settings.iap_keys_url, http), settings.iap_audience)

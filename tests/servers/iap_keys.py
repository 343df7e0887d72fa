"""Google IAP's side of its signed header, on loopback: the key set and the assertions.

    with IapKeyServer() as keys:
        key = keys.add_key()                     # a fresh P-256 key, published in the set
        assertion = key.sign(claims_for("alice@example.com", audience))
        env = {"AGENT_PLATFORM_IAP_AUDIENCE": audience, "AGENT_PLATFORM_IAP_KEYS_URL": keys.url}

Signing is written here with `cryptography` alone, independently of the verifier under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import uuid4

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ISSUER = "https://cloud.google.com/iap"
KEYS_PATH = "/iap/verify/public_key-jwk"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """`header.claims` of a JWT, before its signature."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"


def claims_for(
    email: str, audience: str, *, now: float | None = None, **overrides: Any
) -> dict[str, Any]:
    """What IAP signs for a Google account, issued now and valid ten minutes."""
    now = time.time() if now is None else now
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": audience,
        "sub": f"accounts.google.com:{int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)}",
        "email": email,
        "iat": int(now),
        "exp": int(now) + 600,
    }
    claims.update(overrides)
    return claims


@dataclass
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {
            "kty": "EC",
            "alg": "ES256",
            "use": "sig",
            "crv": "P-256",
            "kid": self.kid,
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }

    def sign(self, claims: Mapping[str, Any], **header: Any) -> str:
        """An ES256 JWT of these claims under this key's id (header fields override)."""
        signing_input = compact({"alg": "ES256", "typ": "JWT", "kid": self.kid, **header}, claims)
        der = self.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class IapKeyServer:
    """Serves a JWK set the test changes at will, and counts how often it is fetched."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.fetches = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != KEYS_PATH:
                    self.send_error(404)
                    return
                with server._lock:
                    server.fetches += 1
                    body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}{KEYS_PATH}"

    def add_key(self) -> SigningKey:
        key = SigningKey(kid=uuid4().hex)
        with self._lock:
            self.keys.append(key)
        return key

    def __enter__(self) -> IapKeyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)

"""The pipelines' GitHub identity: a GitHub App, whose installation tokens last an hour.

A personal access token belongs to a person, expires on a date someone has to remember, and
cannot be let past branch protection without letting that person past it too. An App signs a
short JWT with its private key (kept in Secret Manager) and trades it for an installation
token limited to one repository and the permissions a step names.
https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-an-installation-access-token-for-a-github-app
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gitops.errors import GitopsError
from gitops.pipelines.github import GitHubError

# GitHub refuses a JWT that lives longer than ten minutes; the clock of the build worker and
# GitHub's may differ, so it is dated a minute back.
JWT_LIFETIME = 9 * 60
CLOCK_SKEW = 60
_PERMISSION = re.compile(r"([a-z_]+)=(read|write)")


class AppKeyError(GitopsError):
    """The App's private key cannot be used."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def app_jwt(app_id: str, private_key: bytes, now: int) -> str:
    """The RS256 JWT that authenticates as the App itself."""
    try:
        key = serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise AppKeyError(
            "the GitHub App key is not an unencrypted PEM private key: store the .pem file "
            "GitHub generated in Secret Manager as it is"
        ) from error
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AppKeyError("the GitHub App key is not an RSA key: GitHub Apps sign with RSA")
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = {"iat": now - CLOCK_SKEW, "exp": now + JWT_LIFETIME, "iss": app_id}
    payload = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"


def parse_permissions(words: list[str]) -> dict[str, str]:
    """`contents=write pull_requests=write` as GitHub's permissions object."""
    permissions: dict[str, str] = {}
    for word in words:
        match = _PERMISSION.fullmatch(word)
        if match is None:
            raise ValueError(f"{word!r} is not a permission: write it as name=read or name=write")
        permissions[match.group(1)] = match.group(2)
    if not permissions:
        raise ValueError("name at least one permission, e.g. contents=write")
    return permissions


def installation_token(
    api_url: str,
    app_id: str,
    installation_id: str,
    private_key: bytes,
    repo: str,
    permissions: Mapping[str, str],
    now: int,
) -> str:
    """An installation token for one repository (`owner/name`) with only `permissions`."""
    if not (app_id.isdigit() and installation_id.isdigit()):
        raise ValueError(
            "the GitHub App id and installation id are numbers: set _GITHUB_APP_ID and "
            "_GITHUB_APP_INSTALLATION_ID on the trigger (the App's settings page shows both)"
        )
    url = f"{api_url.rstrip('/')}/app/installations/{installation_id}/access_tokens"
    body = {"repositories": [repo.split("/", 1)[-1]], "permissions": dict(permissions)}
    request = urllib.request.Request(  # noqa: S310 - https or a test's loopback
        url, data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("Authorization", f"Bearer {app_jwt(app_id, private_key, now)}")
    request.add_header("X-GitHub-Api-Version", "2022-11-28")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise GitHubError("POST", url, error.code, error.read().decode(errors="replace")) from error
    return str(answer["token"])

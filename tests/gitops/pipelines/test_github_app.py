"""`gitops github-token`: the GitHub App's key traded for a narrow installation token.

Against the loopback GitHub API, which checks the JWT as GitHub does (RS256 by the App's key,
issued by the App, at most ten minutes long).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from servers.github_api import App, GitHubServer, github_api

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "installation-token-3c1d"
REPO = "agent-platform/agent-platform"


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def github(key: rsa.RSAPrivateKey) -> Iterator[GitHubServer]:
    with github_api(TOKEN, app=App("1234", "5678", key.public_key())) as server:
        yield server


def _token(
    github: GitHubServer, key: str | None, *permissions: str, app_id: str = "1234"
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_APP_KEY"}
    if key is not None:
        env["GITHUB_APP_KEY"] = key
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gitops",
            "github-token",
            "--api-url",
            github.url,
            "--app-id",
            app_id,
            "--installation-id",
            "5678",
            "--repo",
            REPO,
            *permissions,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_apps_key_buys_a_token_for_this_repository_and_the_named_permissions_only(
    github: GitHubServer, key: rsa.RSAPrivateKey
) -> None:
    done = _token(github, _pem(key), "contents=read", "pull_requests=write")

    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{TOKEN}\n"
    assert github.state.issued == [
        {
            "repositories": ["agent-platform"],
            "permissions": {"contents": "read", "pull_requests": "write"},
        }
    ]


def test_a_key_that_is_not_the_apps_is_refused_by_github(github: GitHubServer) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    done = _token(github, _pem(stranger), "contents=write")

    assert done.returncode == 2
    assert "answered 401" in done.stderr
    assert github.state.issued == []


def test_without_the_key_in_the_environment_it_says_where_the_key_comes_from(
    github: GitHubServer,
) -> None:
    done = _token(github, None, "contents=write")

    assert done.returncode == 2
    assert "secretEnv" in done.stderr
    assert github.state.requests == []


@pytest.mark.parametrize(
    ("key_text", "permission", "app_id", "message"),
    [
        ("not a key", "contents=write", "1234", "not an unencrypted PEM private key"),
        (None, "contents=admin", "1234", "name=read or name=write"),
        (None, "contents=write", "", "set _GITHUB_APP_ID"),
    ],
    ids=["garbled-key", "unknown-level", "unset-app-id"],
)
def test_bad_input_gets_a_message_that_says_what_to_fix(
    github: GitHubServer,
    key: rsa.RSAPrivateKey,
    key_text: str | None,
    permission: str,
    app_id: str,
    message: str,
) -> None:
    done = _token(github, key_text or _pem(key), permission, app_id=app_id)

    assert done.returncode == 2
    assert message in done.stderr
    assert "PRIVATE KEY" not in done.stdout + done.stderr

"""Behind Google IAP: only its verified signed header names the user; nothing else a client sends.

The platform runs as a subprocess with the IAP audience set and IAP's key set served from
loopback; the assertions are signed here with keys the test generates.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from servers.iap_keys import IapKeyServer, SigningKey, b64url, claims_for, compact
from servers.platform import RunningPlatform, Served, free_port, running_platform

AUDIENCE = "/projects/123456789012/global/backendServices/4567890123456789"
HEADER = "x-goog-iap-jwt-assertion"
WAIT_SECONDS = 20.0


def iap_env(keys_url: str) -> dict[str, str]:
    return {"AGENT_PLATFORM_IAP_AUDIENCE": AUDIENCE, "AGENT_PLATFORM_IAP_KEYS_URL": keys_url}


@pytest.fixture(scope="module")
def iap_keys() -> Iterator[IapKeyServer]:
    with IapKeyServer() as server:
        server.add_key()
        yield server


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, iap_keys: IapKeyServer
) -> Iterator[RunningPlatform]:
    with running_platform(tmp_path_factory.mktemp("iap"), iap_env(iap_keys.url)) as running:
        yield running


def as_iap_user(key: SigningKey, email: str) -> dict[str, str]:
    return {HEADER: key.sign(claims_for(email, AUDIENCE))}


def get(platform: RunningPlatform, path: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{platform.base_url}{path}", headers=headers, timeout=30)


def create_agent(platform: RunningPlatform, headers: dict[str, str], name: str) -> str:
    answer = httpx.post(
        f"{platform.base_url}/api/agents", json={"name": name}, headers=headers, timeout=30
    )
    assert answer.status_code == 201, answer.text
    agent_id: str = answer.json()["id"]
    return agent_id


def agent_ids(platform: RunningPlatform, headers: dict[str, str]) -> set[str]:
    answer = get(platform, "/api/agents", headers)
    assert answer.status_code == 200, answer.text
    return {agent["id"] for agent in answer.json()["items"]}


def test_a_verified_assertion_signs_its_user_in_and_shows_their_own_agents(
    platform: RunningPlatform, iap_keys: IapKeyServer
) -> None:
    carol = as_iap_user(iap_keys.keys[0], "carol@example.com")

    me = get(platform, "/api/me", carol)
    agent_id = create_agent(platform, carol, "carol's helper")

    assert me.status_code == 200, me.text
    assert me.json()["name"] == "carol@example.com"
    assert me.json()["is_admin"] is False
    assert agent_ids(platform, carol) == {agent_id}
    again = get(platform, "/api/me", as_iap_user(iap_keys.keys[0], "carol@example.com"))
    assert again.json()["id"] == me.json()["id"], "the second visit made another user"


def test_two_iap_users_do_not_see_each_others_agents(
    platform: RunningPlatform, iap_keys: IapKeyServer
) -> None:
    dave = as_iap_user(iap_keys.keys[0], "dave@example.com")
    erin = as_iap_user(iap_keys.keys[0], "erin@example.com")

    daves = create_agent(platform, dave, "dave's helper")
    erins = create_agent(platform, erin, "erin's helper")

    assert agent_ids(platform, dave) == {daves}
    assert agent_ids(platform, erin) == {erins}
    assert get(platform, f"/api/agents/{daves}", erin).status_code == 404
    assert not {daves, erins} & agent_ids(platform, platform.headers)


def _stranger_under(key: SigningKey) -> SigningKey:
    """Another private key that claims the published key's id."""
    return SigningKey(kid=key.kid)


def _hmac_with_public_key(key: SigningKey) -> str:
    """The classic confusion: HS256 keyed with the published public key."""
    secret = key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_input = compact(
        {"alg": "HS256", "typ": "JWT", "kid": key.kid}, claims_for("mallory@example.com", AUDIENCE)
    )
    mac = hmac.new(secret, signing_input.encode(), sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _tampered(key: SigningKey) -> str:
    header, _, signature = key.sign(claims_for("frank@example.com", AUDIENCE)).split(".")
    claims = compact({}, claims_for("mallory@example.com", AUDIENCE)).split(".")[1]
    return f"{header}.{claims}.{signature}"


REFUSED: dict[str, tuple[Callable[[SigningKey], str], str]] = {
    "wrong audience": (
        lambda k: k.sign(claims_for("m@example.com", "/projects/1/global/backendServices/2")),
        "audience",
    ),
    "wrong issuer": (
        lambda k: k.sign(claims_for("m@example.com", AUDIENCE, iss="https://accounts.google.com")),
        "iss is",
    ),
    "expired": (
        lambda k: k.sign(claims_for("m@example.com", AUDIENCE, now=time.time() - 3600)),
        "expired",
    ),
    "issued in the future": (
        lambda k: k.sign(claims_for("m@example.com", AUDIENCE, now=time.time() + 3600)),
        "too early",
    ),
    "signed by another key under the published id": (
        lambda k: _stranger_under(k).sign(claims_for("m@example.com", AUDIENCE)),
        "signature",
    ),
    "claims changed after signing": (_tampered, "signature"),
    "unknown key": (
        lambda k: SigningKey(kid="never-published").sign(claims_for("m@example.com", AUDIENCE)),
        "no key",
    ),
    "alg none": (
        lambda k: (
            compact({"alg": "none", "kid": k.kid}, claims_for("m@example.com", AUDIENCE)) + "."
        ),
        "alg is 'none'",
    ),
    "alg HS256 keyed with the public key": (_hmac_with_public_key, "alg is 'HS256'"),
    "no subject": (
        lambda k: k.sign({**claims_for("m@example.com", AUDIENCE), "sub": ""}),
        "subject",
    ),
    "not a JWT": (lambda k: "not-a-jwt", "not a JWT"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_assertion_that_does_not_verify_is_refused(
    platform: RunningPlatform, iap_keys: IapKeyServer, case: str
) -> None:
    make, reason = REFUSED[case]
    logged_before = len(platform.log())

    answer = get(platform, "/api/me", {HEADER: make(iap_keys.keys[0])})

    assert answer.status_code == 401, answer.text
    refusals = [
        line for line in platform.log()[logged_before:].splitlines() if "refused IAP" in line
    ]
    assert any(reason in line for line in refusals), refusals


def test_forged_identity_headers_are_never_trusted(
    platform: RunningPlatform, iap_keys: IapKeyServer
) -> None:
    forged = {
        "x-goog-authenticated-user-email": "accounts.google.com:carol@example.com",
        "x-goog-authenticated-user-id": "accounts.google.com:1234567890",
        "X-User-Id": "carol@example.com",
    }

    alone = get(platform, "/api/me", forged)
    beside_frank = get(
        platform, "/api/me", {**forged, **as_iap_user(iap_keys.keys[0], "frank@example.com")}
    )

    assert alone.status_code == 401, alone.text
    assert beside_frank.json()["name"] == "frank@example.com"


def test_a_change_another_site_sends_with_the_assertion_is_refused(
    platform: RunningPlatform, iap_keys: IapKeyServer
) -> None:
    grace = as_iap_user(iap_keys.keys[0], "grace@example.com")
    url = f"{platform.base_url}/api/agents"

    cross_site = httpx.post(
        url, json={"name": "planted"}, headers={**grace, "Origin": "https://evil.example"}
    )
    same_site = httpx.post(
        url, json={"name": "hers"}, headers={**grace, "Origin": platform.base_url}
    )

    assert cross_site.status_code == 403, cross_site.text
    assert same_site.status_code == 201, same_site.text
    assert agent_ids(platform, grace) == {same_site.json()["id"]}


def test_a_bearer_token_keeps_naming_its_own_user_behind_iap(
    platform: RunningPlatform, iap_keys: IapKeyServer
) -> None:
    both = {**platform.headers, **as_iap_user(iap_keys.keys[0], "heidi@example.com")}

    assert get(platform, "/api/me", both).json()["name"] == "alice"


def test_keys_are_fetched_once_and_again_when_iap_signs_with_a_new_one(tmp_path: Path) -> None:
    with IapKeyServer() as keys, running_platform(tmp_path, iap_env(keys.url)) as platform:
        first = keys.add_key()
        for _ in range(3):
            assert (
                get(platform, "/api/me", as_iap_user(first, "ivan@example.com")).status_code == 200
            )
        assert keys.fetches == 1

        rotated = keys.add_key()
        deadline = time.monotonic() + WAIT_SECONDS
        while (
            answer := get(platform, "/api/me", as_iap_user(rotated, "ivan@example.com"))
        ).status_code != 200:
            assert answer.status_code == 401, answer.text
            assert time.monotonic() < deadline, "the new key was never fetched"
            time.sleep(0.2)  # polling a condition with a deadline

        assert keys.fetches == 2
        assert get(platform, "/api/me", as_iap_user(first, "ivan@example.com")).status_code == 200


def test_keys_out_of_reach_answer_503_not_401(tmp_path: Path, iap_keys: IapKeyServer) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/iap/verify/public_key-jwk"
    with running_platform(tmp_path, iap_env(nowhere)) as platform:
        answer = get(platform, "/api/me", as_iap_user(iap_keys.keys[0], "judy@example.com"))

    assert answer.status_code == 503, answer.text
    assert "keys" in answer.json()["message"]


async def test_without_an_audience_the_header_is_ignored(
    served: Served, iap_keys: IapKeyServer
) -> None:
    fetched = iap_keys.fetches
    valid = as_iap_user(iap_keys.keys[0], "carol@example.com")
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        answer = await client.get("/api/me", headers=valid)

    assert served.settings.iap_audience is None
    assert answer.status_code == 401, answer.text
    assert iap_keys.fetches == fetched
    assert await served.services.store.find_user_by_name("carol@example.com") is None


async def test_a_first_visit_of_many_requests_at_once_makes_one_user(
    platform: RunningPlatform, iap_keys: IapKeyServer
) -> None:
    key = iap_keys.keys[0]
    async with httpx.AsyncClient(base_url=platform.base_url, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.get("/api/me", headers=as_iap_user(key, "kim@example.com")) for _ in range(8))
        )

    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1

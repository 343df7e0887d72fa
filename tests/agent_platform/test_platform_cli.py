"""The `agent-platform` command an operator types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from agent_platform.cli import prints_login_url
from agent_platform.settings import Settings
from servers.platform import cli, platform_environment, running_platform

REPO = Path(__file__).resolve().parents[2]


def test_users_are_created_once_and_listed(tmp_path: Path) -> None:
    env = platform_environment(tmp_path, 8000, {})
    first = cli(env, tmp_path, "user", "create", "carol")
    assert cli(env, tmp_path, "user", "create", "carol") == first
    cli(env, tmp_path, "token", "create")
    listing = cli(env, tmp_path, "user", "list").splitlines()
    assert [line.split("\t")[1:] for line in listing] == [["carol"], ["admin", "admin"]]


def test_a_login_url_points_at_the_public_url(tmp_path: Path) -> None:
    env = platform_environment(tmp_path, 8000, {"AGENT_PLATFORM_PUBLIC_URL": "https://a.example"})
    assert cli(env, tmp_path, "login-url").startswith("https://a.example/login?code=apl_")


def test_a_store_that_cannot_open_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    env = platform_environment(tmp_path, 8000, {})
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_platform",
            "--sqlite-path",
            str(blocker / "x.db"),
            "user",
            "list",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("agent-platform: cannot open the sqlite store")
    assert "Traceback" not in done.stderr


def _settings(**fields: Any) -> Settings:
    return Settings(_env_file=None, **fields)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_the_embedded_platform_on_loopback_prints_its_login_url(host: str) -> None:
    assert prints_login_url(_settings(store="sqlite", host=host))


@pytest.mark.parametrize(
    "fields",
    [
        {"store": "sqlite", "host": "0.0.0.0"},  # noqa: S104 - the address under test
        {"store": "sqlite", "host": "10.1.2.3"},
        {"store": "sqlite", "host": "platform.example"},
        {"store": "firestore", "host": "127.0.0.1"},
        {"store": "sqlite", "host": "127.0.0.1", "print_login_url": False},
    ],
)
def test_a_login_url_is_never_printed_where_logs_are_shared(fields: dict[str, Any]) -> None:
    assert not prints_login_url(_settings(**fields))


def test_the_cloud_deployment_never_prints_a_login_url() -> None:
    deployment = yaml.safe_load((REPO / "apps/agent-platform/base/deployment.yaml").read_text())
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "api"
    ]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    fields = {
        name.removeprefix("AGENT_PLATFORM_").lower(): env[name]
        for name in ("AGENT_PLATFORM_HOST", "AGENT_PLATFORM_STORE")
    }
    assert not prints_login_url(_settings(**fields))


def test_serve_prints_a_working_login_url_on_a_laptop(tmp_path: Path) -> None:
    with running_platform(tmp_path, {"AGENT_PLATFORM_PRINT_LOGIN_URL": "true"}) as platform:
        lines = [line for line in platform.log().splitlines() if "/login?code=" in line]
        assert len(lines) == 1
        url = lines[0][lines[0].index(platform.base_url) :].strip()
        signed_in = httpx.get(url, follow_redirects=False, timeout=10)
    assert signed_in.status_code == 303
    assert signed_in.cookies

"""The `agent-platform` command an operator types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers.platform import cli, platform_environment


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

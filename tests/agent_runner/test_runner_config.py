"""The runner's environment: what it needs, and clear words when something is missing."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_runner import config, protocol


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        protocol.ENV_RUN_ID: "run_1",
        protocol.ENV_PLATFORM_URL: "http://127.0.0.1:9/",
        protocol.ENV_WORKSPACE: str(tmp_path),
        **extra,
    }


def test_the_token_can_come_from_a_mounted_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("secret-token\n")
    loaded = config.load(_env(tmp_path, **{protocol.ENV_RUN_TOKEN_FILE: str(token_file)}))
    assert loaded.run_token == "secret-token"
    assert loaded.platform_url == "http://127.0.0.1:9"
    assert "secret-token" not in repr(loaded)


def test_a_missing_token_names_both_ways_to_provide_it(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=protocol.ENV_RUN_TOKEN_FILE):
        config.load(_env(tmp_path))


def test_a_missing_workspace_directory_is_an_error(tmp_path: Path) -> None:
    env = _env(tmp_path, **{protocol.ENV_RUN_TOKEN: "t"})
    env[protocol.ENV_WORKSPACE] = str(tmp_path / "absent")
    with pytest.raises(config.ConfigError, match="not a directory"):
        config.load(env)

"""Settings as they load: every path absolute, whatever directory the platform starts in."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_platform.settings import Settings


def test_relative_paths_are_made_absolute_when_settings_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None, kubeconfig=Path("kube/config"))
    assert settings.data_dir == tmp_path / ".data"
    assert settings.sqlite_path == tmp_path / ".data" / "platform.db"
    assert settings.kubeconfig == tmp_path / "kube" / "config"


def test_the_local_sandbox_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).local_sandbox == "bubblewrap"
    monkeypatch.setenv("AGENT_PLATFORM_LOCAL_SANDBOX", "none")
    assert Settings(_env_file=None).local_sandbox == "none"

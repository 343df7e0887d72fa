"""The runner's configuration: the three things the platform hands it, read from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from agent_runner import wire_names as protocol

# The exit code of a runner that could not even start its run (no config, a refused token).
EXIT_CANNOT_START: Final = 2


class ConfigError(Exception):
    """The runner was started without what it needs; the message names the missing piece."""


@dataclass(frozen=True)
class RunnerConfig:
    run_id: str
    platform_url: str
    run_token: str
    workspace: Path
    # How tools' commands are confined: protocol.SANDBOX_BUBBLEWRAP or SANDBOX_NONE.
    tool_sandbox: str = protocol.SANDBOX_NONE

    def __repr__(self) -> str:
        # The token must never reach a log line through a stray repr.
        return (
            f"RunnerConfig(run_id={self.run_id!r}, platform_url={self.platform_url!r}, "
            f"workspace={str(self.workspace)!r}, tool_sandbox={self.tool_sandbox!r})"
        )


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set; the platform's executor must provide it")
    return value


def _token(env: Mapping[str, str]) -> str:
    if token := env.get(protocol.ENV_RUN_TOKEN, "").strip():
        return token
    if path := env.get(protocol.ENV_RUN_TOKEN_FILE, "").strip():
        try:
            token = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the run token from {path}: {exc.strerror}") from exc
        if token:
            return token
        raise ConfigError(f"the run token file {path} is empty")
    raise ConfigError(
        f"neither {protocol.ENV_RUN_TOKEN} nor {protocol.ENV_RUN_TOKEN_FILE} is set; "
        "the platform's executor must provide the run token"
    )


def load(env: Mapping[str, str]) -> RunnerConfig:
    workspace = Path(_required(env, protocol.ENV_WORKSPACE))
    if not workspace.is_dir():
        raise ConfigError(f"{protocol.ENV_WORKSPACE}={workspace} is not a directory")
    sandbox = env.get(protocol.ENV_TOOL_SANDBOX, "").strip() or protocol.SANDBOX_NONE
    if sandbox not in (protocol.SANDBOX_BUBBLEWRAP, protocol.SANDBOX_NONE):
        raise ConfigError(
            f"{protocol.ENV_TOOL_SANDBOX}={sandbox!r} is not one of "
            f"{protocol.SANDBOX_BUBBLEWRAP!r}, {protocol.SANDBOX_NONE!r}"
        )
    return RunnerConfig(
        run_id=_required(env, protocol.ENV_RUN_ID),
        platform_url=_required(env, protocol.ENV_PLATFORM_URL).rstrip("/"),
        run_token=_token(env),
        workspace=workspace.resolve(),
        tool_sandbox=sandbox,
    )

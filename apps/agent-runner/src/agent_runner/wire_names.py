"""The names of the wire format (environment, paths, tools, event types), free of heavy imports.

`protocol` re-exports all of them; they live here so that a runner can announce itself with
the standard library alone, before pydantic, httpx and the SDK have loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

# Environment variables a runner is started with. The token may instead come from a file (a
# mounted Kubernetes Secret), so that it never appears in a pod spec.
ENV_RUN_ID: Final = "AGENT_RUN_ID"
ENV_PLATFORM_URL: Final = "AGENT_PLATFORM_URL"
ENV_RUN_TOKEN: Final = "AGENT_RUN_TOKEN"  # noqa: S105 - a variable name
ENV_RUN_TOKEN_FILE: Final = "AGENT_RUN_TOKEN_FILE"  # noqa: S105 - a variable name
ENV_WORKSPACE: Final = "AGENT_WORKSPACE"
# A warm sandbox starts before its run exists: instead of the run id and token it gets the
# address to await them on, and the platform hands them over once it has claimed the sandbox.
ENV_HANDOVER_HOST: Final = "AGENT_HANDOVER_HOST"
ENV_HANDOVER_PORT: Final = "AGENT_HANDOVER_PORT"
# The handover: `POST` a JSON object with these two fields, answered 202 exactly once.
HANDOVER_PATH: Final = "/handover"
HANDOVER_RUN_ID: Final = "run_id"
HANDOVER_RUN_TOKEN: Final = "run_token"  # noqa: S105 - a field name
# How the runner confines its tools' commands: `bubblewrap` on a laptop, where the runner shares
# the machine with the platform and other runs; unset or `none` in a pod, which is the sandbox.
ENV_TOOL_SANDBOX: Final = "AGENT_TOOL_SANDBOX"
SANDBOX_BUBBLEWRAP: Final = "bubblewrap"
SANDBOX_NONE: Final = "none"

# Paths on the platform, relative to its base URL.
ASSIGNMENT_PATH: Final = "/api/runner/runs/{run_id}"
EVENTS_PATH: Final = "/api/runner/runs/{run_id}/events"
WORKSPACE_PATH: Final = "/api/runner/runs/{run_id}/workspace"
# The gateway speaks the Anthropic Messages API under this prefix: the SDK's base_url.
GATEWAY_PREFIX: Final = "/llm"

# The names an agent's `allowed_tools` may list, each with the tool it enables: the shell and
# the text editor by the names Anthropic documents, and `editor` for short. The platform checks
# an agent's tools against these when it is saved; the runner builds its tools from them.
TOOL_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "bash": "bash",
        "editor": "str_replace_based_edit_tool",
        "str_replace_based_edit_tool": "str_replace_based_edit_tool",
    }
)


class EventType(StrEnum):
    # data: {"status": "starting" | "running"}, or {"status": "retrying", "message"} when a
    # reply of Claude's was cut mid-stream and is asked for again (its text deltas so far void)
    STATUS = "status"
    TEXT_DELTA = "text_delta"  # data: {"text": "..."}
    TOOL_CALL = "tool_call"  # data: {"id", "name", "input"}
    TOOL_RESULT = "tool_result"  # data: {"id", "output", "is_error", "truncated"}
    USAGE = "usage"  # data: Usage fields, cumulative for the run
    RESULT = "result"  # terminal; data: RunResult
    ERROR = "error"  # data: {"message", "kind"}; a terminal RESULT follows
    NOTICE = "notice"  # data: {"message", "kind"}; the run goes on

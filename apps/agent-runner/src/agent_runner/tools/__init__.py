"""The tools an agent can call, chosen per agent, each confined to the run's workspace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from agent_runner.tools.bash import BashTool
from agent_runner.tools.editor import EditorTool
from agent_runner.tools.output import ToolError, ToolOutput
from agent_runner.tools.sandbox import Bubblewrap, ToolSandbox, Unconfined
from agent_runner.unicode_text import valid_unicode
from agent_runner.wire_names import TOOL_NAMES

__all__ = [
    "BashTool",
    "Bubblewrap",
    "EditorTool",
    "ToolError",
    "ToolOutput",
    "ToolSandbox",
    "Toolbox",
    "Unconfined",
]


class Toolbox:
    """The tools of one run: their definitions for the model and the dispatch of calls."""

    def __init__(self, allowed: list[str], sandbox: ToolSandbox, env: Mapping[str, str]) -> None:
        self.bash = BashTool(sandbox, env)
        available: dict[
            str, tuple[dict[str, Any], Callable[[dict[str, Any]], Awaitable[ToolOutput]]]
        ] = {
            "bash": (self.bash.definition, self.bash),
            "str_replace_based_edit_tool": (EditorTool.definition, EditorTool(sandbox, env)),
        }
        unknown = [name for name in allowed if name not in TOOL_NAMES]
        if unknown:
            raise ToolError(f"unknown tools {unknown}; known tools are {sorted(TOOL_NAMES)}")
        wanted = {TOOL_NAMES[name] for name in allowed}
        self._tools = {name: tool for name, tool in available.items() if name in wanted}

    @property
    def definitions(self) -> list[dict[str, Any]]:
        return [definition for definition, _ in self._tools.values()]

    async def call(self, name: str, tool_input: dict[str, Any]) -> ToolOutput:
        entry = self._tools.get(name)
        if entry is None:
            return ToolOutput(f"tool {name!r} is not available to this agent", is_error=True)
        try:
            output = await entry[1](tool_input)
        except ToolError as exc:
            output = ToolOutput(str(exc), is_error=True)
        return replace(output, text=valid_unicode(output.text))

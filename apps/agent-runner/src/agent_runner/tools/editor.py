"""The text editor tool (Anthropic's `str_replace_based_edit_tool`), confined to the workspace.

Paths are the ones the agent's commands see (`/workspace/...` under bubblewrap). Every path is
resolved with symlinks followed before use, and must land inside the workspace: a link pointing
out of it is refused like `../` is. Writes go through the run's sandbox like any command, so a
write can reach nothing a command could not; reads happen here, after that check, which no
sandboxed process can race: none outlives its command (`tools/sandbox.py`).
"""

from __future__ import annotations

import asyncio
import posixpath
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from agent_runner.tools.output import ToolError, ToolOutput, truncate
from agent_runner.tools.sandbox import ToolSandbox

DEFINITION: Final[dict[str, Any]] = {
    "type": "text_editor_20250728",
    "name": "str_replace_based_edit_tool",
}
_MAX_VIEW_CHARS: Final = 50_000


class EditorTool:
    name: Final = "str_replace_based_edit_tool"
    definition: Final = DEFINITION

    def __init__(self, sandbox: ToolSandbox, env: Mapping[str, str]) -> None:
        self.sandbox = sandbox
        self._root = sandbox.root.resolve()
        # A write is a command in the sandbox like any other: it gets the tools' environment,
        # never the runner's, which holds the run token.
        self._env = dict(env)

    async def __call__(self, tool_input: dict[str, Any]) -> ToolOutput:
        return await asyncio.to_thread(self.apply, tool_input)

    def apply(self, tool_input: dict[str, Any]) -> ToolOutput:
        command = tool_input.get("command")
        path = self.confine(_string(tool_input, "path"))
        if command == "view":
            return self._view(path, tool_input.get("view_range"))
        if command == "create":
            return self._create(path, _string(tool_input, "file_text", allow_empty=True))
        if command == "str_replace":
            return self._str_replace(
                path,
                _string(tool_input, "old_str", allow_empty=True),
                _optional_string(tool_input, "new_str"),
            )
        if command == "insert":
            text = tool_input.get("insert_text", tool_input.get("new_str"))
            if not isinstance(text, str):
                raise ToolError("insert needs `insert_text`")
            return self._insert(path, tool_input.get("insert_line"), text)
        raise ToolError(
            f"unknown command {command!r}; use one of view, create, str_replace, insert"
        )

    def confine(self, raw: str) -> Path:
        """The real path for `raw`, relative to the workspace; refuses anything outside it."""
        workspace = self.sandbox.workspace
        seen = posixpath.normpath(posixpath.join(workspace, raw))
        if seen != workspace and not seen.startswith(workspace.rstrip("/") + "/"):
            raise ToolError(f"{raw} is outside the workspace {workspace}; use a path inside it")
        resolved = (self._root / posixpath.relpath(seen, workspace)).resolve()
        if resolved != self._root and not resolved.is_relative_to(self._root):
            raise ToolError(f"{raw} is outside the workspace {workspace}; use a path inside it")
        return resolved

    def _write(self, path: Path, text: str) -> None:
        """Write a file inside the workspace from within the sandbox, making its directories."""
        seen = posixpath.join(self.sandbox.workspace, path.relative_to(self._root).as_posix())
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
        done = subprocess.run(
            self.sandbox.command(["sh", "-c", script, "sh", seen]),
            input=text.encode(),
            cwd=self._root,
            env=self._env,
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
            raise ToolError(f"cannot write {self._shown(path)}: {reason}")

    def _shown(self, path: Path) -> str:
        return path.relative_to(self._root).as_posix() or "."

    def _view(self, path: Path, view_range: object) -> ToolOutput:
        if path.is_dir():
            entries = sorted(
                p
                for p in path.rglob("*")
                if len(p.relative_to(path).parts) <= 2
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            listing = "\n".join(self._shown(p) + ("/" if p.is_dir() else "") for p in entries)
            text, truncated = truncate(listing, _MAX_VIEW_CHARS)
            return ToolOutput(text, truncated=truncated)
        lines = _read(path, self._shown(path)).splitlines()
        first, last = 1, len(lines)
        if view_range is not None:
            if (
                not isinstance(view_range, list)
                or len(view_range) != 2
                or not all(isinstance(n, int) for n in view_range)
            ):
                raise ToolError("view_range must be [start_line, end_line]")
            first, last = view_range[0], (len(lines) if view_range[1] == -1 else view_range[1])
            if not 1 <= first <= max(last, 1) or last > len(lines):
                raise ToolError(f"view_range {view_range} is outside the file's {len(lines)} lines")
        numbered = "\n".join(f"{n:6}\t{lines[n - 1]}" for n in range(first, last + 1))
        text, truncated = truncate(numbered, _MAX_VIEW_CHARS)
        return ToolOutput(text, truncated=truncated)

    def _create(self, path: Path, text: str) -> ToolOutput:
        if path.is_dir():
            raise ToolError(f"{self._shown(path)} is a directory")
        existed = path.exists()
        self._write(path, text)
        verb = "overwritten" if existed else "created"
        return ToolOutput(f"File {verb}: {self._shown(path)}")

    def _str_replace(self, path: Path, old: str, new: str) -> ToolOutput:
        if not old:
            raise ToolError("old_str must not be empty")
        content = _read(path, self._shown(path))
        count = content.count(old)
        if count == 0:
            raise ToolError(
                f"No match found for replacement text in {self._shown(path)}; "
                "check the exact text, whitespace included"
            )
        if count > 1:
            raise ToolError(
                f"Found {count} matches for replacement text in {self._shown(path)}; "
                "add context so that old_str matches exactly once"
            )
        self._write(path, content.replace(old, new, 1))
        return ToolOutput(f"The file {self._shown(path)} has been edited.")

    def _insert(self, path: Path, line: object, text: str) -> ToolOutput:
        lines = _read(path, self._shown(path)).splitlines(keepends=True)
        if not isinstance(line, int) or not 0 <= line <= len(lines):
            raise ToolError(f"insert_line must be between 0 and {len(lines)}")
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        added = text if text.endswith("\n") else text + "\n"
        lines.insert(line, added)
        self._write(path, "".join(lines))
        return ToolOutput(f"The file {self._shown(path)} has been edited.")


def _read(path: Path, shown: str) -> str:
    if not path.exists():
        raise ToolError(f"{shown} does not exist; create it first")
    if path.is_dir():
        raise ToolError(f"{shown} is a directory; view lists it")
    try:
        return path.read_text()
    except UnicodeDecodeError as exc:
        raise ToolError(f"{shown} is not a UTF-8 text file") from exc


def _string(tool_input: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = tool_input.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise ToolError(f"`{key}` must be a string")
    return value


def _optional_string(tool_input: dict[str, Any], key: str) -> str:
    value = tool_input.get(key, "")
    if not isinstance(value, str):
        raise ToolError(f"`{key}` must be a string")
    return value

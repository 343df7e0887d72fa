"""The text editor tool: Anthropic's commands, confined to the workspace.

Each test runs unconfined (as in a pod) and under bubblewrap (as on a laptop), where the agent
sees its workspace as /workspace.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_runner.protocol import Event, EventType
from agent_runner.run import tool_environment
from agent_runner.tools import Bubblewrap, EditorTool, Toolbox, ToolError, ToolSandbox, Unconfined

NOW = datetime.now(UTC)


def _editor(sandbox: ToolSandbox) -> EditorTool:
    """The editor as the runner builds it, with the tools' environment."""
    return EditorTool(sandbox, tool_environment(os.environ, sandbox))


@pytest.fixture(params=["unconfined", "bubblewrap"])
def editor(request: pytest.FixtureRequest, tmp_path: Path) -> EditorTool:
    (tmp_path / "ws").mkdir()
    if request.param == "bubblewrap":
        return _editor(Bubblewrap(tmp_path / "ws"))
    return _editor(Unconfined(tmp_path / "ws"))


def _seen(editor: EditorTool, tmp_path: Path, relative: str) -> str:
    """The absolute path the agent would use for a file of its workspace."""
    inside = isinstance(editor.sandbox, Bubblewrap)
    return f"/workspace/{relative}" if inside else str(tmp_path / "ws" / relative)


def test_create_then_view_shows_numbered_lines(editor: EditorTool, tmp_path: Path) -> None:
    editor.apply({"command": "create", "path": "src/a.py", "file_text": "one\ntwo\n"})
    assert (tmp_path / "ws/src/a.py").read_text() == "one\ntwo\n"
    shown = editor.apply({"command": "view", "path": "src/a.py"}).text
    assert shown == "     1\tone\n     2\ttwo"


def test_view_range_selects_lines(editor: EditorTool) -> None:
    editor.apply({"command": "create", "path": "f", "file_text": "a\nb\nc\n"})
    assert editor.apply({"command": "view", "path": "f", "view_range": [2, -1]}).text == (
        "     2\tb\n     3\tc"
    )


def test_str_replace_needs_exactly_one_match(editor: EditorTool) -> None:
    editor.apply({"command": "create", "path": "f", "file_text": "x x y"})
    with pytest.raises(ToolError, match="Found 2 matches"):
        editor.apply({"command": "str_replace", "path": "f", "old_str": "x", "new_str": "z"})
    with pytest.raises(ToolError, match="No match"):
        editor.apply({"command": "str_replace", "path": "f", "old_str": "q", "new_str": "z"})
    editor.apply({"command": "str_replace", "path": "f", "old_str": "y", "new_str": "z"})
    assert editor.apply({"command": "view", "path": "f"}).text.endswith("x x z")


def test_insert_puts_text_after_the_given_line(editor: EditorTool, tmp_path: Path) -> None:
    editor.apply({"command": "create", "path": "f", "file_text": "a\nc\n"})
    editor.apply({"command": "insert", "path": "f", "insert_line": 1, "insert_text": "b"})
    assert (tmp_path / "ws/f").read_text() == "a\nb\nc\n"


def test_paths_outside_the_workspace_are_refused(editor: EditorTool, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s")
    for path in ("../secret", str(tmp_path / "secret"), "/etc/passwd"):
        with pytest.raises(ToolError, match="outside the workspace"):
            editor.apply({"command": "view", "path": path})


def test_a_symlink_out_of_the_workspace_is_refused(editor: EditorTool, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "ws/link").symlink_to(tmp_path / "outside")
    with pytest.raises(ToolError, match="outside the workspace"):
        editor.apply({"command": "create", "path": "link/planted", "file_text": "x"})
    assert not (tmp_path / "outside/planted").exists()


def test_absolute_paths_inside_the_workspace_work(editor: EditorTool, tmp_path: Path) -> None:
    editor.apply(
        {"command": "create", "path": _seen(editor, tmp_path, "abs.txt"), "file_text": "ok"}
    )
    assert (tmp_path / "ws" / "abs.txt").read_text() == "ok"


def test_directory_view_lists_files(editor: EditorTool) -> None:
    editor.apply({"command": "create", "path": "d/x.txt", "file_text": ""})
    assert editor.apply({"command": "view", "path": "."}).text.splitlines() == ["d/", "d/x.txt"]


def test_a_write_through_a_link_to_a_file_outside_is_refused(
    editor: EditorTool, tmp_path: Path
) -> None:
    (tmp_path / "outside.txt").write_text("keep")
    (tmp_path / "ws/notes.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(ToolError, match="outside the workspace"):
        editor.apply({"command": "create", "path": "notes.txt", "file_text": "overwritten"})
    assert (tmp_path / "outside.txt").read_text() == "keep"


def test_a_write_runs_without_the_runners_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `mkdir` first on the PATH records the environment the write's commands get.
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "mkdir").write_text(f'#!/bin/sh\nenv > {tmp_path}/seen-env\nexec /bin/mkdir "$@"\n')
    (spy / "mkdir").chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy}:{os.environ['PATH']}")
    monkeypatch.setenv("AGENT_RUN_TOKEN", "run-token-of-the-runner")
    (tmp_path / "ws").mkdir()
    _editor(Unconfined(tmp_path / "ws")).apply(
        {"command": "create", "path": "f.txt", "file_text": "x"}
    )
    assert (tmp_path / "ws/f.txt").read_text() == "x"
    seen = (tmp_path / "seen-env").read_text()
    assert "PATH=" in seen
    assert "run-token-of-the-runner" not in seen


async def test_a_file_name_that_is_not_utf8_reaches_the_platform_as_valid_text(
    tmp_path: Path,
) -> None:
    # An agent can name a file with any bytes; Python reads the invalid ones as lone surrogates,
    # which neither Claude's API nor the platform's events take.
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / os.fsdecode(b"notes-\xff.txt")).write_text("x")
    sandbox = Unconfined(tmp_path / "ws")
    toolbox = Toolbox(
        ["str_replace_based_edit_tool"], sandbox, tool_environment(os.environ, sandbox)
    )
    output = await toolbox.call(
        "str_replace_based_edit_tool", {"command": "view", "path": str(tmp_path / "ws")}
    )
    assert "notes-\ufffd.txt" in output.text
    event = Event(seq=1, type=EventType.TOOL_RESULT, data={"output": output.text}, time=NOW)
    assert "notes-\ufffd.txt" in event.model_dump_json()

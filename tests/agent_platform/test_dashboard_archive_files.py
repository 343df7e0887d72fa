"""Putting a user's file into a workspace archive, the way the dashboard's upload does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from agent_platform.dashboard.archive_files import (
    InvalidWorkspacePath,
    PathIsDirectory,
    checked_path,
    with_file,
)
from agent_platform.workspaces import WorkspaceFile, list_files, read_file

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_file_in_an_empty_workspace_comes_with_its_folders() -> None:
    archive = with_file(None, "docs/notes/todo.md", b"ship it\n", NOW)

    assert list_files(archive) == [
        WorkspaceFile("docs", 0, True),
        WorkspaceFile("docs/notes", 0, True),
        WorkspaceFile("docs/notes/todo.md", 8, False),
    ]
    assert read_file(archive, "docs/notes/todo.md") == b"ship it\n"


def test_uploading_over_a_file_replaces_it_and_keeps_the_others() -> None:
    archive = with_file(None, "a.txt", b"old", NOW)
    archive = with_file(archive, "docs/b.txt", b"b", NOW)

    updated = with_file(archive, "a.txt", b"new contents", NOW)

    assert [f.path for f in list_files(updated)] == ["a.txt", "docs", "docs/b.txt"]
    assert read_file(updated, "a.txt") == b"new contents"
    assert read_file(updated, "docs/b.txt") == b"b"


def test_a_file_cannot_take_the_place_of_a_folder() -> None:
    archive = with_file(None, "docs/b.txt", b"b", NOW)

    with pytest.raises(PathIsDirectory, match="docs is a folder"):
        with_file(archive, "docs", b"x", NOW)


def test_a_file_cannot_go_inside_another_file() -> None:
    archive = with_file(None, "notes", b"n", NOW)

    with pytest.raises(InvalidWorkspacePath, match="notes is a file"):
        with_file(archive, "notes/today.md", b"x", NOW)


@pytest.mark.parametrize(
    "path",
    ["", "../secrets", "a/../../b", "/etc/passwd", "a//b", "./a", "a/", "a\\b", "a\nb", "x" * 1001],
)
def test_paths_that_leave_or_do_not_name_a_workspace_file_are_refused(path: str) -> None:
    with pytest.raises(InvalidWorkspacePath):
        checked_path(path)


def test_plain_relative_paths_are_kept_as_given() -> None:
    assert checked_path("src/app/main.py") == "src/app/main.py"
    assert checked_path("résumé final.txt") == "résumé final.txt"

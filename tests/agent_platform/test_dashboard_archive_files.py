"""Putting a user's file into a workspace archive or taking one out, as the dashboard does."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from agent_platform.dashboard.archive_files import (
    InvalidWorkspacePath,
    PathIsDirectory,
    checked_path,
    with_file,
    without,
)
from agent_platform.workspaces import WorkspaceFile, list_files, read_file

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def added(archive: bytes | None, path: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with_file(None if archive is None else io.BytesIO(archive), path, data, NOW, out)
    return out.getvalue()


def removed(archive: bytes, path: str) -> tuple[bytes, list[str]]:
    out = io.BytesIO()
    paths = without(io.BytesIO(archive), path, out)
    return out.getvalue(), paths


def with_link(archive: bytes, name: str, target: str) -> bytes:
    """The archive with a symbolic link appended, as a runner would pack one."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as tar,
    ):
        for member in source:
            tar.addfile(member, source.extractfile(member) if member.isreg() else None)
        link = tarfile.TarInfo(name)
        link.type = tarfile.SYMTYPE
        link.linkname = target
        tar.addfile(link)
    return out.getvalue()


def test_a_file_in_an_empty_workspace_comes_with_its_folders() -> None:
    archive = added(None, "docs/notes/todo.md", b"ship it\n")

    assert list_files(archive) == [
        WorkspaceFile("docs", 0, True),
        WorkspaceFile("docs/notes", 0, True),
        WorkspaceFile("docs/notes/todo.md", 8, False),
    ]
    assert read_file(archive, "docs/notes/todo.md") == b"ship it\n"


def test_uploading_over_a_file_replaces_it_and_keeps_the_others() -> None:
    archive = added(None, "a.txt", b"old")
    archive = added(archive, "docs/b.txt", b"b")

    updated = added(archive, "a.txt", b"new contents")

    assert [f.path for f in list_files(updated)] == ["a.txt", "docs", "docs/b.txt"]
    assert read_file(updated, "a.txt") == b"new contents"
    assert read_file(updated, "docs/b.txt") == b"b"


def test_a_file_cannot_take_the_place_of_a_folder() -> None:
    archive = added(None, "docs/b.txt", b"b")

    with pytest.raises(PathIsDirectory, match="docs is a folder"):
        added(archive, "docs", b"x")


def test_a_file_cannot_go_inside_another_file() -> None:
    archive = added(None, "notes", b"n")

    with pytest.raises(InvalidWorkspacePath, match="notes is a file"):
        added(archive, "notes/today.md", b"x")


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


def test_deleting_a_file_keeps_the_others() -> None:
    archive = added(added(None, "a.txt", b"a"), "docs/b.txt", b"b")

    updated, paths = removed(archive, "a.txt")

    assert paths == ["a.txt"]
    assert [f.path for f in list_files(updated)] == ["docs", "docs/b.txt"]
    assert read_file(updated, "docs/b.txt") == b"b"


def test_deleting_a_folder_takes_everything_in_it() -> None:
    archive = added(added(None, "docs/deep/b.txt", b"b"), "docsier.txt", b"kept")

    updated, paths = removed(archive, "docs")

    assert sorted(paths) == ["docs", "docs/deep", "docs/deep/b.txt"]
    assert [f.path for f in list_files(updated)] == ["docsier.txt"]


def test_a_link_out_of_the_workspace_is_listed_as_a_link_and_can_be_deleted() -> None:
    archive = with_link(added(None, "a.txt", b"a"), "db_link", "../../../platform.db")

    assert WorkspaceFile("db_link", 0, False, "../../../platform.db") in list_files(archive)
    updated, paths = removed(archive, "db_link")

    assert paths == ["db_link"]
    assert [f.path for f in list_files(updated)] == ["a.txt"]


def test_deleting_what_is_not_there_removes_nothing() -> None:
    archive = added(None, "a.txt", b"a")

    updated, paths = removed(archive, "a.tx")

    assert paths == []
    assert read_file(updated, "a.txt") == b"a"


def with_hard_links(contents: bytes, *names: str) -> bytes:
    """`a` with `contents`, then each name a hard link to it, as an older runner packed them."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("a")
        info.size = len(contents)
        tar.addfile(info, io.BytesIO(contents))
        for name in names:
            link = tarfile.TarInfo(name)
            link.type = tarfile.LNKTYPE
            link.linkname = "a"
            tar.addfile(link)
    return out.getvalue()


def test_deleting_a_file_turns_hard_links_to_it_into_the_file(tmp_path: Path) -> None:
    archive, paths = removed(with_hard_links(b"shared\n", "b", "c"), "a")

    assert paths == ["a"]
    assert read_file(archive, "b") == b"shared\n"
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        kinds = {m.name: (m.isreg(), m.linkname) for m in tar}
        assert kinds == {"b": (True, ""), "c": (False, "b")}
        # What a run does with it: every name unpacks, none names the deleted file.
        tar.extractall(tmp_path, filter="data")
    assert (tmp_path / "c").read_bytes() == b"shared\n"

"""The workspace archive: a faithful, deterministic round trip that cannot escape its root."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest
from agent_runner import workspace_archive


def test_a_workspace_round_trips_with_links_and_empty_dirs(tmp_path: Path) -> None:
    source = tmp_path / "a"
    (source / "sub/empty").mkdir(parents=True)
    (source / "sub/f.txt").write_text("hello")
    (source / "link").symlink_to("sub/f.txt")
    target = tmp_path / "b"
    target.mkdir()
    workspace_archive.unpack(workspace_archive.pack(source), target)
    assert (target / "sub/f.txt").read_text() == "hello"
    assert (target / "link").is_symlink()
    assert (target / "sub/empty").is_dir()


def test_packing_an_unchanged_tree_gives_the_same_digest(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    first = workspace_archive.digest(workspace_archive.pack(tmp_path))
    assert workspace_archive.digest(workspace_archive.pack(tmp_path)) == first
    (tmp_path / "f").write_text("y")
    assert workspace_archive.digest(workspace_archive.pack(tmp_path)) != first


def _archive_with(name: str) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb") as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return buffer.getvalue()


def test_an_archive_reaching_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(workspace_archive.ArchiveError):
        workspace_archive.unpack(_archive_with("../escaped"), root)
    assert not (tmp_path / "escaped").exists()


def test_absolute_names_land_inside_the_workspace(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    workspace_archive.unpack(_archive_with(f"{tmp_path}/absolute"), root)
    assert not (tmp_path / "absolute").exists()
    assert (root / str(tmp_path).lstrip("/") / "absolute").read_text() == "x"


def test_garbage_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(workspace_archive.ArchiveError, match="cannot be unpacked"):
        workspace_archive.unpack(b"not an archive", tmp_path)

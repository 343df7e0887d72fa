"""The workspace archive: a faithful, deterministic round trip that cannot escape its root."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from agent_runner import workspace_archive


def _packed(root: Path) -> tuple[bytes, workspace_archive.Packed]:
    """The archive of the workspace at root, and what packing it told."""
    with workspace_archive.scratch_file() as out:
        packed = workspace_archive.pack(root, out)
        return out.read(), packed


def test_a_workspace_round_trips_with_links_and_empty_dirs(tmp_path: Path) -> None:
    source = tmp_path / "a"
    (source / "sub/empty").mkdir(parents=True)
    (source / "sub/f.txt").write_text("hello")
    (source / "link").symlink_to("sub/f.txt")
    target = tmp_path / "b"
    target.mkdir()
    workspace_archive.unpack(_packed(source)[0], target)
    assert (target / "sub/f.txt").read_text() == "hello"
    assert (target / "link").is_symlink()
    assert (target / "sub/empty").is_dir()


def test_packing_an_unchanged_tree_gives_the_same_digest(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    first_archive, first = _packed(tmp_path)
    again_archive, again = _packed(tmp_path)
    assert (again_archive, again.digest) == (first_archive, first.digest)
    assert first.size == len(first_archive)
    (tmp_path / "f").write_text("y")
    assert _packed(tmp_path)[1].digest != first.digest


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


def _link_archive(name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo(name)
        link.type = tarfile.SYMTYPE
        link.linkname = target
        tar.addfile(link)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "target"),
    [("db_link", "../../../platform.db"), ("sub/up", "../../x"), ("abs", "/etc/passwd")],
)
def test_links_out_of_the_workspace_are_left_out_and_named(
    tmp_path: Path, name: str, target: str
) -> None:
    root = tmp_path / "w" / "x" / "y"
    (root / "sub").mkdir(parents=True)
    (root / "kept.txt").write_text("k")
    (root / "inside").symlink_to("sub")
    (root / "sub" / "back").symlink_to("../kept.txt")
    (root / name).symlink_to(target)

    archive, packed = _packed(root)

    assert packed.left_out == (workspace_archive.LeftOut(name, target),)
    assert str(packed.left_out[0]) == f"{name} (a link to {target}, outside the workspace)"
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        links = {m.name: m.linkname for m in tar if m.issym()}
    assert links == {"inside": "sub", "sub/back": "../kept.txt"}
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    workspace_archive.unpack(archive, unpacked)
    assert (unpacked / "sub" / "back").read_text() == "k"


def test_a_stored_link_out_of_the_workspace_is_named_without_the_machine_s_paths(
    tmp_path: Path,
) -> None:
    root = tmp_path / "sandboxes" / "run_1" / "workspace"
    root.mkdir(parents=True)
    with pytest.raises(workspace_archive.ArchiveError) as refused:
        workspace_archive.unpack(_link_archive("db_link", "../../../platform.db"), root)
    message = str(refused.value)
    assert message == (
        "the workspace cannot be unpacked: db_link is a link that leads outside the "
        "workspace (../../../platform.db); delete it from the agent's files or reset the "
        "agent's workspace, then run again"
    )
    assert str(tmp_path) not in message
    assert not (root / "db_link").exists()


def test_a_link_that_leads_out_through_another_link_is_left_out(tmp_path: Path) -> None:
    root = tmp_path / "w"
    (root / "x").mkdir(parents=True)
    (root / "s").symlink_to(".")
    # Lexically `x/../s/..` is the root; on disk `s` is the root, so this is its parent.
    (root / "x" / "t").symlink_to("../s/..")

    archive, packed = _packed(root)

    assert packed.left_out == (workspace_archive.LeftOut("x/t", "../s/.."),)
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    workspace_archive.unpack(archive, unpacked)
    assert (unpacked / "s").is_symlink()
    assert not (unpacked / "x" / "t").exists()


def test_a_hard_link_is_packed_as_a_file_of_its_own(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    (root / "a").write_text("shared")
    os.link(root / "a", root / "b")

    archive, _ = _packed(root)

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = {m.name: m for m in tar}
        assert members["b"].isreg()
        assert members["b"].size == len("shared")
        reader = tar.extractfile(members["b"])
        assert reader is not None
        assert reader.read() == b"shared"


def test_a_hard_link_to_a_missing_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("b")
        link.type = tarfile.LNKTYPE
        link.linkname = "a"
        tar.addfile(link)

    with pytest.raises(workspace_archive.ArchiveError) as refused:
        workspace_archive.unpack(buffer.getvalue(), tmp_path)

    assert str(refused.value) == (
        "the workspace cannot be unpacked: it holds a hard link to a file it does not have "
        "(linkname 'a' not found); delete the link from the agent's files or reset the "
        "agent's workspace, then run again"
    )


def test_packing_writes_the_archive_to_a_file_without_holding_it(tmp_path: Path) -> None:
    root = tmp_path / "w"
    root.mkdir()
    with (root / "noise.bin").open("wb") as noise:
        for _ in range(32):
            noise.write(os.urandom(1024 * 1024))  # random: the archive is as large

    tracemalloc.start()
    try:
        with workspace_archive.scratch_file() as out:
            packed = workspace_archive.pack(root, out)
            assert out.tell() == 0
            assert out.seek(0, io.SEEK_END) == packed.size > 32 * 1024 * 1024
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * 1024 * 1024, f"packing held {peak} bytes at its peak"
    assert list(root.iterdir()) == [root / "noise.bin"]

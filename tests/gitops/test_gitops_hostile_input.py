"""Hostile or broken input: a clear answer in bounded time and memory, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops import validation
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]


POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: p{index}, namespace: apps}}
spec:
  containers: [{{name: app, image: app:latest}}]
"""


def _aliases(levels: int) -> str:
    """A few kilobytes of YAML whose aliases expand to 10**levels nodes."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:"]
    lines.append("  a0: &a0 [x, x, x, x, x, x, x, x, x, x]")
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"  a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def _validate(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(root), "validate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_alias_bomb_is_refused_quickly(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"bomb.yaml": _aliases(9)})
    started = time.monotonic()
    code, out, _ = _validate(root, capsys, str(root / "bomb.yaml"))
    assert time.monotonic() - started < 20
    assert code == 1
    assert "YAML aliases expand to" in out


def test_a_file_that_is_not_utf8_is_a_usage_error(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({})
    (root / "latin1.yaml").write_bytes(b"kind: ConfigMap\nmetadata: {name: caf\xe9}\n")
    code, out, err = _validate(root, capsys, str(root / "latin1.yaml"))
    assert code == 2
    assert out == ""
    assert "not UTF-8" in err
    assert "Traceback" not in err


def test_a_symlink_loop_is_a_usage_error(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({})
    (root / "a.yaml").symlink_to(root / "b.yaml")
    (root / "b.yaml").symlink_to(root / "a.yaml")
    code, _, err = _validate(root, capsys, str(root / "a.yaml"))
    assert code == 2
    assert "a.yaml cannot be read" in err


def test_a_remote_base_is_refused_without_reaching_the_network(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "remote/kustomization.yaml": "resources:\n"
            "- https://github.com/example/manifests//base?ref=main\n"
        }
    )
    code, out, _ = _validate(root, capsys, str(root / "remote"))
    assert code == 1
    assert "RENDER001" in out
    assert "validation does not reach the network" in out


def test_an_unpinned_remote_base_is_refused_even_when_allowed(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {"remote/kustomization.yaml": "resources:\n- github.com/example/manifests//base\n"}
    )
    code, out, _ = _validate(root, capsys, "--allow-remote-bases", str(root / "remote"))
    assert code == 1
    assert "is not pinned" in out


def test_findings_past_the_cap_are_counted_not_listed(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(validation, "MAX_FINDINGS", 10)
    root = scratch_repo({"pods.yaml": "---\n".join(POD.format(index=i) for i in range(20))})
    code, out, _ = _validate(root, capsys, "--format", "json", str(root / "pods.yaml"))
    assert code == 1
    assert '"truncated": ' in out
    assert '"truncated": 0' not in out


@pytest.mark.parametrize("jobs", ["0", "-1", "many"])
def test_a_bad_job_count_is_a_usage_error(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str], jobs: str
) -> None:
    root = scratch_repo({})
    with pytest.raises(SystemExit) as stopped:
        main(["--root", str(root), "validate", "--jobs", jobs])
    assert stopped.value.code == 2
    assert "--jobs" in capsys.readouterr().err

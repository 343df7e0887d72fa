"""`gitops pinned`: whether main, as the remote has it, pins built images in every environment
overlay; the bootstrap creates Argo CD's Applications only once it does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main

Git = Callable[..., str]
WriteFiles = Callable[[dict[str, str]], Path]

REGISTRY = "asia-northeast3-docker.pkg.dev/example-project/agent-platform"
PLACEHOLDER = "sha256:" + "0" * 63 + "1"
BUILT = "sha256:" + "0123456789abcdef" * 4


def overlay(digest: str) -> str:
    return f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
  - name: agent-platform
    newName: {REGISTRY}/agent-platform
    digest: {digest}
"""


@pytest.fixture
def remote_and_checkout(scratch_repo: WriteFiles, git: Git, tmp_path: Path) -> tuple[Path, Path]:
    """Where the pipelines push (a bare `origin`, fed from `work`) and the operator's checkout,
    cloned before any pin."""
    work = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": overlay(PLACEHOLDER),
            "overlays/prod/kustomization.yaml": overlay(PLACEHOLDER),
        }
    )
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(work, "add", ".")
    git(work, "commit", "-qm", "The repository before its first build")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")
    checkout = tmp_path / "checkout"
    git(tmp_path, "clone", "-q", str(origin), str(checkout))
    return work, checkout


def pin(work: Path, git: Git, environment: str) -> None:
    (work / f"overlays/{environment}/kustomization.yaml").write_text(overlay(BUILT))
    git(work, "commit", "-qam", f"Pin {environment}")
    git(work, "push", "-q", "origin", "main")


def test_main_with_placeholders_says_what_pins_each_environment(
    remote_and_checkout: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, checkout = remote_and_checkout

    code = main(["--root", str(checkout), "pinned"])

    assert code == 1
    err = capsys.readouterr().err
    assert "overlays/dev at origin/main" in err
    assert "the main trigger's build pins it" in err
    assert "overlays/prod at origin/main" in err
    assert "run the promote trigger and merge the PR it opens" in err


def test_the_remotes_pins_count_not_the_checkouts(
    remote_and_checkout: tuple[Path, Path], git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    work, checkout = remote_and_checkout
    pin(work, git, "dev")

    assert main(["--root", str(checkout), "pinned"]) == 1
    out, err = capsys.readouterr()
    assert "overlays/dev at origin/main" in out
    assert BUILT in out
    assert "overlays/dev" not in err
    assert "overlays/prod" in err

    pin(work, git, "prod")

    assert main(["--root", str(checkout), "pinned"]) == 0
    out, err = capsys.readouterr()
    assert "overlays/prod at origin/main" in out
    assert not err


def test_an_unreachable_remote_is_a_tool_error(
    remote_and_checkout: tuple[Path, Path], git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    _, checkout = remote_and_checkout
    git(checkout, "remote", "set-url", "origin", str(checkout.parent / "gone.git"))

    assert main(["--root", str(checkout), "pinned"]) == 2
    assert "git fetch origin main failed" in capsys.readouterr().err

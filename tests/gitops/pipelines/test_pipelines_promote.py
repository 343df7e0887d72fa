"""The promotion pipeline's step (pipelines/scripts/promote.sh): dev's digests to prod by PR.

Against a local git remote and a local server standing in for GitHub's API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.github_api import GitHubServer, github_api

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "promote-test-token-93ad"
REPO = "agent-platform/agent-platform"
REGISTRY = "asia-northeast3-docker.pkg.dev/ai-agent-platform-469401/agent-platform"
PROD_APPLICATION = "apps/argocd/application-agent-platform-prod.yaml"


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with github_api(TOKEN) as server:
        yield server


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(ROOT), str(path)], check=True)
    return path


def _env(remote: Path) -> dict[str, str]:
    return {
        **os.environ,
        # gitops, and the pinned kustomize its diff renders with, as the tools image has them.
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), str(ROOT / "bin"), os.environ["PATH"]]
        ),
        "GITHUB_TOKEN": TOKEN,
        "HOME": str(remote.parent),
    }


def _run(*argv: str, remote: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=_env(remote), capture_output=True, text=True, timeout=120, check=False
    )


def _promote(remote: Path, github: GitHubServer) -> subprocess.CompletedProcess[str]:
    script = str(ROOT / "pipelines/scripts/promote.sh")
    return _run("bash", script, f"file://{remote}", "main", REPO, github.url, remote=remote)


def _pin_dev(remote: Path, digit: str) -> None:
    images = [f"{name}={REGISTRY}/{name}@sha256:{digit * 64}"
              for name in ("agent-platform", "agent-runner")]  # fmt: skip
    script = str(ROOT / "pipelines/scripts/pin-dev.sh")
    pinned = _run("bash", script, f"file://{remote}", "main", "0ff1ce", *images, remote=remote)
    assert pinned.returncode == 0, pinned.stderr


def _show(remote: Path, revision: str) -> str:
    done = subprocess.run(
        ["git", "show", revision], cwd=remote, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_promotion_opens_one_pr_carrying_devs_digests_to_prod(
    remote: Path, github: GitHubServer
) -> None:
    _pin_dev(remote, "e")

    first = _promote(remote, github)
    second = _promote(remote, github)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert len(github.state.pulls) == 1
    pull = github.state.pulls[0]
    assert pull["base"] == "main"
    assert pull["head"].startswith("promote/dev-")
    assert f"sha256:{'e' * 64}" in pull["body"]
    prod = _show(remote, f"{pull['head']}:overlays/prod/kustomization.yaml")
    assert f"digest: sha256:{'e' * 64}" in prod
    assert f"digest: sha256:{'e' * 64}" not in _show(
        remote, "main:overlays/prod/kustomization.yaml"
    )
    assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr
    # Prod's Application moves to the commit holding the digests, in the same PR.
    release = _rev(remote, f"{pull['head']}~1")
    assert f"targetRevision: {release}" in _show(remote, f"{pull['head']}:{PROD_APPLICATION}")
    assert f"digest: sha256:{'e' * 64}" in _show(
        remote, f"{release}:overlays/prod/kustomization.yaml"
    )
    # The body is prod's whole change, rendered, from the revision it runs now.
    assert "What changes in prod's cluster" in pull["body"]
    assert f"sha256:{'e' * 64}" in pull["body"].split("What changes in prod's cluster")[1]


def test_a_base_change_reaches_prod_only_through_the_next_promotion(
    remote: Path, github: GitHubServer, tmp_path: Path
) -> None:
    _pin_dev(remote, "a")
    _promote(remote, github)
    _merge(remote, github.state.pulls[0]["head"])
    released = _rev(remote, "main~1")
    base_change = _commit_to_main(
        remote,
        tmp_path,
        "apps/agent-platform/base/kustomization.yaml",
        "Label the API for its cost centre",
    )

    # Main moved, prod did not: it still syncs the release.
    assert f"targetRevision: {released}" in _show(remote, f"main:{PROD_APPLICATION}")
    done = _promote(remote, github)

    assert done.returncode == 0, done.stderr
    pull = github.state.pulls[-1]
    assert len(github.state.pulls) == 2
    assert base_change[:7] in pull["body"]
    assert "cost-centre" in pull["body"]
    release = _rev(remote, f"{pull['head']}~1")
    assert release == base_change
    assert f"targetRevision: {release}" in _show(remote, f"{pull['head']}:{PROD_APPLICATION}")


def _rev(remote: Path, revision: str) -> str:
    done = subprocess.run(
        ["git", "rev-parse", revision], cwd=remote, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _merge(remote: Path, branch: str) -> None:
    """Merge a PR as GitHub's merge button does when main has not moved: main becomes its head."""
    subprocess.run(["git", "fetch", "--quiet", ".", f"{branch}:main"], cwd=remote, check=True)


def _commit_to_main(remote: Path, tmp_path: Path, path: str, message: str) -> str:
    """A reviewed change to a base, merged to main; its commit."""
    work = tmp_path / "person"
    subprocess.run(
        ["git", "clone", "--quiet", "--branch", "main", str(remote), str(work)], check=True
    )
    kustomization = work / path
    kustomization.write_text(
        kustomization.read_text() + "commonAnnotations:\n  cost-centre: agents\n"
    )
    identity = ["-c", "user.name=Person", "-c", "user.email=person@example.com"]
    subprocess.run(["git", *identity, "commit", "--quiet", "-am", message], cwd=work, check=True)
    subprocess.run(["git", "push", "--quiet", "origin", "HEAD:main"], cwd=work, check=True)
    return _rev(remote, "main")


def test_nothing_is_opened_when_prod_already_runs_devs_images(
    remote: Path, github: GitHubServer
) -> None:
    _pin_dev(remote, "f")
    _promote(remote, github)
    _merge(remote, github.state.pulls[0]["head"])

    done = _promote(remote, github)

    assert done.returncode == 0, done.stderr
    assert "nothing to promote" in done.stdout
    assert len(github.state.pulls) == 1

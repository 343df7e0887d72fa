"""Fixtures for the gitops tooling: the real repository, the pinned tools, scratch repositories."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.toolchain import ToolMissing, find_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def kustomize() -> str:
    try:
        return find_tool("kustomize", REPO_ROOT)
    except ToolMissing as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def kubeconform() -> str:
    try:
        return find_tool("kubeconform", REPO_ROOT)
    except ToolMissing as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def psa() -> str:
    """The upstream Pod Security evaluator that `make tools` builds from tools/psa."""
    try:
        return find_tool("psa", REPO_ROOT)
    except ToolMissing as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def gitleaks() -> str:
    try:
        return find_tool("gitleaks", REPO_ROOT)
    except ToolMissing as error:
        pytest.fail(str(error))


GITOPS_YAML = """\
kubernetesVersion: "1.34"
digestPinnedEnvironments: [prod]
gvisorEnvironments: [prod]
"""


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


Git = Callable[..., str]
WriteFiles = Callable[[dict[str, str]], Path]


@pytest.fixture(scope="session")
def git() -> Git:
    """Run git in a directory with a fixed identity: git(root, "commit", ...)."""
    return _git


@pytest.fixture
def scratch_repo(tmp_path: Path, kustomize: str) -> WriteFiles:
    """A git repository with a gitops.yaml; call it with {relative path: content} to add files.

    Its ./bin links to the repository's pinned tools, so the CLI finds them as it would here.
    """
    root = tmp_path / "repo"
    root.mkdir()
    (root / "gitops.yaml").write_text(GITOPS_YAML)
    (root / ".gitignore").write_text("bin/\n")
    (root / "bin").mkdir()
    for tool in ("kustomize", "kubeconform", "psa", "gitleaks"):
        (root / "bin" / tool).symlink_to(find_tool(tool, REPO_ROOT))
    _git(root, "init", "-q", "-b", "main")

    def write(files: dict[str, str]) -> Path:
        for name, content in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        return root

    return write

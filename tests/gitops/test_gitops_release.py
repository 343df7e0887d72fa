"""`gitops release`: which commit an environment's Application syncs, edited as a person would,
and `gitops promote` refusing to carry digests nothing was built for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]

COMMIT = "3f0a76b6e4c1d2a9b8c7d6e5f4a3b2c1d0e9f8a7"
PROD_APPLICATION = """\
# Prod syncs a release.
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: agent-platform-prod
  namespace: argocd
spec:
  project: agent-platform
  source:
    repoURL: https://github.com/example/agent-platform.git
    # The release prod runs.
    targetRevision: main
    path: overlays/prod
  destination:
    name: prod
    namespace: agent-platform
"""
DEV_APPLICATION = PROD_APPLICATION.replace("prod", "dev")
KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
images:
  - name: agent-platform
    newName: asia-northeast3-docker.pkg.dev/example-project/agent-platform/agent-platform
    digest: {digest}
"""


@pytest.fixture
def repository(scratch_repo: WriteFiles) -> Path:
    return scratch_repo(
        {
            "apps/argocd/application-agent-platform-dev.yaml": DEV_APPLICATION,
            "apps/argocd/application-agent-platform-prod.yaml": PROD_APPLICATION,
            "overlays/dev/kustomization.yaml": KUSTOMIZATION.format(
                digest="sha256:" + "0" * 63 + "1"
            ),
            "overlays/prod/kustomization.yaml": KUSTOMIZATION.format(digest="sha256:" + "a" * 64),
        }
    )


def test_release_points_only_the_environments_application_at_the_commit(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(repository), "release", "prod", COMMIT])

    assert code == 0
    assert "prod: main -> " + COMMIT in capsys.readouterr().out
    argocd = repository / "apps/argocd"
    assert (argocd / "application-agent-platform-prod.yaml").read_text() == (
        PROD_APPLICATION.replace("targetRevision: main", f"targetRevision: {COMMIT}")
    )
    assert (argocd / "application-agent-platform-dev.yaml").read_text() == DEV_APPLICATION


@pytest.mark.parametrize("revision", ["main", "v1.2.0", COMMIT[:12], COMMIT.upper()])
def test_release_refuses_anything_but_a_full_commit_id(
    repository: Path, revision: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(repository), "release", "prod", revision])

    assert code == 2
    assert "is not a full commit id" in capsys.readouterr().err
    text = (repository / "apps/argocd/application-agent-platform-prod.yaml").read_text()
    assert text == PROD_APPLICATION


def test_release_of_an_environment_no_application_syncs_says_so(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repository / "overlays/staging").mkdir()

    assert main(["--root", str(repository), "release", "staging", COMMIT]) == 2
    assert "no Application in" in capsys.readouterr().err


def test_promote_refuses_devs_placeholder_digests(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (repository / "overlays/prod/kustomization.yaml").read_text()

    assert main(["--root", str(repository), "promote", "dev", "prod"]) == 2
    assert "still has the placeholder digest" in capsys.readouterr().err
    assert (repository / "overlays/prod/kustomization.yaml").read_text() == before

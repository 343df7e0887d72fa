"""`gitops diff --base REF`: per environment and resource, with Secret values never shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]
Git = Callable[..., str]

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: agent-platform
resources: [{resources}]
"""
CONFIG_MAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{LOG_LEVEL: {level}}}\n"
)
SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {{name: session}}\nstringData: {{key: {value}}}\n"
SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {ports: [{port: 80}]}\n"
OLD_VALUE, NEW_VALUE = "old-session-value-1", "new-session-value-2"


@pytest.fixture
def changed_repo(scratch_repo: WriteFiles, git: Git) -> Path:
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION.format(
                resources="cm.yaml, secret.yaml"
            ),
            "overlays/dev/cm.yaml": CONFIG_MAP.format(level="info"),
            "overlays/dev/secret.yaml": SECRET.format(value=OLD_VALUE),
            "overlays/prod/kustomization.yaml": KUSTOMIZATION.format(resources="cm.yaml"),
            "overlays/prod/cm.yaml": CONFIG_MAP.format(level="warning"),
            "overlays/old/kustomization.yaml": KUSTOMIZATION.format(resources="cm.yaml"),
            "overlays/old/cm.yaml": CONFIG_MAP.format(level="info"),
        }
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION.format(
                resources="secret.yaml, svc.yaml"
            ),
            "overlays/dev/secret.yaml": SECRET.format(value=NEW_VALUE),
            "overlays/dev/svc.yaml": SERVICE,
            "overlays/new/kustomization.yaml": KUSTOMIZATION.format(resources="cm.yaml"),
            "overlays/new/cm.yaml": CONFIG_MAP.format(level="debug"),
        }
    )
    git(root, "rm", "-q", "-r", "overlays/old")
    return root


def test_diff_lists_added_removed_and_changed_resources_per_environment(
    changed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(changed_repo), "diff", "--base", "HEAD"])
    out = capsys.readouterr().out
    assert code == 0
    assert "== dev: 1 added, 1 removed, 1 changed" in out
    assert "-- added: Service agent-platform/api" in out
    assert "-- removed: ConfigMap agent-platform/settings" in out
    assert "-- changed: Secret agent-platform/session" in out
    assert "== prod: no changes" in out
    assert "== new: new environment" in out
    assert "== old: removed" in out
    assert "-  LOG_LEVEL: info" in out


def test_diff_never_shows_secret_values(
    changed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--root", str(changed_repo), "diff", "--base", "HEAD"])
    out = capsys.readouterr().out
    assert OLD_VALUE not in out
    assert NEW_VALUE not in out
    assert "-  key: <redacted>" in out
    assert "+  key: '<redacted: changed>'" in out


def test_diff_as_markdown_for_the_pull_request(
    changed_repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    comment = tmp_path / "diff.md"
    code = main(
        [
            "--root",
            str(changed_repo),
            "diff",
            "--base",
            "HEAD",
            "--format",
            "markdown",
            "--output",
            str(comment),
        ]
    )
    text = comment.read_text()
    assert code == 0
    assert "#### dev" in text
    assert "| added | `Service agent-platform/api` |" in text
    assert "```diff" in text
    assert NEW_VALUE not in text


def test_diff_against_an_unknown_revision_is_a_tool_error(
    changed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(changed_repo), "diff", "--base", "no-such-branch"])
    assert code == 2
    assert "'no-such-branch' is not a commit" in capsys.readouterr().err


def test_a_head_that_does_not_render_fails_the_diff_with_kustomizes_message(
    changed_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (changed_repo / "overlays/dev/svc.yaml").unlink()
    code = main(["--root", str(changed_repo), "diff", "--base", "HEAD"])
    out = capsys.readouterr().out
    assert code == 1
    assert "== dev: head does not render:" in out
    assert "svc.yaml" in out

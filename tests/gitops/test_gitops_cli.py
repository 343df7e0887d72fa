"""The command line: missing tools, the rule catalogue, rendering and checking single files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main
from gitops.policy import CATALOGUE

WriteFiles = Callable[[dict[str, str]], Path]

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: agent-platform
resources: [cm.yaml]
"""
CONFIG_MAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {A: b}\n"


def test_a_missing_tool_names_the_make_target_that_installs_it(scratch_repo: WriteFiles) -> None:
    root = scratch_repo({"overlays/dev/kustomization.yaml": KUSTOMIZATION})
    (root / "bin" / "kustomize").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(root), "render"],
        env={"PATH": str(root / "empty")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "kustomize is not installed" in done.stderr
    assert "run `make tools`" in done.stderr


def test_rules_prints_every_rule_with_its_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for info in CATALOGUE:
        assert f"{info.id:<10} {info.severity.value}" in out
    assert main(["--root", ".", "validate", "--list-rules"]) == 0
    assert capsys.readouterr().out == out


def test_render_writes_one_file_per_environment(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION,
            "overlays/dev/cm.yaml": CONFIG_MAP,
            "overlays/prod/kustomization.yaml": KUSTOMIZATION,
            "overlays/prod/cm.yaml": CONFIG_MAP,
            "overlays/notes/README.md": "not an environment\n",
        }
    )
    out = tmp_path / "rendered"
    assert main(["--root", str(root), "render", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dev.yaml", "prod.yaml"]
    assert "namespace: agent-platform" in (out / "dev.yaml").read_text()


def test_validate_checks_a_single_file_before_it_is_committed(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: agent-platform}\n"
        "spec:\n  hostPID: true\n  containers: [{name: c, image: 'app:1'}]\n"
    )
    root = scratch_repo({"pod.yaml": pod})
    code = main(["--root", str(root), "validate", str(root / "pod.yaml")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith("pod.yaml: ")
    assert "AP002: hostPID is true" in out


def test_a_path_that_is_neither_a_kustomization_nor_a_file_is_a_usage_error(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"docs/README.md": "x\n"})
    assert main(["--root", str(root), "validate", str(root / "docs")]) == 2
    assert (
        "neither a directory with a kustomization.yaml nor a manifest file"
        in capsys.readouterr().err
    )


def test_a_manifest_that_is_not_yaml_is_a_render_finding(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"bad.yaml": "kind: [unclosed\n"})
    assert main(["--root", str(root), "validate", str(root / "bad.yaml")]) == 1
    assert "RENDER001: bad.yaml: not valid YAML" in capsys.readouterr().out


APP_PROJECT = """\
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: platform, namespace: argocd}
spec:
  sourceRepos: ["*"]
  destinations: [{name: dev, namespace: agent-platform}]
  namespaceResourceWhitelist: [{group: apps, kind: Deployment}]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: dev, namespace: argocd}
spec:
  project: platform
  source: {repoURL: https://github.com/example/platform.git, path: overlays/dev}
  destination: {name: dev}
"""


def test_an_application_is_checked_against_what_its_overlay_renders(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION,
            "overlays/dev/cm.yaml": CONFIG_MAP,
            "apps/argocd/kustomization.yaml": "resources: [argocd.yaml]\n",
            "apps/argocd/argocd.yaml": APP_PROJECT,
            "schemas/crds/argoproj.io/application_v1alpha1.json": "{}",
            "schemas/crds/argoproj.io/appproject_v1alpha1.json": "{}",
        }
    )
    config = root / "gitops.yaml"
    config.write_text(config.read_text() + "components: [apps/argocd]\n")
    main(["--root", str(root), "validate", "--format", "json"])
    out = capsys.readouterr().out
    refused = "ConfigMap agent-platform/settings from overlays/dev: kind not permitted by project"
    assert f"{refused} platform" in out


def test_a_component_listed_in_the_settings_must_exist(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"overlays/dev/kustomization.yaml": KUSTOMIZATION})
    config = root / "gitops.yaml"
    config.write_text(config.read_text() + "components: [apps/argo]\n")
    assert main(["--root", str(root), "render"]) == 2
    assert "lists component apps/argo" in capsys.readouterr().err

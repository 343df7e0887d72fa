"""This repository's own manifests, schemas and settings pass the checks Cloud Build runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitops.cli import main
from gitops.config import load_config
from gitops.schemas import check_crd_schemas
from gitops.targets import discover


def test_every_overlay_is_discovered_as_an_environment(repo_root: Path) -> None:
    config = load_config(repo_root)
    environments = [t.name for t in discover(config) if t.is_environment]
    expected = sorted(
        p.name for p in (repo_root / "overlays").iterdir() if (p / "kustomization.yaml").is_file()
    )
    assert environments == expected
    assert {"dev", "prod"} <= set(environments)
    assert "apps/argocd" in [t.name for t in discover(config)]


def test_the_repositorys_overlays_are_clean(
    repo_root: Path, kustomize: str, kubeconform: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(repo_root), "validate", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    failing = [
        f"{f['target']} {f['resource']} {f['rule']}: {f['message']}"
        for f in report["findings"]
        if not f["suppressed"] and f["severity"] == "error"
    ]
    assert failing == []
    assert code == 0


def test_every_crd_schema_in_the_repository_is_a_valid_json_schema(repo_root: Path) -> None:
    crds = repo_root / load_config(repo_root).crd_schemas
    assert list(crds.rglob("*.json")), f"{crds} holds no CRD schemas"
    assert [f"{b.path}: {b.message}" for b in check_crd_schemas(crds)] == []


def test_no_tracked_file_holds_a_secret(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(repo_root), "scan-secrets"])
    assert capsys.readouterr().out.strip() == "no secrets in tracked files"
    assert code == 0

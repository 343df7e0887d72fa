"""The names the bootstrap creates, the pipelines use and the overlays expect are the same."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops.bootstrap.plan import (
    ANTHROPIC_SECRET,
    BUILD_ACCOUNT,
    PLATFORM_ACCOUNT,
    PULL_REQUEST_ACCOUNT,
    REPOSITORY,
    CloudProject,
)

ROOT = Path(__file__).resolve().parents[3]
DELIVERY_PROJECT = "ai-agent-platform-469401"
OVERLAYS = sorted(p.parent for p in (ROOT / "overlays").glob("*/kustomization.yaml"))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _environment(overlay: Path) -> dict[str, str]:
    data: dict[str, str] = _yaml(overlay / "platform-environment.yaml")["data"]
    return data


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_the_bootstrapped_workspace_bucket_is_the_one_the_environment_names(
    overlay: Path,
) -> None:
    facts = _environment(overlay)
    target = CloudProject(facts["GCP_PROJECT"], facts["GCP_REGION"])

    assert target.bucket("workspaces") == f"gs://{facts['WORKSPACE_BUCKET']}"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.name for p in OVERLAYS])
def test_overlay_images_come_from_the_registry_the_main_pipeline_pushes_to(
    overlay: Path,
) -> None:
    registry = _yaml(ROOT / "cloudbuild.yaml")["substitutions"]["_REGISTRY"]
    expected = registry.replace("${PROJECT_ID}", DELIVERY_PROJECT)
    images = _yaml(overlay / "kustomization.yaml")["images"]

    assert expected.endswith(f"/{REPOSITORY}")
    assert {image["newName"] for image in images} == {
        f"{expected}/agent-platform",
        f"{expected}/agent-runner",
    }


def test_the_platform_reads_the_secret_and_identity_the_bootstrap_creates() -> None:
    base = ROOT / "apps/agent-platform/base"
    provider = _yaml(base / "secretproviderclass-anthropic-api-key.yaml")
    account = _yaml(base / "serviceaccount.yaml")

    assert f"/secrets/{ANTHROPIC_SECRET}/versions/" in provider["spec"]["parameters"]["secrets"]
    assert account["metadata"]["name"] == PLATFORM_ACCOUNT


def test_the_tools_image_pins_the_makefiles_tools() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "pipelines/tools/Dockerfile").read_text()

    # validate needs the Pod Security evaluator too, built from the same tools/psa.
    assert "COPY --from=psa . /src/psa" in dockerfile
    assert "--build-context psa=tools/psa" in (ROOT / "pipelines/scripts/prepare.sh").read_text()
    for tool in ("KUSTOMIZE_VERSION", "KUBECONFORM_VERSION", "GITLEAKS_VERSION"):
        pinned = re.search(rf"^{tool} := (\S+)$", makefile, re.M)
        assert pinned, f"{tool} is not set in the Makefile"
        assert f"ARG {tool}={pinned.group(1)}" in dockerfile


@pytest.mark.parametrize(
    ("trigger", "account"),
    [
        ("main.yaml", BUILD_ACCOUNT),
        ("promote.yaml", BUILD_ACCOUNT),
        # Unreviewed code: read-only on the registry, so it cannot poison main's build cache.
        ("pull-request.yaml", PULL_REQUEST_ACCOUNT),
    ],
)
def test_every_trigger_runs_as_its_bootstrapped_account_of_the_delivery_project(
    trigger: str, account: str
) -> None:
    email = CloudProject(DELIVERY_PROJECT, "asia-northeast3").account(account)

    definition = _yaml(ROOT / "pipelines/triggers" / trigger)

    assert definition["serviceAccount"] == f"projects/{DELIVERY_PROJECT}/serviceAccounts/{email}"


def test_only_mains_builds_write_the_build_cache() -> None:
    assert 'prepare.sh, "${_REGISTRY}", export]' in (ROOT / "cloudbuild.yaml").read_text()
    pull_request = (ROOT / "pipelines/pull-request.yaml").read_text()
    assert 'prepare.sh, "${_REGISTRY}", import]' in pull_request

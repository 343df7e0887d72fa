"""Every target renders with the pinned kustomize, and the overlays follow the repository's
Kustomize conventions."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from manifests.rendering import ROOT, Rendering, environment_names

# Kustomize fields that still work but are deprecated; the repository uses their successors.
DEPRECATED_FIELDS = {
    "bases",
    "commonLabels",
    "patchesJson6902",
    "patchesStrategicMerge",
    "vars",
    "imageTags",
}
KUSTOMIZATION_ROOTS = ("apps", "overlays")
PLACEHOLDERS = re.compile(r"\b(PROJECT_ID|REPO_URL)\b|: HOST$|- HOST$", re.MULTILINE)


def kustomization_files() -> list[Path]:
    return sorted(
        path for root in KUSTOMIZATION_ROOTS for path in (ROOT / root).rglob("kustomization.yaml")
    )


def test_dev_and_prod_are_discovered_as_environments() -> None:
    assert {"dev", "prod"} <= set(environment_names())


def test_each_environment_states_its_facts_in_one_config_map(environment: Rendering) -> None:
    facts = environment.environment()
    assert {"ENVIRONMENT", "GCP_PROJECT", "GCP_REGION", "HOST"} <= facts.keys()
    assert environment.target == f"overlays/{facts['ENVIRONMENT']}"
    assert re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", facts["GCP_PROJECT"])


def test_no_placeholder_survives_rendering(
    environments: dict[str, Rendering], argocd: Rendering
) -> None:
    for rendering in [*environments.values(), argocd]:
        text = yaml.safe_dump_all(rendering.objects)
        assert not PLACEHOLDERS.findall(text), rendering.target


def test_environments_differ_in_their_facts(environments: dict[str, Rendering]) -> None:
    projects = [r.environment()["GCP_PROJECT"] for r in environments.values()]
    hosts = [r.environment()["HOST"] for r in environments.values()]
    assert len(set(projects)) == len(projects)
    assert len(set(hosts)) == len(hosts)


def test_every_namespaced_object_lands_in_a_platform_namespace(environment: Rendering) -> None:
    for o in environment.objects:
        if o["kind"] == "Namespace":
            continue
        assert o["metadata"].get("namespace") in {"agent-platform", "agent-runs"}, o["kind"]


def test_no_secret_is_rendered_from_git(
    environments: dict[str, Rendering], argocd: Rendering
) -> None:
    for rendering in [*environments.values(), argocd]:
        assert rendering.of_kind("Secret") == [], rendering.target


def test_kustomizations_use_only_current_fields() -> None:
    files = kustomization_files()
    assert files
    for path in files:
        deprecated = set(yaml.safe_load(path.read_text())) & DEPRECATED_FIELDS
        assert not deprecated, f"{path.relative_to(ROOT)} uses {deprecated}"


def test_kustomization_lists_are_sorted() -> None:
    for path in kustomization_files():
        kustomization = yaml.safe_load(path.read_text())
        for field in ("resources", "components"):
            listed = kustomization.get(field, [])
            assert listed == sorted(listed), f"{path.relative_to(ROOT)}: {field} unsorted"
        patches = [p["path"] for p in kustomization.get("patches", [])]
        assert patches == sorted(patches), f"{path.relative_to(ROOT)}: patches unsorted"


def test_each_manifest_file_holds_one_object() -> None:
    for root in (
        "apps/agent-platform/base",
        "apps/agent-platform/environment",
        "apps/agent-runner/base",
        "apps/argocd",
        "overlays",
    ):
        for path in (ROOT / root).rglob("*.yaml"):
            if path.name == "kustomization.yaml":
                continue
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
            assert len(documents) == 1, path.relative_to(ROOT)

"""Argo CD's objects: one Application per discovered environment inside a scoped project, dev
automatic, prod windowed, namespaces and RBAC synced before workloads."""

from __future__ import annotations

from typing import Any

from manifests.rendering import ROOT, Rendering, environment_names

WAVE = "argocd.argoproj.io/sync-wave"


def wave(o: dict[str, Any]) -> int:
    return int(o["metadata"].get("annotations", {}).get(WAVE, "0"))


def environment_apps(argocd: Rendering) -> dict[str, dict[str, Any]]:
    return {
        app["spec"]["source"]["path"].removeprefix("overlays/"): app
        for app in argocd.of_kind("Application")
        if app["spec"]["source"]["path"].startswith("overlays/")
    }


def test_each_environment_has_one_application_syncing_its_overlay(argocd: Rendering) -> None:
    paths = [a["spec"]["source"]["path"] for a in argocd.of_kind("Application")]
    assert sorted(p for p in paths if p.startswith("overlays/")) == [
        f"overlays/{name}" for name in environment_names()
    ]
    for path in paths:
        assert (ROOT / path / "kustomization.yaml").exists(), path


def test_applications_stay_inside_their_project(argocd: Rendering) -> None:
    for app in argocd.of_kind("Application"):
        project = argocd.get("AppProject", app["spec"]["project"], "argocd")["spec"]
        assert app["spec"]["source"]["repoURL"] in project["sourceRepos"]
        destination = app["spec"]["destination"]
        cluster = destination.get("name", destination.get("server"))
        allowed = {d.get("name", d.get("server")) for d in project["destinations"]}
        assert cluster in allowed, app["metadata"]["name"]


def test_environment_destinations_cover_exactly_the_platform_namespaces(
    argocd: Rendering, environments: dict[str, Rendering]
) -> None:
    project = argocd.get("AppProject", "agent-platform", "argocd")["spec"]
    for name, app in environment_apps(argocd).items():
        cluster = app["spec"]["destination"]["name"]
        allowed = {d["namespace"] for d in project["destinations"] if d["name"] == cluster}
        rendered = {
            o["metadata"].get("namespace") or o["metadata"]["name"]
            for o in environments[name].objects
        }
        assert rendered == allowed == {"agent-platform", "agent-runs"}


def test_project_admits_every_rendered_kind_and_no_secret(
    argocd: Rendering, environments: dict[str, Rendering]
) -> None:
    project = argocd.get("AppProject", "agent-platform", "argocd")["spec"]
    admitted = {
        (k["group"], k["kind"])
        for k in project["namespaceResourceWhitelist"] + project["clusterResourceWhitelist"]
    }
    assert ("", "Secret") not in admitted
    for rendering in environments.values():
        for o in rendering.objects:
            group = o["apiVersion"].rpartition("/")[0]
            assert (group, o["kind"]) in admitted, (rendering.target, o["kind"])


def test_repository_url_is_written_once() -> None:
    url = "https://github.com/agent-platform/agent-platform.git"
    mentions = [p for p in (ROOT / "apps/argocd").rglob("*.yaml") if url in p.read_text()]
    assert [p.name for p in mentions] == ["appproject-agent-platform.yaml"]


def test_dev_syncs_automatically_with_prune_and_self_heal(argocd: Rendering) -> None:
    automated = environment_apps(argocd)["dev"]["spec"]["syncPolicy"]["automated"]
    assert automated["prune"] is True
    assert automated["selfHeal"] is True


def test_prod_syncs_only_inside_its_window_or_by_hand(argocd: Rendering) -> None:
    prod = environment_apps(argocd)["prod"]
    project = argocd.get("AppProject", prod["spec"]["project"], "argocd")["spec"]
    windows = [
        w for w in project["syncWindows"] if prod["metadata"]["name"] in w.get("applications", [])
    ]
    assert [w["kind"] for w in windows] == ["allow"]
    assert windows[0]["manualSync"] is True
    assert prod["spec"]["syncPolicy"]["automated"]["selfHeal"] is False
    dev = environment_apps(argocd)["dev"]
    assert not any(dev["metadata"]["name"] in w.get("applications", []) for w in windows)


def test_namespaces_and_rbac_sync_before_workloads(environment: Rendering) -> None:
    first = max(wave(o) for o in environment.of_kind("Namespace"))
    identity = [
        o for o in environment.objects if o["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
    ]
    assert identity
    assert all(first < wave(o) for o in identity)
    last_identity = max(wave(o) for o in identity)
    workloads = [o for o in environment.objects if o["kind"] in {"Deployment", "PodTemplate"}]
    assert all(last_identity < wave(o) for o in workloads)


def test_projects_sync_before_the_applications_that_name_them(argocd: Rendering) -> None:
    projects = max(wave(p) for p in argocd.of_kind("AppProject"))
    assert all(projects < wave(a) for a in argocd.of_kind("Application"))

"""Argo CD's access to another environment's cluster is exactly what its project syncs there."""

from __future__ import annotations

from typing import Any

from cluster.cluster_objects import _plural
from servers.control_plane import ROOT, kustomize_build

WRITE = {"create", "update", "patch", "delete"}


def rendered(path: str) -> list[dict[str, Any]]:
    return kustomize_build(ROOT / path)


def test_the_remote_role_writes_exactly_the_kinds_the_project_whitelists() -> None:
    (project,) = (
        o for o in rendered("apps/argocd") if o["metadata"]["name"] == "agent-platform"
        and o["kind"] == "AppProject"
    )  # fmt: skip
    whitelisted = {
        (entry["group"], _plural(entry["kind"]))
        for entry in project["spec"]["namespaceResourceWhitelist"]
    }
    (role,) = (o for o in rendered("apps/argocd/remote-cluster") if o["metadata"]["name"] ==
               "argocd-manager")  # fmt: skip
    writable = {
        (group, resource)
        for rule in role["rules"]
        if set(rule["verbs"]) >= WRITE
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert writable == whitelisted


def test_the_remote_namespaces_are_the_projects_destinations() -> None:
    (project,) = (
        o for o in rendered("apps/argocd") if o["metadata"]["name"] == "agent-platform"
        and o["kind"] == "AppProject"
    )  # fmt: skip
    destinations = {d["namespace"] for d in project["spec"]["destinations"]}
    namespaces = {
        o["metadata"]["name"]
        for o in rendered("apps/argocd/remote-cluster")
        if o["kind"] == "Namespace"
    }
    assert namespaces == destinations

"""An Application that breaks its project's rules fails in Argo CD with Argo CD's own message,
and the repository stops it before it is merged: `gitops validate` reports the same rule, or the
kustomization leaves no way to write it."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers.argocd import ARGOCD_NAMESPACE, ArgoCD
from servers.control_plane import BIN, kustomize_build

pytestmark = pytest.mark.cluster

STRAY = "agent-platform-stray"


def stray_application(argocd: ArgoCD) -> dict[str, Any]:
    """Dev's Application as it was first written: no destination namespace, synced by hand."""
    dev = yaml.safe_load(
        (argocd.repository.work / "apps/argocd/application-agent-platform-dev.yaml").read_text()
    )
    dev["metadata"] = {"name": STRAY, "namespace": ARGOCD_NAMESPACE}
    dev["spec"]["source"]["repoURL"] = argocd.repository.url
    del dev["spec"]["destination"]["namespace"]
    del dev["spec"]["syncPolicy"]
    return dict(dev)


def invalid_spec(application: dict[str, Any]) -> str:
    conditions = (application.get("status") or {}).get("conditions") or []
    return next((c["message"] for c in conditions if c["type"] == "InvalidSpecError"), "")


def validate(argocd: ArgoCD) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(argocd.repository.work),
         "validate", "--format", "json"],
        capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def refused(argocd: ArgoCD, application: dict[str, Any]) -> str:
    """What Argo CD says of `application`: its InvalidSpecError."""
    argocd.plane.kubectl("apply", "-f", "-", stdin=json.dumps(application))
    try:
        seen = argocd.wait_until(
            STRAY, lambda app: bool(invalid_spec(app)), what="InvalidSpecError"
        )
    finally:
        argocd.plane.kubectl("delete", "application", STRAY, "-n", ARGOCD_NAMESPACE)
    return invalid_spec(seen)


@contextlib.contextmanager
def proposed(argocd: ArgoCD, application: dict[str, Any]) -> Iterator[Path]:
    """`application` added to apps/argocd in the working clone, as a PR would; yields the
    clone."""
    work = argocd.repository.work
    (work / "apps/argocd/application-stray.yaml").write_text(yaml.safe_dump(application))
    kustomization = work / "apps/argocd/kustomization.yaml"
    original = kustomization.read_text()
    kustomization.write_text(
        original.replace("resources:\n", "resources:\n  - application-stray.yaml\n", 1)
    )
    try:
        yield work
    finally:
        kustomization.write_text(original)
        (work / "apps/argocd/application-stray.yaml").unlink()


def test_a_destination_without_namespace_fails_in_argocd_and_in_validate(
    bootstrapped: ArgoCD,
) -> None:
    application = stray_application(bootstrapped)

    argocd_says = refused(bootstrapped, application)
    with proposed(bootstrapped, application):
        report = validate(bootstrapped)

    assert "do not match any of the allowed destinations in project 'agent-platform'" in argocd_says
    assert "namespace ''" in argocd_says
    findings = [f for f in report["findings"] if f["rule"] == "ARGO003" and STRAY in f["resource"]]
    assert findings, report["findings"]
    assert "namespace '' do not match any of the allowed destinations" in findings[0]["message"]


def test_a_source_outside_the_projects_repositories_fails_in_argocd_and_cannot_be_merged(
    bootstrapped: ArgoCD,
) -> None:
    application = stray_application(bootstrapped)
    application["spec"]["destination"]["namespace"] = "agent-platform"
    fork = "https://github.com/someone-else/agent-platform.git"
    application["spec"]["source"]["repoURL"] = fork

    argocd_says = refused(bootstrapped, application)
    # In git the kustomization writes every Application's repoURL from the project's
    # sourceRepos, so ARGO002 has nothing to find: the fork never reaches Argo CD.
    with proposed(bootstrapped, application) as work:
        rendered = kustomize_build(work / "apps/argocd")

    assert f"application repo {fork} is not permitted in project 'agent-platform'" in argocd_says
    (stray,) = (o for o in rendered if o["metadata"]["name"] == STRAY)
    assert stray["spec"]["source"]["repoURL"] == bootstrapped.repository.url

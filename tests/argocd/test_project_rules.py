"""An Application that breaks its project's rules fails in Argo CD with Argo CD's own message,
and `gitops validate` reports the same rule before it is merged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml
from servers.argocd import ARGOCD_NAMESPACE, ArgoCD
from servers.control_plane import BIN

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


def test_a_destination_without_namespace_fails_in_argocd_and_in_validate(
    bootstrapped: ArgoCD,
) -> None:
    application = stray_application(bootstrapped)
    bootstrapped.plane.kubectl("apply", "-f", "-", stdin=json.dumps(application))
    try:
        seen = bootstrapped.wait_until(
            STRAY, lambda app: bool(invalid_spec(app)), what="InvalidSpecError"
        )
    finally:
        bootstrapped.plane.kubectl("delete", "application", STRAY, "-n", ARGOCD_NAMESPACE)
    argocd_says = invalid_spec(seen)
    assert "do not match any of the allowed destinations in project 'agent-platform'" in argocd_says
    assert "namespace ''" in argocd_says

    work = bootstrapped.repository.work
    (work / "apps/argocd/application-stray.yaml").write_text(yaml.safe_dump(application))
    kustomization = work / "apps/argocd/kustomization.yaml"
    original = kustomization.read_text()
    kustomization.write_text(
        original.replace("resources:\n", "resources:\n  - application-stray.yaml\n", 1)
    )
    try:
        report = validate(bootstrapped)
    finally:
        kustomization.write_text(original)
        (work / "apps/argocd/application-stray.yaml").unlink()
    findings = [f for f in report["findings"] if f["rule"] == "ARGO003" and STRAY in f["resource"]]
    assert findings, report["findings"]
    assert "namespace '' do not match any of the allowed destinations" in findings[0]["message"]

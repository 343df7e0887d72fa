"""Argo CD reads a private repository with the credential the bootstrap writes: the repository
Secret of its read-only GitHub App, whose key it trades for an installation token.

The repository is served as GitHub serves a private one (tests/servers/git_http.py) and the
token comes from the GitHub API stand-in; the Secret is the bootstrap's document, with GitHub's
addresses replaced by theirs (`githubAppEnterpriseBaseUrl` is how Argo CD is pointed at another
GitHub API).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from argocd.conftest import bootstrap_steps
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from servers.argocd import ARGOCD_NAMESPACE, ArgoCD
from servers.git_http import git_http
from servers.github_api import App, GitHubServer, github_api

pytestmark = pytest.mark.cluster

APP_ID = "314159"
INSTALLATION_ID = "2718281"
PROBE = "repository-credential-probe"


def comparison_error(application: dict[str, Any]) -> str:
    conditions = (application.get("status") or {}).get("conditions") or []
    return next((c["message"] for c in conditions if c["type"] == "ComparisonError"), "")


def compared(application: dict[str, Any]) -> bool:
    """Argo CD rendered the source and compared it with the cluster, whatever it found."""
    status = application.get("status") or {}
    sync = (status.get("sync") or {}).get("status")
    return sync in ("Synced", "OutOfSync") and not comparison_error(application)


def bootstrap_credential(key: bytes) -> dict[str, Any]:
    """The repository Secret as the bootstrap writes it, the key read from Secret Manager."""
    (step,) = (s for s in bootstrap_steps() if s.key.startswith("argocd-repository/"))
    (command,) = step.apply
    assert command.document is not None
    assert command.document_secret is not None
    filled = command.document.replace(
        command.document_secret.placeholder, base64.b64encode(key).decode()
    )
    document: dict[str, Any] = yaml.safe_load(filled)
    return document


@pytest.fixture
def github(argocd: ArgoCD) -> Iterator[tuple[GitHubServer, str, bytes]]:
    """GitHub's API and the repository as a private one: the App's key, and the URL of the
    repository Argo CD's session already serves by file."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    token = "ghs_" + secrets.token_hex(18)
    app = App(APP_ID, INSTALLATION_ID, key.public_key())
    with github_api(token, app=app) as api, git_http(argocd.work_dir, token) as served:
        yield api, f"{served}/origin.git", pem


def probe(argocd: ArgoCD, url: str) -> list[dict[str, Any]]:
    """A project allowing only the private URL, and an Application reading dev's overlay from
    it without ever syncing."""
    project = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": PROBE, "namespace": ARGOCD_NAMESPACE},
        "spec": {
            "sourceRepos": [url],
            "destinations": [{"name": "prod", "namespace": "agent-platform"}],
            "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        },
    }
    application = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": PROBE, "namespace": ARGOCD_NAMESPACE},
        "spec": {
            "project": PROBE,
            "source": {"repoURL": url, "targetRevision": "main", "path": "overlays/dev"},
            "destination": {"name": "prod", "namespace": "agent-platform"},
        },
    }
    return [project, application]


def test_argocd_reads_the_private_repository_only_with_the_bootstraps_credential(
    argocd: ArgoCD, github: tuple[GitHubServer, str, bytes]
) -> None:
    api, url, pem = github
    plane = argocd.plane
    objects = probe(argocd, url)
    credential = bootstrap_credential(pem)
    credential["stringData"] |= {
        "url": url,
        "githubAppID": APP_ID,
        "githubAppInstallationID": INSTALLATION_ID,
        "githubAppEnterpriseBaseUrl": api.url,
    }
    plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(objects))
    try:
        refused = argocd.wait_until(
            PROBE, lambda app: bool(comparison_error(app)), what="a ComparisonError"
        )
        assert "authentication required" in comparison_error(refused)
        assert not api.state.issued

        plane.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(credential))
        argocd.refresh(PROBE)
        argocd.wait_until(PROBE, compared, what="compared with the cluster", timeout=180)
    finally:
        plane.kubectl("delete", "application", PROBE, "-n", ARGOCD_NAMESPACE, "--wait=true")
        plane.kubectl("delete", "appproject", PROBE, "-n", ARGOCD_NAMESPACE)
        plane.kubectl("delete", "secret", credential["metadata"]["name"], "-n", ARGOCD_NAMESPACE)
    # Argo CD authenticated as the App, with a JWT signed by the key from the Secret.
    assert api.state.issued
    assert credential["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "repository"}

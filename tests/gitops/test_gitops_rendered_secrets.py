"""Credentials in rendered objects, ConfigMaps included, are found by gitleaks (SEC003)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]
# The repository's own rules beside gitleaks' maintained ones, as a user's repository keeps them.
RULES = (Path(__file__).parents[2] / ".gitleaks.toml").read_text()

# Built at run time so that no scanner mistakes this test for a leak.
GITHUB_TOKEN = "ghp_" + "x7Kq2LmN9pR4sT6vW8yZ1aB3cD5eF0gH2jK4"
AWS_KEY = "AKIA" + "QWERTY7ZXCVB2NML"
SLACK_WEBHOOK = (
    "https://hooks.slack.com/services/" + "T0A1B2C3D/B0A1B2C3D/" + "aB3dE5fG7hJ9kL1mN3pQ5rS7"
)
DATABASE_URL = "postgres://app:" + "Zq8#vLp2Wm" + "@db.internal:5432/app"


def _configmap(data: dict[str, str]) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": "apps"},
            "data": data,
        }
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("POSTGRES_PASSWORD", "s3cr3t-Pg-9xQ"),
        ("GITHUB_TOKEN", GITHUB_TOKEN),
        ("AWS_ACCESS_KEY_ID", AWS_KEY),
        ("SLACK_URL", SLACK_WEBHOOK),
        ("DATABASE_URL", DATABASE_URL),
    ],
)
def test_a_credential_in_a_rendered_configmap_is_a_finding(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    root = scratch_repo(
        {
            ".gitleaks.toml": RULES,
            "app/configmap.yaml": _configmap({key: value}),
            "app/kustomization.yaml": "resources: [configmap.yaml]\n",
        }
    )
    code = main(["--root", str(root), "validate", "--format", "json", str(root / "app")])
    out = capsys.readouterr().out
    report = json.loads(out)
    leaks = [f for f in report["findings"] if f["rule"] == "SEC003"]
    assert [f["resource"] for f in leaks] == ["ConfigMap apps/settings"]
    assert leaks[0]["file"] == "app/configmap.yaml"
    assert value not in out  # gitleaks redacts; the report never repeats the secret
    assert code == 1


def test_a_placeholder_password_is_not_a_finding(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {
            ".gitleaks.toml": RULES,
            "app/configmap.yaml": _configmap({"POSTGRES_PASSWORD": "changeme", "LOG": "debug"}),
            "app/kustomization.yaml": "resources: [configmap.yaml]\n",
        }
    )
    main(["--root", str(root), "validate", "--format", "json", str(root / "app")])
    report = json.loads(capsys.readouterr().out)
    assert not [f for f in report["findings"] if f["rule"] == "SEC003"]

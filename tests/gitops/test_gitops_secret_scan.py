"""`gitops scan-secrets`: real-looking credentials in tracked files are found, placeholders not.

Credential-shaped strings are assembled at run time so that this file itself stays clean.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main
from gitops.secret_scan import scan_text

WriteFiles = Callable[[dict[str, str]], Path]
Git = Callable[..., str]

_RANDOM = random.Random(20260101)
_ALPHABET = string.ascii_letters + string.digits


def _random(length: int) -> str:
    return "".join(_RANDOM.choice(_ALPHABET) for _ in range(length))


ANTHROPIC_KEY = "sk-" + "ant-api03-" + _random(93) + "AA"
GOOGLE_KEY = "AI" + "za" + _random(35)
PRIVATE_KEY = (
    "-----BEGIN "
    + "PRIVATE KEY-----\n"
    + "\n".join(_random(64) for _ in range(4))
    + "\n-----END "
    + "PRIVATE KEY-----\n"
)


def _kinds(path: str, text: str) -> list[str]:
    return [leak.kind for leak in scan_text(path, text)]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"ANTHROPIC_API_KEY={ANTHROPIC_KEY}\n", "Anthropic API key"),
        (f'maps_key = "{GOOGLE_KEY}"\n', "Google API key"),
        (PRIVATE_KEY, "private key"),
    ],
)
def test_a_real_looking_credential_is_found(text: str, kind: str) -> None:
    assert _kinds("notes.txt", text) == [kind]


def test_the_excerpt_does_not_repeat_the_credential() -> None:
    [leak] = scan_text("notes.txt", f"\n\nkey: {ANTHROPIC_KEY}\n")
    assert leak.line == 3
    assert ANTHROPIC_KEY not in leak.excerpt


def test_a_kubernetes_secret_with_data_is_found() -> None:
    value = base64.b64encode(_random(24).encode()).decode()
    manifest = f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {value}\n"
    [leak] = scan_text("overlays/dev/secret.yaml", manifest)
    assert (leak.kind, leak.line, leak.excerpt) == (
        "Kubernetes Secret with data",
        6,
        "Secret data.password",
    )


@pytest.mark.parametrize(
    "text",
    [
        "ANTHROPIC_API_KEY=sk-ant-FAKE-KEY-FOR-TESTS-0000000000000000\n",
        "key: sk-ant-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {token: example-token}\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ntype: Opaque\n",
    ],
)
def test_an_obvious_placeholder_is_not_a_leak(text: str) -> None:
    assert _kinds("docs/example.yaml", text) == []


def test_scan_covers_tracked_files_only_and_exits_one_on_a_leak(
    scratch_repo: WriteFiles, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo(
        {"config/app.env": f"GOOGLE_API_KEY={GOOGLE_KEY}\n", "scratch.txt": ANTHROPIC_KEY}
    )
    git(root, "add", "config/app.env", "gitops.yaml")
    code = main(["--root", str(root), "scan-secrets"])
    out = capsys.readouterr().out
    assert code == 1
    assert "config/app.env:1: Google API key" in out
    assert "scratch.txt" not in out
    assert GOOGLE_KEY not in out


def test_fixtures_under_tests_fixtures_are_exempt(
    scratch_repo: WriteFiles, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"tests/fixtures/keys.txt": PRIVATE_KEY})
    git(root, "add", "-A")
    assert main(["--root", str(root), "scan-secrets"]) == 0


GITHUB_TOKEN = "ghp_" + _random(36)
SLACK_WEBHOOK = (
    "https://hooks.slack.com/services/T" + _random(8) + "/B" + _random(8) + "/" + _random(24)
)


@pytest.mark.parametrize("text", [f"token: {GITHUB_TOKEN}\n", f"url: {SLACK_WEBHOOK}\n"])
def test_gitleaks_rules_find_what_the_built_in_patterns_do_not(
    scratch_repo: WriteFiles, git: Git, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    root = scratch_repo({"config/notify.yaml": text})
    git(root, "add", "config/notify.yaml", "gitops.yaml")
    code = main(["--root", str(root), "scan-secrets"])
    out = capsys.readouterr().out
    assert code == 1
    assert "config/notify.yaml:1:" in out
    assert "(gitleaks " in out
    assert GITHUB_TOKEN not in out
    assert SLACK_WEBHOOK not in out

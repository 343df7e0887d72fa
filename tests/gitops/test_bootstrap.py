"""`gitops bootstrap`: the plan for a fresh and a half-bootstrapped project, and its secrets.

Plans are compared with expected plans in bootstrap_fixtures/. The observed state is data; the
end-to-end runs use bootstrap_fixtures/bin, a stand-in for gcloud and kubectl at the boundary
with Google Cloud, which records every call.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitops.bootstrap import Target, Trigger, plan, render, steps
from gitops.bootstrap_shell import BootstrapError, read_secrets, triggers_in

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("bootstrap_fixtures")
SEED = Target("ai-agent-platform-469401", "asia-northeast3")
TRIGGERS = [
    Trigger("main", "pipelines/triggers/main.yaml"),
    Trigger("promote", "pipelines/triggers/promote.yaml"),
    Trigger("pull-request", "pipelines/triggers/pull-request.yaml"),
]
# What the first, hand-made deployment left behind: APIs, the cluster, Firestore, the API's
# service account and an Anthropic secret that was created without a usable version.
HALF_BOOTSTRAPPED = {
    *(f"api/{api}" for api in ("compute.googleapis.com", "container.googleapis.com")),
    "api/firestore.googleapis.com",
    "api/secretmanager.googleapis.com",
    "api/artifactregistry.googleapis.com",
    "cluster/ai-agent-cluster",
    "firestore/(default)",
    "service-account/agent-platform",
    "secret/anthropic-api-key",
    "binding/the project/roles/datastore.user/"
    "serviceAccount:agent-platform@ai-agent-platform-469401.iam.gserviceaccount.com",
}
ANTHROPIC_VALUE = "anthropic-value-7f3a9c"
GITHUB_VALUE = "github-value-51be02"


def _expected(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_a_fresh_project_gets_every_step_created() -> None:
    planned = plan(steps(SEED, TRIGGERS), present=set())

    assert render(SEED, planned) == _expected("fresh-project.txt")


def test_a_half_bootstrapped_project_only_gets_what_is_missing() -> None:
    all_steps = steps(SEED, TRIGGERS)
    assert {step.key for step in all_steps} >= HALF_BOOTSTRAPPED

    planned = plan(all_steps, present=HALF_BOOTSTRAPPED)

    assert render(SEED, planned) == _expected("half-bootstrapped.txt")


def test_a_further_environment_gets_no_registry_pipelines_or_argocd() -> None:
    keys = {step.key for step in steps(SEED, TRIGGERS, delivery=False)}

    assert "cluster/ai-agent-cluster" in keys
    assert "secret/anthropic-api-key" in keys
    assert not {k for k in keys if k.startswith(("trigger/", "argocd", "artifact-registry/"))}


def test_the_plan_reads_the_triggers_the_repository_defines() -> None:
    assert triggers_in(ROOT) == TRIGGERS


@pytest.mark.parametrize(
    ("project", "region"),
    [("Bad_Project", "asia-northeast3"), ("ai-agent-platform-469401", "asia northeast3")],
)
def test_an_invalid_project_or_region_is_refused(project: str, region: str) -> None:
    with pytest.raises(ValueError, match=r"project id|region"):
        Target(project, region)


def test_secret_values_come_from_their_files_without_trailing_newline(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(ANTHROPIC_VALUE + "\n")

    values = read_secrets(
        {"anthropic-api-key", "github-bot-token"},
        {"anthropic-api-key": str(key_file), "github-bot-token": "-"},
        io.BytesIO(GITHUB_VALUE.encode() + b"\n"),
    )

    assert values == {
        "anthropic-api-key": ANTHROPIC_VALUE.encode(),
        "github-bot-token": GITHUB_VALUE.encode(),
    }


def test_two_secrets_cannot_both_come_from_stdin() -> None:
    both = {"anthropic-api-key": "-", "github-bot-token": "-"}

    with pytest.raises(BootstrapError, match="only one secret"):
        read_secrets(set(both), both, io.BytesIO(b"x"))


def test_a_missing_secret_value_names_the_option_to_pass() -> None:
    with pytest.raises(BootstrapError, match="--github-token-file"):
        read_secrets({"github-bot-token"}, {}, io.BytesIO(b""))


# --- end to end, against the stand-in for gcloud and kubectl ------------------------------------


def _bootstrap(
    tmp_path: Path,
    present: set[str],
    *args: str,
    stdin: bytes = b"",
    fail: str = "",
) -> tuple[subprocess.CompletedProcess[bytes], list[dict[str, Any]]]:
    """Run `gitops bootstrap` with the resources of the `present` step keys existing."""
    checks = [step.check for step in steps(SEED, triggers_in(ROOT)) if step.key in present]
    (tmp_path / "present").write_text("\n".join(shlex.join(c) for c in checks) + "\n")
    log = tmp_path / "calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLOUD_LOG": str(log),
        "FAKE_CLOUD_PRESENT": str(tmp_path / "present"),
        "FAKE_CLOUD_FAIL": fail,
    }
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(ROOT), "bootstrap",
         "--project", SEED.project, "--region", SEED.region, *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )  # fmt: skip
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def _applied(calls: list[dict[str, Any]]) -> list[list[str]]:
    checks = {"describe", "list", "get-iam-policy", "get", "config"}
    return [call["argv"] for call in calls if not checks & set(call["argv"])]


def test_the_dry_run_observes_the_project_and_prints_the_plan(tmp_path: Path) -> None:
    done, calls = _bootstrap(tmp_path, HALF_BOOTSTRAPPED)

    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(_expected("half-bootstrapped.txt"))
    assert _applied(calls) == []


def test_apply_creates_only_what_is_missing_and_feeds_secrets_on_stdin(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(GITHUB_VALUE)

    done, calls = _bootstrap(
        tmp_path,
        HALF_BOOTSTRAPPED,
        "--apply",
        "--anthropic-api-key-file",
        "-",
        "--github-token-file",
        str(token_file),
        stdin=ANTHROPIC_VALUE.encode() + b"\n",
    )

    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    applied = _applied(calls)
    assert ["gcloud", "container", "clusters", "create-auto"] not in [a[:4] for a in applied]
    assert ["gcloud", "secrets", "create", "github-bot-token"] in [a[:4] for a in applied]
    stored = {
        c["argv"][4]: c["stdin"] for c in calls if c["argv"][1:4] == ["secrets", "versions", "add"]
    }
    assert stored == {"anthropic-api-key": ANTHROPIC_VALUE, "github-bot-token": GITHUB_VALUE}
    for secret in (ANTHROPIC_VALUE, GITHUB_VALUE):
        assert secret not in output
        assert all(secret not in " ".join(call["argv"]) for call in calls)
    assert "Bootstrap complete." in output


def test_apply_refuses_to_start_without_a_missing_secrets_value(tmp_path: Path) -> None:
    done, calls = _bootstrap(tmp_path, HALF_BOOTSTRAPPED, "--apply")

    assert done.returncode == 2
    assert "--anthropic-api-key-file" in done.stdout.decode()
    assert _applied(calls) == []


def test_apply_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    everything_but_argocd = {
        step.key for step in steps(SEED, triggers_in(ROOT)) if not step.key.startswith("argocd")
    }

    done, calls = _bootstrap(tmp_path, everything_but_argocd, "--apply", fail="--server-side")

    assert done.returncode == 1
    assert "run again" in done.stdout.decode()
    assert [a[-1] for a in _applied(calls)] == [
        "https://raw.githubusercontent.com/argoproj/argo-cd/v3.2.0/manifests/install.yaml"
    ]


def test_without_the_cloud_sdk_the_bootstrap_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(ROOT), "bootstrap",
         "--project", SEED.project, "--region", SEED.region],
        env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert "install the Google Cloud SDK" in done.stdout

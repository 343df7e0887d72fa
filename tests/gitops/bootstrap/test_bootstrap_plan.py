"""`gitops bootstrap`: the plan for a fresh and a half-bootstrapped project, and its secrets.

Plans are compared with expected plans in fixtures/. The observed state is data; the
end-to-end runs use fixtures/bin, a stand-in for gcloud and kubectl at the boundary
with Google Cloud, which records every call.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops.bootstrap.plan import (
    CloudNameError,
    CloudProject,
    Environment,
    Lookup,
    RepositoryAccess,
    Step,
    Trigger,
    iap_member,
    plan,
    render,
    steps,
)
from gitops.bootstrap.shell import (
    FIRESTORE_INDEXES,
    REPOSITORY_PROJECT,
    BootstrapError,
    environment_of,
    environments_in,
    firestore_indexes_in,
    read_secrets,
    repository_in,
    triggers_in,
)
from gitops.firestore_indexes import IndexFileError, parse_index_file

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = Path(__file__).with_name("fixtures")
SEED = CloudProject("ai-agent-platform-469401", "asia-northeast3")
PROD = Environment("prod", SEED)
DEV = Environment("dev", CloudProject("ai-agent-platform-dev-469401", "asia-northeast3"))
ENVIRONMENTS = [DEV, PROD]
TRIGGERS = [
    Trigger("main", "pipelines/triggers/main.yaml"),
    Trigger("promote", "pipelines/triggers/promote.yaml"),
    Trigger("pull-request", "pipelines/triggers/pull-request.yaml"),
]
IAP_MEMBER = "group:agent-platform-users@example.com"
REPOSITORY_URL = "https://github.com/agent-platform/agent-platform.git"
# Argo CD's GitHub App, as an operator writes it into the AppProject's annotations.
REPOSITORY = RepositoryAccess(REPOSITORY_URL, "314159", "2718281")
INDEXES = firestore_indexes_in(ROOT)
# What the first, hand-made deployment left behind: APIs, the cluster (without the Secret
# Manager add-on), Firestore, the API's service account and an Anthropic secret that was created
# without a usable version.
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
# What gcloud answers for the values the plan looks up.
LOOKED_UP = {
    "<prod-project-number>": "111111111111",
    "<dev-project-number>": "222222222222",
    "<dev-endpoint>": "203.0.113.7",
    "<dev-ca>": "LS0tLS1CRUdJTi1DQS0tLS0t",
}
ANTHROPIC_VALUE = "anthropic-value-7f3a9c"
GITHUB_VALUE = "github-value-51be02"
ARGOCD_KEY_VALUE = "argocd-key-value-c90d17"
# What Secret Manager answers for Argo CD's key once it holds it.
ARGOCD_KEY_READ = (
    f"gcloud secrets versions access latest --secret argocd-github-app-key --project {SEED.project}"
)


def _expected(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def _prod_steps() -> list[Step]:
    return steps(
        PROD,
        TRIGGERS,
        indexes=INDEXES,
        environments=ENVIRONMENTS,
        iap_members=[IAP_MEMBER],
        repository=REPOSITORY,
    )


def test_a_fresh_project_gets_every_step_created() -> None:
    planned = plan(_prod_steps(), present=set())

    assert render(SEED, planned) == _expected("fresh-project.txt")


def test_a_half_bootstrapped_project_only_gets_what_is_missing() -> None:
    all_steps = _prod_steps()
    assert {step.key for step in all_steps} >= HALF_BOOTSTRAPPED

    planned = plan(all_steps, present=HALF_BOOTSTRAPPED)

    assert render(SEED, planned) == _expected("half-bootstrapped.txt")


def test_a_further_environment_gets_no_registry_pipelines_argocd_or_edge_protection() -> None:
    keys = {
        step.key
        for step in steps(DEV, TRIGGERS, indexes=INDEXES, environments=ENVIRONMENTS, delivery=False)
    }

    assert {
        "cluster/ai-agent-cluster",
        "secret/anthropic-api-key",
        "address/agent-platform",
    } <= keys
    assert "secret-manager-add-on/ai-agent-cluster" in keys
    assert not {
        k
        for k in keys
        if k.startswith(("trigger/", "argocd", "artifact-registry/", "security-policy"))
        or k == "api/iap.googleapis.com"
    }


def test_every_step_can_be_checked_and_created_without_a_value_on_its_command_line() -> None:
    for step in _prod_steps():
        assert step.check, step.key
        assert step.apply, step.key
        for command in step.apply:
            assert command.argv[0] in ("gcloud", "kubectl", "gitops"), step.key
            # A secret is named and fed on stdin, never written into the command.
            assert command.stdin_secret is None or command.argv[-2:] == ("--data-file", "-")


def _declared_indexes() -> dict[str, Any]:
    """The platform's index file as JSON, read here apart from the bootstrap's own reading."""
    declared: dict[str, Any] = json.loads((ROOT / FIRESTORE_INDEXES).read_text(encoding="utf-8"))
    return declared


@pytest.mark.parametrize("home", [PROD, DEV], ids=lambda e: e.name)
def test_every_index_and_ttl_field_the_platform_declares_has_a_step_creating_it(
    home: Environment,
) -> None:
    planned = steps(
        home,
        TRIGGERS,
        indexes=INDEXES,
        environments=ENVIRONMENTS,
        delivery=home == PROD,
        repository=REPOSITORY,
    )
    commands = [list(command.argv) for step in planned for command in step.apply]
    declared = _declared_indexes()

    created = [
        (
            argv[argv.index("--collection-group") + 1],
            argv[argv.index("--query-scope") + 1],
            [argv[n + 1] for n, word in enumerate(argv) if word == "--field-config"],
        )
        for argv in commands
        if argv[1:5] == ["firestore", "indexes", "composite", "create"]
    ]
    assert created == [
        (
            index["collectionGroup"],
            index["queryScope"].lower().replace("_", "-"),
            [f"field-path={f['fieldPath']},order={f['order'].lower()}" for f in index["fields"]],
        )
        for index in declared["indexes"]
    ]
    ttl_policies = [
        (argv[5], argv[argv.index("--collection-group") + 1], argv[-1])
        for argv in commands
        if argv[1:5] == ["firestore", "fields", "ttls", "update"]
    ]
    assert ttl_policies == [
        (o["fieldPath"], o["collectionGroup"], "--enable-ttl")
        for o in declared["fieldOverrides"]
        if o.get("ttl")
    ]
    assert ttl_policies, "the platform declares a TTL field for events"
    assert all(home.target.project in argv for argv in commands if "firestore" in argv)


def test_each_index_is_checked_by_a_filter_of_its_own() -> None:
    checks = [s.check for s in _prod_steps() if s.key.startswith("firestore-index/")]

    assert len(checks) == len(_declared_indexes()["indexes"])
    assert len(set(checks)) == len(checks)


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"fieldPath": "tags", "arrayConfig": "CONTAINS"}, "create an array or vector index"),
        ({"fieldPath": "owner id", "order": "ASCENDING"}, "plain names"),
    ],
)
def test_an_index_the_bootstrap_cannot_create_as_written_is_refused(
    field: dict[str, str], message: str
) -> None:
    document = {
        "indexes": [{"collectionGroup": "runs", "queryScope": "COLLECTION", "fields": [field]}]
    }

    with pytest.raises(IndexFileError, match=f"index 1, field 1: .*{message}"):
        parse_index_file(document)


def test_an_unreadable_index_file_stops_the_bootstrap_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(BootstrapError, match=FIRESTORE_INDEXES):
        firestore_indexes_in(tmp_path)
    (tmp_path / FIRESTORE_INDEXES).parent.mkdir(parents=True)
    (tmp_path / FIRESTORE_INDEXES).write_text('{"indexes": [')
    with pytest.raises(BootstrapError, match=FIRESTORE_INDEXES):
        firestore_indexes_in(tmp_path)


def test_the_plan_reads_the_triggers_the_repository_defines() -> None:
    assert triggers_in(ROOT) == TRIGGERS


def test_the_plan_reads_the_environments_the_overlays_define() -> None:
    assert environments_in(ROOT) == ENVIRONMENTS


def test_a_project_no_overlay_deploys_to_is_refused() -> None:
    with pytest.raises(BootstrapError, match="no overlay deploys to ai-agent-platform-test-1"):
        environment_of(CloudProject("ai-agent-platform-test-1", "asia-northeast3"), ENVIRONMENTS)


def test_a_region_other_than_the_overlays_is_refused() -> None:
    with pytest.raises(BootstrapError, match="--region asia-northeast3"):
        environment_of(CloudProject(SEED.project, "europe-west1"), ENVIRONMENTS)


@pytest.mark.parametrize(
    ("project", "region"),
    [("Bad_Project", "asia-northeast3"), ("ai-agent-platform-469401", "asia northeast3")],
)
def test_an_invalid_project_or_region_is_refused(project: str, region: str) -> None:
    with pytest.raises(ValueError, match=r"project id|region"):
        CloudProject(project, region)


def test_iap_lets_through_only_the_members_given_and_only_where_it_guards() -> None:
    granted = [
        s.apply[0].argv
        for s in _prod_steps()
        if "roles/iap.httpsResourceAccessor" in s.apply[0].argv
    ]

    assert [argv[argv.index("--member") + 1] for argv in granted] == [IAP_MEMBER]
    with pytest.raises(CloudNameError, match="IAP guards only prod, not dev"):
        steps(DEV, TRIGGERS, indexes=INDEXES, iap_members=[IAP_MEMBER], delivery=False)


@pytest.mark.parametrize("member", ["alice@example.com", "user:", "group:team", "domain:x"])
def test_an_iap_member_that_is_not_an_iam_member_is_refused(member: str) -> None:
    with pytest.raises(CloudNameError, match="is not an IAM member"):
        iap_member(member)


def test_a_lookup_fills_its_placeholder_in_the_check_the_commands_and_the_document() -> None:
    registration = next(s for s in _prod_steps() if s.key == "argocd-cluster/dev")

    resolved = registration.resolved(LOOKED_UP)

    assert [lookup.placeholder for lookup in registration.lookups] == ["<dev-endpoint>", "<dev-ca>"]
    assert resolved.lookups == ()
    document = yaml.safe_load(resolved.apply[0].document or "")
    assert document["stringData"]["name"] == "dev"
    assert document["stringData"]["server"] == "https://203.0.113.7"
    config = json.loads(document["stringData"]["config"])
    assert config["tlsClientConfig"] == {"insecure": False, "caData": LOOKED_UP["<dev-ca>"]}
    assert config["execProviderConfig"]["args"] == ["gcp"]
    assert "bearerToken" not in config


def test_secret_values_come_from_their_files_without_trailing_newline(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(ANTHROPIC_VALUE + "\n")

    values = read_secrets(
        {"anthropic-api-key", "github-app-key"},
        {"anthropic-api-key": str(key_file), "github-app-key": "-"},
        io.BytesIO(GITHUB_VALUE.encode() + b"\n"),
    )

    assert values == {
        "anthropic-api-key": ANTHROPIC_VALUE.encode(),
        "github-app-key": GITHUB_VALUE.encode(),
    }


def test_two_secrets_cannot_both_come_from_stdin() -> None:
    both = {"anthropic-api-key": "-", "github-app-key": "-"}

    with pytest.raises(BootstrapError, match="only one secret"):
        read_secrets(set(both), both, io.BytesIO(b"x"))


def test_a_missing_secret_value_names_the_option_to_pass() -> None:
    with pytest.raises(BootstrapError, match="--github-app-key-file"):
        read_secrets({"github-app-key"}, {}, io.BytesIO(b""))


# --- end to end, against the stand-in for gcloud and kubectl ------------------------------------


def _bootstrap(
    tmp_path: Path,
    present: set[str],
    *args: str,
    stdin: bytes = b"",
    fail: str = "",
    looked_up: dict[str, str] = LOOKED_UP,
    root: Path | None = None,
) -> tuple[subprocess.CompletedProcess[bytes], list[dict[str, Any]]]:
    """Run `gitops bootstrap` for prod with the resources of the `present` step keys existing
    and gcloud answering the lookups in `looked_up`, on the repository as `root` holds it (by
    default with Argo CD's App's ids written in)."""
    root = root or _with_argocd_app(tmp_path)
    all_steps = _prod_steps()
    lookups: dict[str, Lookup] = {
        lookup.placeholder: lookup for step in all_steps for lookup in step.lookups
    }
    answers = [
        f"{shlex.join(lookups[placeholder].argv)}\t{value}"
        for placeholder, value in looked_up.items()
    ]
    checks = [
        shlex.join(step.resolved(looked_up).check) for step in all_steps if step.key in present
    ]
    stored = [f"{ARGOCD_KEY_READ}\t{ARGOCD_KEY_VALUE}"]
    (tmp_path / "present").write_text("\n".join([*answers, *checks, *stored]) + "\n")
    log = tmp_path / "calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{FIXTURES / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CLOUD_LOG": str(log),
        "FAKE_CLOUD_PRESENT": str(tmp_path / "present"),
        "FAKE_CLOUD_FAIL": fail,
    }
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(root), "bootstrap",
         "--project", SEED.project, "--region", SEED.region, "--iap-member", IAP_MEMBER, *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )  # fmt: skip
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def _with_argocd_app(tmp_path: Path) -> Path:
    """A copy of what the bootstrap reads from the repository, with Argo CD's App's ids written
    into the AppProject as the runbook says."""
    root = tmp_path / "repository"
    for name in ("gitops.yaml", FIRESTORE_INDEXES):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("overlays", "apps/argocd", "pipelines/triggers"):
        shutil.copytree(ROOT / folder, root / folder)
    project = root / REPOSITORY_PROJECT
    project.write_text(
        project.read_text()
        .replace('argocd-github-app-id: ""', f'argocd-github-app-id: "{REPOSITORY.app_id}"')
        .replace(
            'argocd-github-app-installation-id: ""',
            f'argocd-github-app-installation-id: "{REPOSITORY.installation_id}"',
        )
    )
    return root


def _applied(calls: list[dict[str, Any]]) -> list[list[str]]:
    checks = {"describe", "list", "get-iam-policy", "get", "config", "access", "pinned"}
    return [call["argv"] for call in calls if not checks & set(call["argv"])]


def test_the_dry_run_observes_the_project_and_prints_the_plan(tmp_path: Path) -> None:
    done, calls = _bootstrap(tmp_path, HALF_BOOTSTRAPPED)

    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith(_expected("half-bootstrapped.txt"))
    assert _applied(calls) == []


def test_apply_creates_only_what_is_missing_and_feeds_secrets_and_lookups_in(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(GITHUB_VALUE)
    argocd_key_file = tmp_path / "argocd-key"
    argocd_key_file.write_text(ARGOCD_KEY_VALUE + "\n")

    done, calls = _bootstrap(
        tmp_path,
        # Main has been pinned by a build and a promotion the first deployment made by hand.
        HALF_BOOTSTRAPPED | {"first-images"},
        "--apply",
        "--anthropic-api-key-file",
        "-",
        "--github-app-key-file",
        str(token_file),
        "--argocd-github-app-key-file",
        str(argocd_key_file),
        stdin=ANTHROPIC_VALUE.encode() + b"\n",
    )

    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, output
    applied = _applied(calls)
    assert ["gcloud", "container", "clusters", "create-auto"] not in [a[:4] for a in applied]
    # The hand-made cluster gets the add-on the API's key mount needs.
    assert ["gcloud", "container", "clusters", "update", "ai-agent-cluster"] in [
        a[:5] for a in applied
    ]
    assert ["gcloud", "secrets", "create", "github-app-key"] in [a[:4] for a in applied]
    stored = {
        c["argv"][4]: c["stdin"] for c in calls if c["argv"][1:4] == ["secrets", "versions", "add"]
    }
    assert stored == {
        "anthropic-api-key": ANTHROPIC_VALUE,
        "github-app-key": GITHUB_VALUE,
        "argocd-github-app-key": ARGOCD_KEY_VALUE,
    }
    stores = [c for c in calls if c["argv"][1:4] == ["secrets", "versions", "add"]]
    for secret in (ANTHROPIC_VALUE, GITHUB_VALUE, ARGOCD_KEY_VALUE):
        assert secret not in output
        assert all(secret not in " ".join(call["argv"]) for call in calls)
        assert all(secret not in call["stdin"] for call in calls if call not in stores)
    # Values looked up go where the plan shows their placeholders.
    members = [a[a.index("--member") + 1] for a in applied if "--member" in a]
    assert "serviceAccount:222222222222-compute@developer.gserviceaccount.com" in members
    written = [yaml.safe_load(c["stdin"]) for c in calls if c["argv"][-2:] == ["--filename", "-"]]
    clusters = [
        document["stringData"]
        for document in written
        if document["metadata"]["labels"]["argocd.argoproj.io/secret-type"] == "cluster"
    ]
    assert [(c["name"], c["server"]) for c in clusters] == [
        ("prod", "https://kubernetes.default.svc"),
        ("dev", "https://203.0.113.7"),
    ]
    assert not [a for a in applied if any("<" in word for word in a)]
    # The hand-made database gets the indexes its queries need and the TTL policy.
    indexes = [a for a in applied if a[1:5] == ["firestore", "indexes", "composite", "create"]]
    assert len(indexes) == len(INDEXES.composites)
    assert ["gcloud", "firestore", "fields", "ttls", "update", "expire_at"] in [
        a[:6] for a in applied
    ]
    assert "Bootstrap complete." in output


def test_apply_stops_where_another_projects_cluster_is_not_there_yet(tmp_path: Path) -> None:
    all_but_dev = {s.key for s in _prod_steps() if s.key != "argocd-cluster/dev"}
    without_dev_cluster = {k: v for k, v in LOOKED_UP.items() if not k.startswith("<dev-e")}

    done, calls = _bootstrap(tmp_path, all_but_dev, "--apply", looked_up=without_dev_cluster)

    assert done.returncode == 1
    assert "<dev-endpoint> is not known yet" in done.stdout.decode()
    assert _applied(calls) == []


def test_apply_refuses_to_start_without_a_missing_secrets_value(tmp_path: Path) -> None:
    done, calls = _bootstrap(tmp_path, HALF_BOOTSTRAPPED, "--apply")

    assert done.returncode == 2
    assert "--anthropic-api-key-file" in done.stdout.decode()
    assert _applied(calls) == []


def test_apply_stops_at_the_first_failing_command(tmp_path: Path) -> None:
    everything_but_argocd = {s.key for s in _prod_steps() if not s.key.startswith("argocd")}

    done, calls = _bootstrap(tmp_path, everything_but_argocd, "--apply", fail="--server-side")

    assert done.returncode == 1
    assert "run again" in done.stdout.decode()
    assert [a[-1] for a in _applied(calls)] == ["apps/argocd/install"]


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


def test_argocd_reads_the_repository_as_its_app_with_the_key_secret_manager_holds(
    tmp_path: Path,
) -> None:
    all_but_credential = {s.key for s in _prod_steps() if not s.key.startswith("argocd-repo")}

    done, calls = _bootstrap(tmp_path, all_but_credential, "--apply")

    output = done.stdout.decode()
    assert done.returncode == 0, output
    (credential,) = [yaml.safe_load(c["stdin"]) for c in calls if c["stdin"]]
    assert credential["metadata"] == {
        "name": "repository-agent-platform",
        "namespace": "argocd",
        "labels": {"argocd.argoproj.io/secret-type": "repository"},
    }
    assert credential["stringData"] == {
        "type": "git",
        "url": REPOSITORY_URL,
        "githubAppID": REPOSITORY.app_id,
        "githubAppInstallationID": REPOSITORY.installation_id,
    }
    # The key comes from Secret Manager, into the Secret only.
    key = base64.b64decode(credential["data"]["githubAppPrivateKey"]).decode()
    assert key == ARGOCD_KEY_VALUE
    assert ARGOCD_KEY_VALUE not in output
    assert all(ARGOCD_KEY_VALUE not in " ".join(call["argv"]) for call in calls)
    # Server-side, so no last-applied annotation copies the key.
    assert "--server-side" in _applied(calls)[0]


def test_the_repository_credential_waits_for_the_apps_ids_in_git(tmp_path: Path) -> None:
    all_but_credential = {s.key for s in _prod_steps() if not s.key.startswith("argocd-repo")}

    done, calls = _bootstrap(tmp_path, all_but_credential, "--apply", root=ROOT)

    assert done.returncode == 2
    assert "agent-platform.dev/argocd-github-app-id is '', not a number" in done.stdout.decode()
    assert _applied(calls) == []


def test_the_repository_credential_is_not_written_without_a_key_in_secret_manager(
    tmp_path: Path,
) -> None:
    all_but_credential = {s.key for s in _prod_steps() if not s.key.startswith("argocd-repo")}
    done, calls = _bootstrap(tmp_path, all_but_credential, "--apply", fail="versions access")

    assert done.returncode == 1
    assert "gcloud secrets versions access latest --secret argocd-github-app-key" in (
        done.stdout.decode()
    )
    assert not [c for c in calls if c["stdin"]]


def test_the_repository_argocd_reads_is_the_one_its_project_allows() -> None:
    assert repository_in(ROOT).url == REPOSITORY_URL


def test_the_applications_wait_until_main_pins_built_images(tmp_path: Path) -> None:
    before_first_build = {
        s.key for s in _prod_steps() if not s.key.startswith(("first-", "argocd-applications"))
    }

    done, calls = _bootstrap(tmp_path, before_first_build, "--apply")

    assert done.returncode == 1
    assert "gitops pinned --remote origin --branch main` failed" in done.stdout.decode()
    # The first build started; nothing of apps/argocd was applied.
    assert _applied(calls) == [
        ["gcloud", "builds", "triggers", "run", "main", "--branch", "main",
         "--project", SEED.project, "--region", SEED.region],
    ]  # fmt: skip


def test_a_started_first_build_is_not_started_again(tmp_path: Path) -> None:
    all_but_the_pins = {s.key for s in _prod_steps() if s.key != "first-images"} - {
        "argocd-applications"
    }

    done, calls = _bootstrap(tmp_path, all_but_the_pins, "--apply")

    assert done.returncode == 1
    assert _applied(calls) == []

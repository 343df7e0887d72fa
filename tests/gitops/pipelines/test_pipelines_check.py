"""`gitops pipelines check` on the repository's pipeline files and a failing fixture per rule."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gitops.pipelines.check import check_files, classify, discover, run
from gitops.pipelines.cloudbuild import check_build

ROOT = Path(__file__).resolve().parents[3]
DOCKER_BUILDER = (
    "gcr.io/cloud-builders/docker@sha256:"
    "3d00b6c1a9b862621c30fc74d4f2abfc62bcbdee631ed3febd31e7edbdf6252c"
)
FIXTURES = Path(__file__).with_name("fixtures")
FIXTURE_FILES = sorted(path for path in FIXTURES.iterdir() if path.is_file())


def _rule_of(fixture: Path) -> str:
    # `<rule>--<variant>.<ext>` or `<rule>.<ext>`: the name says which rule must fire.
    return fixture.name.split(".")[0].split("--")[0]


def test_the_repositorys_pipeline_files_are_clean() -> None:
    out = io.StringIO()

    status = run(ROOT, [], out)

    assert status == 0, out.getvalue()


def test_discovery_finds_every_build_trigger_script_and_dockerfile() -> None:
    files = discover(ROOT)

    names = {path.relative_to(ROOT).as_posix() for path in files.builds}
    assert {"cloudbuild.yaml", "pipelines/pull-request.yaml", "pipelines/promote.yaml"} <= names
    assert len(files.triggers) >= 3
    assert ROOT / "pipelines/scripts/pin-dev.sh" in files.scripts
    assert {
        ROOT / "apps/agent-platform/Dockerfile",
        ROOT / "apps/agent-runner/Dockerfile",
        ROOT / "pipelines/tools/Dockerfile",
    } <= set(files.dockerfiles)


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=[path.name for path in FIXTURE_FILES])
def test_each_fixture_fails_exactly_the_rule_it_is_named_after(fixture: Path) -> None:
    findings = check_files(ROOT, classify([fixture]))

    assert findings, f"{fixture.name} passed every check"
    assert {finding.rule for finding in findings} == {_rule_of(fixture)}, findings


def test_every_rule_has_a_failing_fixture() -> None:
    rules = {
        "cloudbuild-schema",
        "cloudbuild-substitution",
        "cloudbuild-wait-for",
        "cloudbuild-plain-secret",
        "cloudbuild-platform",
        "cloudbuild-unpinned-image",
        "trigger-schema",
        "trigger-build-file",
        "trigger-pin-loop",
        "trigger-pull-request-writes",
        "dockerfile-root-user",
        "dockerfile-unpinned-base",
        "dockerfile-add-url",
        "dockerfile-unfrozen-install",
    }

    assert {_rule_of(path) for path in FIXTURE_FILES} == rules


def test_a_credential_pasted_into_a_build_is_found() -> None:
    # Assembled here so that no credential-shaped string is committed.
    token = "ghp_" + "x1" * 18
    build = {"steps": [{"name": DOCKER_BUILDER, "args": ["clone", token]}]}

    findings = check_build(build, "cloudbuild.yaml")

    assert [finding.rule for finding in findings] == ["cloudbuild-plain-secret"]
    assert token not in str(findings)


def test_escaped_dollars_and_built_in_substitutions_are_accepted() -> None:
    build = {
        "steps": [
            {
                "name": DOCKER_BUILDER,
                "entrypoint": "bash",
                "args": ["-c", 'echo "$$HOME $${PATH}" $PROJECT_ID $SHORT_SHA ${_TARGET}'],
            }
        ],
        "substitutions": {"_TARGET": "dev"},
    }

    assert check_build(build, "cloudbuild.yaml") == []


def test_a_substitution_built_from_another_needs_dynamic_substitutions() -> None:
    build = {
        "steps": [{"name": DOCKER_BUILDER, "args": ["version", "${_IMAGE}"]}],
        "substitutions": {"_IMAGE": "gcr.io/${PROJECT_ID}/app"},
    }

    findings = check_build(build, "cloudbuild.yaml")
    dynamic = check_build({**build, "options": {"dynamicSubstitutions": True}}, "cloudbuild.yaml")

    assert [finding.rule for finding in findings] == ["cloudbuild-substitution"]
    assert "dynamicSubstitutions" in findings[0].message
    assert dynamic == []


def test_a_docker_build_naming_amd64_passes_in_either_spelling() -> None:
    build = {
        "steps": [
            {
                "name": DOCKER_BUILDER,
                "args": ["build", "--platform=linux/amd64", "."],
            },
            {
                "name": DOCKER_BUILDER,
                "entrypoint": "bash",
                "args": ["-c", "docker buildx build \\\n  --platform linux/amd64 --push ."],
            },
        ]
    }

    assert check_build(build, "cloudbuild.yaml") == []


def test_an_unreadable_file_is_a_usage_error_not_a_finding(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps: [unclosed\n")
    out = io.StringIO()

    status = run(ROOT, [broken], out)

    assert status == 2
    assert "broken.yaml" in out.getvalue()


def test_the_command_exits_1_and_names_the_rule_for_a_failing_file() -> None:
    fixture = FIXTURES / "cloudbuild-wait-for.yaml"

    done = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(ROOT), "pipelines", "check", str(fixture)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1
    assert "[cloudbuild-wait-for]" in done.stdout
    assert "`biuld`" in done.stdout


def test_the_tools_image_passes_once_a_step_it_waits_for_has_built_it() -> None:
    build = {
        "steps": [
            {"id": "workspace", "name": DOCKER_BUILDER, "args": ["version"]},
            {
                "id": "prepare",
                "name": DOCKER_BUILDER,
                "waitFor": ["workspace"],
                "entrypoint": "bash",
                "args": ["pipelines/scripts/prepare.sh", "registry", "import"],
            },
            {"id": "sync", "name": "gitops-tools", "waitFor": ["prepare"], "args": ["sync"]},
            # Waits for prepare only through sync, and runs after everything before it.
            {"id": "test", "name": "gitops-tools", "waitFor": ["sync"], "args": ["test"]},
            {"id": "report", "name": "gitops-tools", "args": ["report"]},
        ]
    }

    assert check_build(build, "cloudbuild.yaml") == []


def test_a_step_image_pinned_by_digest_passes_with_or_without_a_tag() -> None:
    build = {
        "steps": [
            {"name": DOCKER_BUILDER, "args": ["version"]},
            {"name": DOCKER_BUILDER.replace("@", ":latest@"), "args": ["version"]},
        ]
    }

    assert check_build(build, "cloudbuild.yaml") == []


def test_every_step_image_of_the_repositorys_builds_is_pinned_by_digest() -> None:
    for path in discover(ROOT).builds:
        for step in yaml.safe_load(path.read_text())["steps"]:
            assert "@sha256:" in step["name"] or step["name"] == "gitops-tools", path

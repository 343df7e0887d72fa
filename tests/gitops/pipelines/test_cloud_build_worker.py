"""The Cloud Build stand-in itself keeps Cloud Build's rules, so the pipeline tests mean
something: substitutions (https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values),
step order (https://cloud.google.com/build/docs/configuring-builds/configure-build-step-order),
secretEnv, and each step's user."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers.cloud_build import (
    BuildRejected,
    Worker,
    dependencies,
    expand,
    run_build,
    substitutions,
    tools_image_user,
)

SECRET = "projects/p/secrets/s/versions/latest"


@pytest.fixture
def worker() -> Iterator[Worker]:
    base = Path(tempfile.mkdtemp(prefix="cloud-build-unit-"))
    base.chmod(0o755)
    (base / "workspace").mkdir(mode=0o777)
    (base / "home").mkdir()
    (base / "workspace").chmod(0o777)  # these steps write as the tools user without a chown
    yield Worker(
        workspace=base / "workspace",
        builder_home=base / "home",
        image_bin=base / "bin",
        uv_cache=base / "cache",
        secrets={SECRET: "s3cret"},
    )
    shutil.rmtree(base, ignore_errors=True)


def _run(worker: Worker, build: Mapping[str, Any], **built_ins: str) -> dict[str, str]:
    path = worker.workspace / "build.yaml"
    path.write_text(yaml.safe_dump(build))
    runs = run_build(path, {"PROJECT_ID": "p", **built_ins}, worker)
    return {run.id: run.status for run in runs}


def test_dollar_dollar_is_a_literal_dollar_and_unknown_names_are_refused() -> None:
    assert expand("$$HOME ${_A}-$_A", {"_A": "x"}) == "$HOME x-x"
    with pytest.raises(BuildRejected, match="_MISSING"):
        expand("${_MISSING}", {})


def test_user_substitutions_expand_built_ins_only_with_dynamic_substitutions() -> None:
    build: dict[str, Any] = {
        "substitutions": {"_R": "r/${PROJECT_ID}"},
        "options": {"dynamicSubstitutions": True},
    }
    assert substitutions(build, {"PROJECT_ID": "p"})["_R"] == "r/p"
    assert substitutions({**build, "options": {}}, {"PROJECT_ID": "p"})["_R"] == "r/${PROJECT_ID}"
    # A trigger's value wins over the file's default.
    assert substitutions(build, {"PROJECT_ID": "p", "_R": "t"})["_R"] == "t"


def test_a_step_without_wait_for_waits_for_all_before_it_and_a_dash_for_none() -> None:
    steps: list[dict[str, Any]] = [
        {"id": "a"},
        {"id": "b", "waitFor": ["-"]},
        {"id": "c", "waitFor": ["a"]},
        {"id": "d"},
    ]
    assert dependencies(steps) == [set(), set(), {0}, {0, 1, 2}]


def test_steps_run_as_their_images_user_with_env_secrets_and_automapped_substitutions(
    worker: Worker,
) -> None:
    # `$$` for the shell's own `$`, as in any Cloud Build file.
    script = 'echo "$$(id -u) $$HOME $$GREETING $$TOKEN $$_WHO" > "out-$$1"'
    build = {
        "steps": [
            {
                "id": "tools",
                "name": "gitops-tools",
                "entrypoint": "bash",
                "args": ["-c", script, "-", "tools"],
                "env": ["GREETING=hi-${_WHO}"],
                "secretEnv": ["TOKEN"],
            },
            {
                "id": "builder",
                "name": "gcr.io/cloud-builders/git",
                "waitFor": ["-"],
                "entrypoint": "bash",
                "args": ["-c", script, "-", "builder"],
            },
        ],
        "substitutions": {"_WHO": "world"},
        "availableSecrets": {"secretManager": [{"versionName": SECRET, "env": "TOKEN"}]},
        "options": {"automapSubstitutions": True},
    }

    assert _run(worker, build) == {"tools": "passed", "builder": "passed"}
    home = worker.builder_home
    tools = (worker.workspace / "out-tools").read_text().split()
    assert tools == [str(tools_image_user()), str(home), "hi-world", "s3cret", "world"]
    assert (worker.workspace / "out-builder").read_text().split()[:2] == ["0", str(home)]


def test_a_failing_step_fails_the_build_and_later_steps_never_start(worker: Worker) -> None:
    build = {
        "steps": [
            {"id": "fails", "name": "gitops-tools", "entrypoint": "bash", "args": ["-c", "exit 3"]},
            {"id": "after", "name": "gitops-tools", "entrypoint": "bash", "args": ["-c", "true"]},
        ]
    }

    assert _run(worker, build) == {"fails": "failed", "after": "cancelled"}


def test_a_secret_secret_manager_does_not_hold_refuses_the_build(worker: Worker) -> None:
    build = {
        "steps": [{"name": "gitops-tools", "args": ["true"], "secretEnv": ["T"]}],
        "availableSecrets": {"secretManager": [{"versionName": "projects/p/x", "env": "T"}]},
    }

    with pytest.raises(BuildRejected, match="Secret Manager has no projects/p/x"):
        _run(worker, build)

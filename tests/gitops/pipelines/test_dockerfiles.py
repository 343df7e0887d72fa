"""The images' Dockerfiles: what each must hold, read with the checker's own parser."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from gitops.pipelines.check import named_build_contexts
from gitops.pipelines.dockerfiles import Stage, check_dockerfile, parse

ROOT = Path(__file__).resolve().parents[3]
PLATFORM = ROOT / "apps/agent-platform/Dockerfile"
RUNNER = ROOT / "apps/agent-runner/Dockerfile"
TOOLS = ROOT / "pipelines/tools/Dockerfile"
PYTHON = (
    "python:3.11.14-slim-bookworm@sha256:"
    "65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d"
)


def _stages(path: Path) -> tuple[dict[str, str], list[Stage]]:
    return parse(path.read_text(encoding="utf-8"))


def _final(path: Path) -> dict[str, list[str]]:
    """The final stage's instructions, arguments by keyword."""
    found: dict[str, list[str]] = {}
    for instruction in _stages(path)[1][-1].instructions:
        found.setdefault(instruction.keyword, []).append(instruction.arguments)
    return found


def _all_runs(path: Path) -> str:
    return "\n".join(
        i.arguments for stage in _stages(path)[1] for i in stage.instructions if i.keyword == "RUN"
    )


@pytest.mark.parametrize("path", [PLATFORM, RUNNER], ids=["platform", "runner"])
def test_the_image_is_built_on_the_pinned_slim_python_and_runs_as_10001(path: Path) -> None:
    global_args, stages = _stages(path)

    assert global_args["PYTHON_IMAGE"].startswith("python:3.11.14-slim-bookworm@sha256:")
    assert stages[-1].base == "${PYTHON_IMAGE}"
    assert _final(path)["USER"] == ["10001"]
    assert check_dockerfile(path.read_text(), path.name) == []


@pytest.mark.parametrize(
    ("path", "package"), [(PLATFORM, "agent-platform"), (RUNNER, "agent-runner")]
)
def test_dependencies_come_from_the_lock_without_dev_tools(path: Path, package: str) -> None:
    runs = _all_runs(path)

    assert f"uv sync --frozen --no-dev --no-install-workspace --package {package}" in runs
    assert f"uv sync --frozen --no-dev --no-editable --package {package}" in runs


@pytest.mark.parametrize("path", [PLATFORM, RUNNER], ids=["platform", "runner"])
def test_the_final_stage_carries_no_build_tools(path: Path) -> None:
    final = _final(path)
    copied = " ".join(final.get("COPY", []))

    assert "uv" not in " ".join(final.get("RUN", [])).split()
    assert "/usr/local/bin/uv" not in copied
    assert not {"gcc", "build-essential", "make"} & set(" ".join(final.get("RUN", [])).split())


def test_the_platform_serves_on_8000() -> None:
    final = _final(PLATFORM)

    assert final["EXPOSE"] == ["8000"]
    command = ["agent-platform", "serve", "--host", "0.0.0.0"]  # noqa: S104 - in a container
    assert json.loads(final["CMD"][0]) == command


def test_the_runner_has_an_agents_toolset_and_nothing_of_the_platform() -> None:
    final = _final(RUNNER)
    text = RUNNER.read_text()

    assert json.loads(final["ENTRYPOINT"][0]) == ["python", "-m", "agent_runner"]
    packages = {word.split("=", 1)[0] for word in " ".join(final["RUN"]).split()}
    assert {"git", "ca-certificates"} <= packages
    assert "apps/agent-platform/src" not in text
    assert "--package agent-platform" not in text


def test_the_build_context_admits_only_the_workspace_and_sources() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]

    assert lines[0] == "*"
    assert "!uv.lock" in lines
    assert not [line for line in lines if line.startswith("!") and ".env" in line]


def test_continuation_lines_and_their_comments_form_one_instruction() -> None:
    _, stages = parse(
        "FROM python:3.11.14-slim-bookworm AS base\n"
        "RUN apt-get update \\\n"
        "# a comment inside the instruction\n"
        "    && apt-get install --yes git\n"
        "USER 10001\n"
    )

    assert [i.keyword for i in stages[0].instructions] == ["RUN", "USER"]
    assert stages[0].instructions[0].arguments == "apt-get update && apt-get install --yes git"
    assert stages[0].name == "base"


def test_a_later_stage_may_start_from_an_earlier_one() -> None:
    text = f"FROM {PYTHON} AS base\nFROM base\nCOPY --from=base /a /b\nUSER 10001\n"

    assert check_dockerfile(text, "Dockerfile") == []


def test_switching_back_to_root_at_the_end_is_found() -> None:
    text = f"FROM {PYTHON}\nUSER 10001\nUSER root:root\n"

    assert [f.rule for f in check_dockerfile(text, "Dockerfile")] == ["dockerfile-root-user"]


@pytest.mark.parametrize("path", [PLATFORM, RUNNER, TOOLS], ids=["platform", "runner", "tools"])
def test_every_image_the_build_pulls_is_pinned_by_digest(path: Path) -> None:
    text = path.read_text()
    global_args, stages = parse(text)

    assert text.startswith("# syntax=docker/dockerfile:1.7@sha256:")
    for stage in stages:
        base = stage.base.replace("${PYTHON_IMAGE}", global_args["PYTHON_IMAGE"])
        assert "@sha256:" in base or base in {s.name for s in stages}, base
    contexts = named_build_contexts((ROOT / "pipelines/scripts").glob("*.sh"))
    assert check_dockerfile(text, path.name, contexts) == []


def test_copy_from_a_named_build_context_is_local_only_when_a_script_names_it(
    tmp_path: Path,
) -> None:
    script = tmp_path / "build.sh"
    script.write_text(
        "docker buildx build --build-context psa=tools/psa \\\n"
        "  --build-context remote=docker-image://alpine --load pipelines/tools\n"
    )
    text = f"FROM {PYTHON}\nCOPY --from=psa . /src\nUSER 10001\n"

    assert named_build_contexts([script]) == {"psa"}
    assert check_dockerfile(text, "Dockerfile", frozenset({"psa"})) == []
    assert [f.rule for f in check_dockerfile(text, "Dockerfile")] == ["dockerfile-unpinned-base"]


def test_the_images_install_the_uv_developers_run_checked_by_hash() -> None:
    requirements = (ROOT / "pipelines/tools/uv-requirements.txt").read_text()
    # `uv run` names its own binary in $UV.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found: run the tests with `python3 -m uv run pytest`")
    version = subprocess.run(
        [uv, "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]

    assert re.search(
        rf"^uv=={re.escape(version)} --hash=sha256:[0-9a-f]{{64}}$", requirements, re.M
    )
    for path in (PLATFORM, RUNNER, TOOLS):
        assert "--require-hashes" in _all_runs(path)
        assert "uv-requirements.txt" in path.read_text()


def test_a_pinned_base_and_versioned_apt_packages_pass() -> None:
    text = (
        f"{PLATFORM.read_text().splitlines()[0]}\n"
        f"FROM {PYTHON}\n"
        "RUN apt-get update && apt-get install --yes git=1:2.39.5-0+deb12u3\n"
        "USER 10001\n"
    )

    assert check_dockerfile(text, "Dockerfile") == []


def test_a_syntax_line_after_a_comment_is_no_directive_and_pulls_nothing() -> None:
    # BuildKit stops looking for parser directives at the first comment.
    text = f"# the API image\n# syntax=docker/dockerfile:1.7\nFROM {PYTHON}\nUSER 10001\n"

    assert check_dockerfile(text, "Dockerfile") == []

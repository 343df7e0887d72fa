"""The images' Dockerfiles: what each must hold, read with the checker's own parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gitops.pipelines.dockerfiles import Stage, check_dockerfile, parse

ROOT = Path(__file__).resolve().parents[3]
PLATFORM = ROOT / "apps/agent-platform/Dockerfile"
RUNNER = ROOT / "apps/agent-runner/Dockerfile"


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

    assert global_args["PYTHON_IMAGE"] == "python:3.11.14-slim-bookworm"
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
    assert {"git", "ca-certificates"} <= set(" ".join(final["RUN"]).split())
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
    text = "FROM python:3.11.14-slim-bookworm AS base\nFROM base\nUSER 10001\n"

    assert check_dockerfile(text, "Dockerfile") == []


def test_switching_back_to_root_at_the_end_is_found() -> None:
    text = "FROM python:3.11.14-slim-bookworm\nUSER 10001\nUSER root:root\n"

    assert [f.rule for f in check_dockerfile(text, "Dockerfile")] == ["dockerfile-root-user"]

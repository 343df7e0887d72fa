"""The PR diff comment: one comment, found by its hidden marker and edited on every push.

Runs the real client, the `gitops pr-comment` command and the pipeline's pr-diff.sh step
against a local server standing in for GitHub's API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitops.pipelines.github import Comment, GitHub, GitHubError
from gitops.pipelines.pr_comment import DEFAULT_MARKER, MAX_BODY, body_with_marker, decide, post
from servers.github_api import GitHubServer, github_api

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "pr-comment-test-token-5d1e"
REPO = "agent-platform/agent-platform"


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with github_api(TOKEN, page_size=5) as server:
        yield server


def _bodies(server: GitHubServer, number: int) -> list[str]:
    return [comment["body"] for comment in server.state.comments.get(number, [])]


def test_the_first_run_creates_the_comment_and_later_runs_edit_it(github: GitHubServer) -> None:
    client = GitHub(github.url, REPO, TOKEN)

    first = post(client, 7, "first diff")
    second = post(client, 7, "second diff")

    assert first.startswith("created comment")
    assert second.startswith("updated comment")
    assert _bodies(github, 7) == [f"{DEFAULT_MARKER}\nsecond diff"]
    assert [r.method for r in github.state.requests] == ["GET", "POST", "GET", "PATCH"]


def test_the_marked_comment_is_found_on_a_later_page_and_others_are_untouched(
    github: GitHubServer,
) -> None:
    for index in range(7):
        github.state.add_comment(3, f"review remark {index}")
    marked = github.state.add_comment(3, f"{DEFAULT_MARKER}\nold diff")
    github.state.add_comment(3, "a later remark quoting the bot")

    post(GitHub(github.url, REPO, TOKEN), 3, "new diff")

    bodies = _bodies(github, 3)
    assert bodies[7] == f"{DEFAULT_MARKER}\nnew diff"
    assert marked["body"] == bodies[7]
    assert bodies[:7] == [f"review remark {index}" for index in range(7)]
    assert len(bodies) == 9


def test_a_comment_that_only_mentions_the_marker_is_not_taken_over() -> None:
    existing = [Comment(1, f"why does the bot write {DEFAULT_MARKER}?")]

    assert decide(existing, "diff", DEFAULT_MARKER).comment_id is None


def test_an_oversized_diff_is_cut_to_githubs_limit_with_a_note() -> None:
    body = body_with_marker("+ line\n" * 20_000, DEFAULT_MARKER)

    assert len(body) <= MAX_BODY
    assert body.startswith(DEFAULT_MARKER)
    assert "truncated" in body


def test_a_refused_token_is_reported_without_echoing_it(github: GitHubServer) -> None:
    client = GitHub(github.url, REPO, "wrong-token-value")

    with pytest.raises(GitHubError, match="401") as raised:
        post(client, 1, "diff")

    assert "wrong-token-value" not in str(raised.value)


def _command_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_TOKEN"}
    env["PATH"] = (
        f"{Path(sys.executable).parent}{os.pathsep}{ROOT / 'bin'}{os.pathsep}{env['PATH']}"
    )
    return {**env, **extra}


def test_the_command_takes_its_token_from_the_environment_only(
    github: GitHubServer, tmp_path: Path
) -> None:
    body = tmp_path / "diff.md"
    body.write_text("### gitops diff\n")
    argv = [
        sys.executable, "-m", "gitops", "--root", str(ROOT), "pr-comment",
        "--api-url", github.url, "--repo", REPO, "--pr", "12", "--body-file", str(body),
    ]  # fmt: skip

    without = subprocess.run(argv, env=_command_env(), capture_output=True, text=True, check=False)
    with_token = subprocess.run(
        argv, env=_command_env(GITHUB_TOKEN=TOKEN), capture_output=True, text=True, check=False
    )

    assert without.returncode == 2
    assert "GITHUB_TOKEN" in without.stderr
    assert with_token.returncode == 0, with_token.stderr
    assert TOKEN not in with_token.stdout + with_token.stderr
    assert _bodies(github, 12) == [f"{DEFAULT_MARKER}\n### gitops diff\n"]


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def _set_dev_digest(workspace: Path, digit: str) -> str:
    digest = "sha256:" + digit * 64
    subprocess.run(
        [sys.executable, "-m", "gitops", "set-image", "dev", f"agent-platform@{digest}"],
        cwd=workspace,
        env=_command_env(),
        capture_output=True,
        check=True,
    )
    return digest


def test_the_pr_step_posts_the_rendered_diff_once_and_edits_it_on_the_next_push(
    github: GitHubServer, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    _git("clone", "--quiet", "--bare", str(ROOT), str(remote), cwd=tmp_path)
    workspace = tmp_path / "workspace"
    _git("clone", "--quiet", str(remote), str(workspace), cwd=tmp_path)
    # Cloud Build hands the step the PR's files without their git history.
    shutil.rmtree(workspace / ".git")
    step = [
        "bash", str(ROOT / "pipelines/scripts/pr-diff.sh"),
        f"file://{remote}", "main", REPO, "21", github.url,
    ]  # fmt: skip
    env = _command_env(GITHUB_TOKEN=TOKEN)

    first_digest = _set_dev_digest(workspace, "a")
    first = subprocess.run(
        step, cwd=workspace, env=env, capture_output=True, text=True, check=False
    )
    second_digest = _set_dev_digest(workspace, "b")
    second = subprocess.run(
        step, cwd=workspace, env=env, capture_output=True, text=True, check=False
    )

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    bodies = _bodies(github, 21)
    assert len(bodies) == 1
    assert bodies[0].startswith(DEFAULT_MARKER)
    assert second_digest in bodies[0]
    assert first_digest not in bodies[0]
    assert "#### dev" in bodies[0]
    assert TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr

"""The main pipeline's pin step (pipelines/scripts/pin-dev.sh) against a local git remote.

The script clones the remote, runs `gitops set-image` in overlays/dev, commits as the bot and
pushes; these tests read the result back from the remote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "pipelines/scripts/pin-dev.sh"
REGISTRY = "asia-northeast3-docker.pkg.dev/ai-agent-platform-469401/agent-platform"
TOKEN = "pin-test-token-0c94b2"
PLATFORM = f"{REGISTRY}/agent-platform@sha256:{'c' * 64}"
RUNNER = f"{REGISTRY}/agent-runner@sha256:{'d' * 64}"
IMAGES = [f"agent-platform={PLATFORM}", f"agent-runner={RUNNER}"]


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "remote.git"
    _git("clone", "--quiet", "--bare", str(ROOT), str(path), cwd=tmp_path)
    return path


def _pin(remote: Path, *images: str, source: str = "1a2b3c4") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_TOKEN": TOKEN,
        "HOME": str(remote.parent),  # no user git config takes part
    }
    return subprocess.run(
        ["bash", str(SCRIPT), f"file://{remote}", "main", source, *images],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_digests_are_committed_to_dev_by_the_bot_and_pushed(remote: Path) -> None:
    before = _git("rev-parse", "main", cwd=remote)

    done = _pin(remote, *IMAGES)

    assert done.returncode == 0, done.stderr
    assert _git("rev-parse", "main^", cwd=remote) == before
    author = _git("log", "-1", "--format=%an <%ae>|%cn|%s", "main", cwd=remote)
    assert author == (
        "agent-platform-bot <agent-platform-bot@users.noreply.github.com>|agent-platform-bot|"
        "Pin dev images built from 1a2b3c4"
    )
    changed = _git("diff", "--name-only", "main^", "main", cwd=remote)
    assert changed == "overlays/dev/kustomization.yaml"
    overlay = _git("show", "main:overlays/dev/kustomization.yaml", cwd=remote)
    assert f"digest: sha256:{'c' * 64}" in overlay
    assert f"digest: sha256:{'d' * 64}" in overlay


def test_pinning_what_is_already_pinned_pushes_nothing(remote: Path) -> None:
    assert _pin(remote, *IMAGES).returncode == 0
    pinned = _git("rev-parse", "main", cwd=remote)

    again = _pin(remote, *IMAGES)

    assert again.returncode == 0, again.stderr
    assert "nothing to commit" in again.stdout
    assert _git("rev-parse", "main", cwd=remote) == pinned


def test_a_build_of_an_older_commit_finishing_last_does_not_take_dev_back(remote: Path) -> None:
    newer = _git("rev-parse", "main", cwd=remote)
    older = _git("rev-parse", "main^", cwd=remote)
    assert _pin(remote, *IMAGES, source=newer).returncode == 0
    pinned = _git("rev-parse", "main", cwd=remote)

    late = _pin(remote, f"agent-platform={REGISTRY}/agent-platform@sha256:{'e' * 64}", source=older)

    assert late.returncode == 0, late.stderr
    assert "not pinning" in late.stdout
    assert _git("rev-parse", "main", cwd=remote) == pinned
    assert (
        _git("log", "-1", "--format=%(trailers:key=Built-from,valueonly)", "main", cwd=remote)
        == newer
    )


def test_a_refused_push_is_pinned_again_on_the_new_tip(remote: Path) -> None:
    # The remote refuses the first push once, as GitHub does when main moved meanwhile.
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        'marker="$(dirname "$0")/refused-once"\n'
        '[ -e "$marker" ] && exit 0\n'
        'touch "$marker"\necho "main moved" >&2\nexit 1\n'
    )
    hook.chmod(0o755)

    done = _pin(remote, *IMAGES)

    assert done.returncode == 0, done.stderr
    assert "attempt 1/3" in done.stderr
    assert "Pin dev images" in _git("log", "-1", "--format=%s", "main", cwd=remote)


def test_a_malformed_digest_fails_the_step_and_changes_nothing(remote: Path) -> None:
    before = _git("rev-parse", "main", cwd=remote)

    done = _pin(remote, f"agent-platform={REGISTRY}/agent-platform@sha256:short")

    assert done.returncode != 0
    assert "digest" in done.stderr
    assert _git("rev-parse", "main", cwd=remote) == before


def test_the_token_never_reaches_output_history_or_git_config(remote: Path) -> None:
    done = _pin(remote, *IMAGES)

    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert TOKEN not in _git("log", "-1", "--format=%B", "main", cwd=remote)
    assert TOKEN not in (remote / "config").read_text()


def test_missing_arguments_are_a_usage_error(remote: Path) -> None:
    done = _pin(remote)

    assert done.returncode == 2
    assert "usage: pin-dev.sh" in done.stderr


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        ("Username for 'https://github.com': ", "x-access-token"),
        ("Password for 'https://x-access-token@github.com': ", TOKEN),
    ],
)
def test_git_gets_the_token_from_the_environment_through_askpass(prompt: str, answer: str) -> None:
    askpass = ROOT / "pipelines/scripts/git-askpass.sh"

    done = subprocess.run(
        [str(askpass), prompt],
        env={"PATH": os.environ["PATH"], "GITHUB_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout == f"{answer}\n"


def test_askpass_without_a_token_fails_and_says_how_to_provide_one() -> None:
    askpass = ROOT / "pipelines/scripts/git-askpass.sh"

    done = subprocess.run(
        [str(askpass), "Password: "],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode != 0
    assert "secretEnv GITHUB_TOKEN" in done.stderr

"""The three pipelines, run step by step as Cloud Build runs them (see `cloud_build.py`).

Each build gets the source the way its trigger delivers it. A GitHub trigger checks out a
shallow clone of the one commit it builds ("Build triggers use a shallow clone of the
repository... only the single commit that triggered the build is checked out in the
workspace", https://cloud.google.com/build/docs/automating-builds/create-manage-triggers
#including_the_repository_history_in_a_build), and Cloud Build's workspace and that `.git` are
root's; a build of uploaded source (`gcloud builds submit`, or a trigger whose repository is
not a git checkout) has no `.git` at all. Both shapes are built here, owned by root.

The remote is a local bare repository whose `main` is protected as GitHub's branch protection
protects it: nobody pushes to it but the bot, and the bot only its pin commit. GitHub's API is
the loopback server of `servers.github_api`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from gitops.toolchain import find_tool
from servers.cloud_build import (
    ROOT,
    StepRun,
    Worker,
    new_build_id,
    owned_by,
    run_build,
    tools_image_user,
)
from servers.github_api import App, GitHubServer, github_api

PROJECT = "ai-agent-platform-469401"
REPO = "agent-platform/agent-platform"
TOKEN = "worker-test-token-5be1"
SECRET = f"projects/{PROJECT}/secrets/github-app-key/versions/latest"
APP_ID, INSTALLATION_ID = "424242", "777"
ACCOUNT = f"cloud-build@{PROJECT}.iam.gserviceaccount.com"
REGISTRY = f"asia-northeast3-docker.pkg.dev/{PROJECT}/agent-platform"
SHAPES = ["shallow-clone", "uploaded-source"]
UID = tools_image_user()
# What python:3.11-slim has no copy of: the packages of the interpreter this suite runs in.
LEAVE_OUT = ["--exclude=site-packages", "--exclude=test", "--exclude=*.a"]

PROTECTED_MAIN = f"""#!/bin/sh
# GitHub's protection of main: changes arrive by pull request; only the App may bypass it (its
# installation token authenticates the push), and only with a commit that pins overlays/dev.
while read -r old new ref; do
  [ "$ref" = refs/heads/main ] || continue
  if [ "${{GITHUB_TOKEN:-}}" != "{TOKEN}" ]; then
    echo "protected branch hook declined: changes must be made through a pull request" >&2
    exit 1
  fi
  if git diff --name-only "$old" "$new" | grep -qv '^overlays/dev/'; then
    echo "protected branch hook declined: the bot may only change overlays/dev" >&2
    exit 1
  fi
done
"""


# The test, as root, reads repositories the steps' user owns; git would call that dubious
# ownership, and reads `safe.directory` only from global config, which a local transport's
# upload-pack sees too.
_TRUSTING = Path(tempfile.mkdtemp(prefix="cloud-build-git-")) / "gitconfig"
atexit.register(shutil.rmtree, _TRUSTING.parent, True)
_TRUSTING.write_text("[safe]\n\tdirectory = *\n")
_ROOT_GIT = {
    "GIT_CONFIG_GLOBAL": str(_TRUSTING),
    "GIT_AUTHOR_NAME": "Developer",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Developer",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **_ROOT_GIT},
    )
    return done.stdout.strip()


def _chown(path: Path, uid: int) -> None:
    subprocess.run(["chown", "-R", f"{uid}:{uid}", str(path)], check=True)


@dataclass
class Cloud:
    """GitHub (a bare repository and the API server) and an empty worker."""

    base: Path
    remote: Path
    github: GitHubServer
    main: str
    pull: str
    image_bin: Path
    uv_cache: Path
    app_key: str

    def deliver(self, commit: str, shape: str) -> Path:
        """The workspace as the trigger hands it over: root's files, with or without `.git`."""
        workspace = self.base / f"workspace-{new_build_id()[:8]}"
        workspace.mkdir()
        if shape == "shallow-clone":
            _git("init", "--quiet", str(workspace))
            _git("fetch", "--quiet", "--depth", "1", f"file://{self.remote}", commit, cwd=workspace)
            _git("checkout", "--quiet", "--detach", "FETCH_HEAD", cwd=workspace)
        else:
            archive = subprocess.run(
                ["git", "archive", commit],
                cwd=self.remote,
                env={**os.environ, **_ROOT_GIT},
                capture_output=True,
                check=True,
            )
            subprocess.run(["tar", "-x", "-C", str(workspace)], input=archive.stdout, check=True)
        return workspace

    def worker(self, workspace: Path, **stand_ins: Callable[[Path], None]) -> Worker:
        home = workspace.parent / f"{workspace.name}-home"
        home.mkdir()
        # github.com is the bare repository: git on the worker is told so, as DNS would.
        (home / ".gitconfig").write_text(
            f'[url "file://{self.remote}"]\n\tinsteadOf = https://github.com/{REPO}.git\n'
        )
        return Worker(
            workspace=workspace,
            builder_home=home,
            image_bin=self.image_bin,
            uv_cache=self.uv_cache,
            secrets={SECRET: self.app_key},
            stand_ins=stand_ins,
            # PyPI is the cache on disk; the suite runs its own tests, so the test step runs
            # the tests that read the workspace's shape (git, tools, overlays).
            extra_env={
                "UV_CACHE_DIR": str(self.uv_cache),
                "UV_OFFLINE": "1",
                "LD_LIBRARY_PATH": str(self.image_bin.parent / "lib"),
                "PYTEST_ADDOPTS": "tests/gitops/test_gitops_repository.py -p no:cacheprovider",
            },
        )


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The tools image's /usr/local/bin and a uv cache its user can write, built once."""
    base = Path(tempfile.mkdtemp(prefix="cloud-build-tools-"))
    base.chmod(0o755)
    # /usr/local of the python image, where its tools are copied too.
    image_python = base / "usr-local"
    image_python.mkdir()
    image_bin = image_python / "bin"
    # The tools image's Python (3.11, from python:3.11-slim): this interpreter's standard
    # library and shared library, copied where the steps' user can read them.
    python = Path(sys.base_prefix)
    archive = subprocess.run(
        ["tar", "-C", str(python), *LEAVE_OUT, "-c", "bin/python3.11", "lib"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(image_python)], input=archive.stdout, check=True)
    (image_bin / "python3").symlink_to("python3.11")
    # `uv run` names its own binary in $UV: the version the tools image installs
    # (pipelines/tools/uv-requirements.txt).
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found: run the tests with `python3 -m uv run pytest`")
    shutil.copy2(uv, image_bin / "uv")
    # The tools the image builds from source (pipelines/tools/Dockerfile).
    for tool in ("kustomize", "kubeconform", "gitleaks", "psa"):
        shutil.copy2(find_tool(tool, ROOT), image_bin / tool)
    cache = base / "uv-cache"
    source = subprocess.run(
        [uv, "cache", "dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run(["cp", "-a", source, str(cache)], check=True)
    _chown(cache, UID)
    yield image_bin, cache
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cloud(tools: tuple[Path, Path]) -> Iterator[Cloud]:
    base = Path(tempfile.mkdtemp(prefix="cloud-build-"))
    base.chmod(0o755)  # the steps' user must reach the workspace below
    remote = base / "remote.git"
    _git("clone", "--quiet", "--bare", str(ROOT), str(remote))
    # main is what this checkout holds now, committed or not.
    index = base / "index"
    env = {**os.environ, **_ROOT_GIT, "GIT_INDEX_FILE": str(index)}
    git = ["git", f"--git-dir={remote}", f"--work-tree={ROOT}"]
    subprocess.run([*git, "add", "--all"], env=env, check=True)
    tree = subprocess.run(
        [*git, "write-tree"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    main = subprocess.run(
        [*git, "commit-tree", tree, "-p", "HEAD", "-m", "Change the pipelines"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _git(f"--git-dir={remote}", "update-ref", "refs/heads/main", main)
    _git(f"--git-dir={remote}", "symbolic-ref", "HEAD", "refs/heads/main")
    # Dev runs an image prod does not yet, and a pull request changes it again.
    work = base / "pr"
    _git("clone", "--quiet", str(remote), str(work))
    overlay = work / "overlays/dev/kustomization.yaml"
    overlay.write_text(overlay.read_text().replace("0" * 63 + "1", "e" * 64, 1))
    _git("commit", "--quiet", "-am", "Pin dev", cwd=work)
    _git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    main = _git("rev-parse", "HEAD", cwd=work)
    overlay.write_text(overlay.read_text().replace("e" * 64, "a" * 64, 1))
    _git("commit", "--quiet", "-am", "Run another platform image in dev", cwd=work)
    _git("push", "--quiet", "origin", "HEAD:refs/pull/7/head", cwd=work)
    pull = _git("rev-parse", "HEAD", cwd=work)
    # GitHub serves any commit by its id, which is how a trigger fetches the one it builds.
    _git(f"--git-dir={remote}", "config", "uploadpack.allowAnySHA1InWant", "true")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(PROTECTED_MAIN)
    hook.chmod(0o755)
    _chown(remote, UID)  # the server's files, which the steps' user pushes to
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    app = App(APP_ID, INSTALLATION_ID, key.public_key())
    with github_api(TOKEN, app=app) as github:
        yield Cloud(base, remote, github, main, pull, *tools, pem)
    shutil.rmtree(base, ignore_errors=True)


def _built_ins(cloud: Cloud, commit: str, branch: str, trigger: str, config: str) -> dict[str, str]:
    return {
        "PROJECT_ID": PROJECT,
        "PROJECT_NUMBER": "123456789012",
        "BUILD_ID": new_build_id(),
        "LOCATION": "asia-northeast3",
        "TRIGGER_NAME": trigger,
        "TRIGGER_BUILD_CONFIG_PATH": config,
        "SERVICE_ACCOUNT_EMAIL": ACCOUNT,
        "SERVICE_ACCOUNT": f"projects/{PROJECT}/serviceAccounts/{ACCOUNT}",
        "COMMIT_SHA": commit,
        "REVISION_ID": commit,
        "SHORT_SHA": commit[:7],
        "REPO_NAME": REPO.split("/")[1],
        "REPO_FULL_NAME": REPO,
        "BRANCH_NAME": branch,
        "REF_NAME": branch,
        "TAG_NAME": "",
        # The trigger's values for the file's substitutions.
        "_GITHUB_API_URL": cloud.github.url,
        "_GITHUB_APP_ID": APP_ID,
        "_GITHUB_APP_INSTALLATION_ID": INSTALLATION_ID,
    }


def _statuses(runs: list[StepRun]) -> dict[str, str]:
    return {run.id: run.status for run in runs}


def _failures(runs: list[StepRun]) -> str:
    return "\n\n".join(f"--- {r.id}\n{r.output[-4000:]}" for r in runs if r.status == "failed")


@pytest.mark.parametrize("shape", SHAPES)
def test_a_pull_request_build_passes_and_comments_the_change(cloud: Cloud, shape: str) -> None:
    workspace = cloud.deliver(cloud.pull, shape)
    built_ins = {
        **_built_ins(cloud, cloud.pull, "feature", "pull-request", "pipelines/pull-request.yaml"),
        "_HEAD_BRANCH": "feature",
        "_BASE_BRANCH": "main",
        "_HEAD_REPO_URL": f"https://github.com/{REPO}",
        "_PR_NUMBER": "7",
    }

    runs = run_build(workspace / "pipelines/pull-request.yaml", built_ins, cloud.worker(workspace))

    assert _statuses(runs) == {
        "workspace": "passed",
        "prepare": "not run: needs Docker",
        "sync": "passed",
        "test": "passed",
        "validate": "passed",
        "diff": "passed",
    }, _failures(runs)
    assert owned_by(workspace, UID)
    comments = cloud.github.state.comments[7]
    assert len(comments) == 1
    assert "a" * 64 in comments[0]["body"]
    assert cloud.github.state.issued == [
        {
            "repositories": ["agent-platform"],
            "permissions": {"contents": "read", "pull_requests": "write"},
        }
    ]
    logs = "".join(run.output for run in runs)
    assert TOKEN not in logs
    assert "PRIVATE KEY" not in logs


def test_a_push_to_main_pins_the_built_images_in_dev_past_branch_protection(
    cloud: Cloud,
) -> None:
    workspace = cloud.deliver(cloud.main, "shallow-clone")
    digests = {"agent-platform": "sha256:" + "c" * 64, "agent-runner": "sha256:" + "d" * 64}

    def artifact_registry(workspace: Path) -> None:
        (workspace / "digests").mkdir()
        for app, digest in digests.items():
            (workspace / "digests" / app).write_text(digest + "\n")
        _chown(workspace / "digests", UID)

    worker = cloud.worker(workspace, **{"read-digests": artifact_registry})
    built_ins = _built_ins(cloud, cloud.main, "main", "main", "cloudbuild.yaml")

    runs = run_build(workspace / "cloudbuild.yaml", built_ins, worker)

    assert _statuses(runs) == {
        "workspace": "passed",
        "prepare": "not run: needs Docker",
        "sync": "passed",
        "test": "passed",
        "validate": "passed",
        "build-agent-platform": "not run: needs Docker",
        "build-agent-runner": "not run: needs Docker",
        "read-digests": "stand-in",
        "pin-dev": "passed",
    }, _failures(runs)
    assert _git("rev-parse", "main^", cwd=cloud.remote) == cloud.main
    overlay = _git("show", "main:overlays/dev/kustomization.yaml", cwd=cloud.remote)
    assert all(f"digest: {digest}" in overlay for digest in digests.values())
    trailer = _git(
        "log", "-1", "--format=%(trailers:key=Built-from,valueonly)", "main", cwd=cloud.remote
    )
    assert trailer == cloud.main
    assert [i["permissions"] for i in cloud.github.state.issued] == [{"contents": "write"}]


def test_the_promotion_build_opens_the_pr_to_prod(cloud: Cloud) -> None:
    workspace = cloud.deliver(cloud.main, "shallow-clone")
    built_ins = _built_ins(cloud, cloud.main, "main", "promote", "pipelines/promote.yaml")

    runs = run_build(workspace / "pipelines/promote.yaml", built_ins, cloud.worker(workspace))

    assert _statuses(runs) == {
        "workspace": "passed",
        "prepare": "not run: needs Docker",
        "sync": "passed",
        "open-pr": "passed",
    }, _failures(runs)
    assert len(cloud.github.state.pulls) == 1
    pull = cloud.github.state.pulls[0]
    assert pull["head"].startswith("promote/dev-")
    prod = _git("show", f"{pull['head']}:overlays/prod/kustomization.yaml", cwd=cloud.remote)
    assert f"digest: sha256:{'e' * 64}" in prod


def test_a_push_to_protected_main_by_anyone_but_the_bot_is_refused(cloud: Cloud) -> None:
    work = cloud.base / "someone"
    _git("clone", "--quiet", str(cloud.remote), str(work))
    (work / "README.md").write_text("changed without review\n")
    _git("commit", "--quiet", "-am", "Skip review", cwd=work)

    with pytest.raises(subprocess.CalledProcessError) as refused:
        _git("push", "--quiet", "origin", "HEAD:main", cwd=work)

    assert "through a pull request" in str(refused.value.stderr)

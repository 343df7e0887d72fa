"""A local stand-in for a Cloud Build worker: runs a build file's steps the way Cloud Build does.

What it keeps from Cloud Build (https://cloud.google.com/build/docs/build-config-file-schema):
steps start when every step named in `waitFor` has finished (none listed: every earlier step;
`-`: at once) and run concurrently otherwise; substitutions are the trigger's built-ins, the
file's `_VARS` (overridden by the trigger's), expanded with `$$` as a literal `$`, user values
expanded against built-ins when `dynamicSubstitutions` is set, and mapped into the environment
with `automapSubstitutions`; `env`; `secretEnv` from `availableSecrets` through a stand-in for
Secret Manager; each step runs as the user its image runs as, in `/workspace` (or the step's
`dir`), with HOME at `/builder/home`, and the first failing step fails the build.

What it stands in for: the worker's file system layout (`/workspace`, `/builder/home` and the
tools image's `/usr/local/bin` are directories of the test, and paths in `env` and `args` are
mapped onto them), the network (PyPI is a uv cache on disk; github.com is a local bare
repository; Artifact Registry answers through a callable), and Docker: a step whose script
runs `docker` or `gcloud` is not run. `gitops pipelines check` checks those steps statically.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from gitops.pipelines.dockerfiles import parse

ROOT = Path(__file__).resolve().parents[2]
TOOLS_IMAGE = "gitops-tools"
TOOLS_DOCKERFILE = ROOT / "pipelines/tools/Dockerfile"
# Cloud Build's own builders run as root.
ROOT_IMAGES = ("gcr.io/cloud-builders/", "gcr.io/google.com/cloudsdktool/")
NEEDS_WORKER = re.compile(r"^\s*(docker|gcloud)\s", re.M)
_SUBSTITUTION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class BuildRejected(Exception):
    """Cloud Build would refuse to start this build (e.g. an unknown substitution)."""


@dataclass(frozen=True)
class Image:
    """What the runner needs of a step image: its user and its environment."""

    uid: int
    env: Mapping[str, str]


@dataclass
class StepRun:
    id: str
    status: str  # "passed", "failed", "not run: needs Docker", "stand-in", "cancelled"
    output: str = ""


@dataclass
class Worker:
    """The directories that stand in for the worker's, and the network's stand-ins."""

    workspace: Path
    builder_home: Path
    image_bin: Path
    uv_cache: Path
    secrets: Mapping[str, str] = field(default_factory=dict)
    stand_ins: Mapping[str, Callable[[Path], None]] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)


def tools_image_user() -> int:
    """The numeric USER of the tools image's final stage."""
    _, stages = parse(TOOLS_DOCKERFILE.read_text(encoding="utf-8"))
    users = [i.arguments for i in stages[-1].instructions if i.keyword == "USER"]
    return int(users[-1].split(":", 1)[0])


def _tools_image_env() -> dict[str, str]:
    _, stages = parse(TOOLS_DOCKERFILE.read_text(encoding="utf-8"))
    env: dict[str, str] = {}
    for instruction in stages[-1].instructions:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def image_of(name: str) -> Image:
    reference = name.split("@", 1)[0]
    if reference == TOOLS_IMAGE:
        return Image(tools_image_user(), _tools_image_env())
    if reference.startswith(ROOT_IMAGES):
        return Image(0, {})
    raise BuildRejected(f"no stand-in for step image {name!r}: say which user it runs as")


def expand(text: str, values: Mapping[str, str]) -> str:
    """Cloud Build's substitution: `$$` is `$`, `$NAME`/`${NAME}` must be known."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(2)
        if name not in values:
            raise BuildRejected(f"invalid value for substitution `{name}`: it is not defined")
        return values[name]

    return _SUBSTITUTION.sub(replace, text)


def _bash_expand(text: str, values: Mapping[str, str]) -> str:
    """Dynamic substitutions: bash parameter expansion, where an unknown name is empty."""
    return re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
        lambda m: values.get(m.group(1) or m.group(2), ""),
        text,
    )


def substitutions(build: Mapping[str, Any], built_ins: Mapping[str, str]) -> dict[str, str]:
    """Built-ins, then the file's `_VARS` overridden by the trigger's (which are in built_ins)."""
    values = dict(built_ins)
    dynamic = bool((build.get("options") or {}).get("dynamicSubstitutions"))
    for key, value in (build.get("substitutions") or {}).items():
        if key in built_ins:
            continue
        values[key] = _bash_expand(str(value), values) if dynamic else str(value)
    return values


def dependencies(steps: Sequence[Mapping[str, Any]]) -> list[set[int]]:
    """For each step, the indexes of the steps it waits for."""
    ids = {str(step.get("id")): index for index, step in enumerate(steps) if step.get("id")}
    graph: list[set[int]] = []
    for index, step in enumerate(steps):
        wanted = step.get("waitFor")
        if wanted is None:
            graph.append(set(range(index)))
        elif wanted == ["-"]:
            graph.append(set())
        else:
            graph.append({ids[str(name)] for name in wanted})
    return graph


def _worker_path(text: str, worker: Worker) -> str:
    return (
        text.replace("/workspace", str(worker.workspace))
        .replace("/builder/home", str(worker.builder_home))
        .replace("/usr/local/bin", str(worker.image_bin))
    )


def _needs_worker(step: Mapping[str, Any], workspace: Path, args: list[str]) -> bool:
    entrypoint = str(step.get("entrypoint") or "")
    if entrypoint in {"bash", "sh"} and args:
        if args[0] == "-c":
            return bool(NEEDS_WORKER.search(args[1]))
        script = workspace / str(step.get("dir") or "") / args[0]
        return bool(NEEDS_WORKER.search(script.read_text(encoding="utf-8")))
    return entrypoint in {"docker", "gcloud"}


def _secret_env(
    build: Mapping[str, Any], values: Mapping[str, str], worker: Worker
) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in (build.get("availableSecrets") or {}).get("secretManager") or []:
        version = expand(str(entry["versionName"]), values)
        if version not in worker.secrets:
            raise BuildRejected(f"Secret Manager has no {version}")
        found[str(entry["env"])] = worker.secrets[version]
    return found


def run_build(path: Path, built_ins: Mapping[str, str], worker: Worker) -> list[StepRun]:
    """Run one build file; returns every step's outcome in the file's order."""
    build = yaml.safe_load(path.read_text(encoding="utf-8"))
    steps: list[dict[str, Any]] = build["steps"]
    values = substitutions(build, built_ins)
    secrets = _secret_env(build, values, worker)
    automap = bool((build.get("options") or {}).get("automapSubstitutions"))
    graph = dependencies(steps)
    runs = [
        StepRun(str(step.get("id") or f"steps[{i}]"), "cancelled") for i, step in enumerate(steps)
    ]
    lock = threading.Lock()

    def execute(index: int) -> bool:
        step = steps[index]
        run = runs[index]
        if run.id in worker.stand_ins:
            worker.stand_ins[run.id](worker.workspace)
            run.status = "stand-in"
            return True
        image = image_of(expand(str(step["name"]), values))
        args = [_worker_path(expand(str(a), values), worker) for a in step.get("args") or []]
        if _needs_worker(step, worker.workspace, args):
            run.status = "not run: needs Docker"
            return True
        env = {
            "PATH": f"{worker.image_bin}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            **{k: _worker_path(v, worker) for k, v in image.env.items()},
            "HOME": str(worker.builder_home),
            "BUILDER_OUTPUT": str(worker.builder_home.parent / "outputs"),
            **(values if automap else {}),
            **worker.extra_env,
        }
        for entry in step.get("env") or []:
            key, _, value = _worker_path(expand(str(entry), values), worker).partition("=")
            env[key] = value
        for name in step.get("secretEnv") or []:
            env[str(name)] = secrets[str(name)]
        entrypoint = [str(step["entrypoint"])] if step.get("entrypoint") else []
        user = str(image.uid)
        argv = [
            "setpriv",
            "--reuid",
            user,
            "--regid",
            user,
            "--clear-groups",
            "--",
            *entrypoint,
            *args,
        ]
        done = subprocess.run(
            argv,
            cwd=worker.workspace / str(step.get("dir") or ""),
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        with lock:
            run.output = done.stdout + done.stderr
            run.status = "passed" if done.returncode == 0 else "failed"
        return done.returncode == 0

    finished: set[int] = set()
    started: set[int] = set()
    failed = False
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        running: dict[Future[bool], int] = {}
        while True:
            if not failed:
                for index in range(len(steps)):
                    if index not in started and graph[index] <= finished:
                        started.add(index)
                        running[pool.submit(execute, index)] = index
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index = running.pop(future)
                finished.add(index)
                if not future.result():
                    failed = True
    return runs


def new_build_id() -> str:
    return str(uuid.uuid4())


def owned_by(path: Path, uid: int) -> bool:
    return all(os.lstat(p).st_uid == uid for p in [path, *path.rglob("*")] if not p.is_symlink())

"""`gitops bootstrap`: observe the project with each step's check, print the plan, or apply it.

Checks, lookups and commands are real `gcloud`/`kubectl` processes. A secret's value is read once
from the file given for it (or stdin) and written only to the stdin of the command that stores
it: it never reaches an argument list, the plan or the output.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import yaml

from gitops.bootstrap.plan import (
    ANTHROPIC_SECRET,
    ARGOCD_GITHUB_SECRET,
    GITHUB_SECRET,
    Action,
    CloudNameError,
    CloudProject,
    Command,
    Environment,
    PlannedStep,
    RepositoryAccess,
    Step,
    Trigger,
    plan,
    render,
    steps,
)
from gitops.config import ConfigError, load_config
from gitops.errors import GitopsError
from gitops.firestore_indexes import IndexFile, IndexFileError, parse_index_file
from gitops.targets import discover

# The command-line option that names where each secret's value comes from.
SECRET_OPTIONS: Mapping[str, str] = {
    ANTHROPIC_SECRET: "--anthropic-api-key-file",
    GITHUB_SECRET: "--github-app-key-file",
    ARGOCD_GITHUB_SECRET: "--argocd-github-app-key-file",
}
# Where an overlay states its environment's facts (see docs/architecture.md).
ENVIRONMENT_FILE = "platform-environment.yaml"
# The AppProject that names the repository Argo CD reads, and the annotations on it that name
# Argo CD's GitHub App.
REPOSITORY_PROJECT = "apps/argocd/appproject-agent-platform.yaml"
APP_ID_ANNOTATION = "agent-platform.dev/argocd-github-app-id"
INSTALLATION_ANNOTATION = "agent-platform.dev/argocd-github-app-installation-id"
# The composite indexes and TTL fields the platform's Firestore store needs (docs/firestore.md).
FIRESTORE_INDEXES = "apps/agent-platform/firestore.indexes.json"

# Checks are independent reads, so they run side by side; gcloud spends its time waiting.
_CHECK_CONCURRENCY = 8
# A looked-up value goes into a command line or a manifest: one word of these characters only
# (project numbers, addresses, base64 certificates).
_WORD = re.compile(r"[A-Za-z0-9+/=._:-]+")


class BootstrapError(GitopsError):
    """The bootstrap cannot start: a missing tool, a missing or unreadable secret value, a
    project no overlay deploys to."""


@dataclass(frozen=True)
class Options:
    target: CloudProject
    root: Path
    apply: bool
    delivery: bool
    secret_files: Mapping[str, str]  # secret name -> path, or "-" for stdin
    iap_members: Sequence[str] = ()


def triggers_in(root: Path) -> list[Trigger]:
    """The trigger definitions under pipelines/triggers, by the name each declares."""
    found = []
    for path in sorted((root / "pipelines" / "triggers").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.append(Trigger(str(doc.get("name", path.stem)), path.relative_to(root).as_posix()))
    return found


def environments_in(root: Path) -> list[Environment]:
    """Every environment overlay's name, project and region, from its platform-environment."""
    try:
        overlays = [t for t in discover(load_config(root)) if t.is_environment]
    except ConfigError as error:
        raise BootstrapError(str(error)) from error
    found = []
    for overlay in overlays:
        path = overlay.path / ENVIRONMENT_FILE
        try:
            data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data") or {}
            found.append(
                Environment(
                    str(data["ENVIRONMENT"]),
                    CloudProject(str(data["GCP_PROJECT"]), str(data["GCP_REGION"])),
                )
            )
        except (OSError, yaml.YAMLError, AttributeError, KeyError, CloudNameError) as error:
            raise BootstrapError(
                f"{path.relative_to(root)} must be the environment's ConfigMap with ENVIRONMENT, "
                f"GCP_PROJECT and GCP_REGION under data ({type(error).__name__}: {error})"
            ) from error
    return found


def repository_in(root: Path) -> RepositoryAccess:
    """The repository Argo CD reads and the App it reads it as, from the AppProject."""
    try:
        project = yaml.safe_load((root / REPOSITORY_PROJECT).read_text(encoding="utf-8"))
        annotations = project["metadata"].get("annotations") or {}
        return RepositoryAccess(
            str(project["spec"]["sourceRepos"][0]),
            str(annotations.get(APP_ID_ANNOTATION, "")),
            str(annotations.get(INSTALLATION_ANNOTATION, "")),
        )
    except (OSError, yaml.YAMLError, TypeError, KeyError, IndexError) as error:
        raise BootstrapError(
            f"{REPOSITORY_PROJECT} must be the agent-platform AppProject, naming the repository "
            f"in spec.sourceRepos ({type(error).__name__}: {error})"
        ) from error


def check_repository_app(repository: RepositoryAccess) -> None:
    """Refuse to write Argo CD's credential without the App's ids: Argo CD would not say why it
    cannot read the repository until an Application fails."""
    for annotation, value in (
        (APP_ID_ANNOTATION, repository.app_id),
        (INSTALLATION_ANNOTATION, repository.installation_id),
    ):
        if not value.isdigit():
            raise BootstrapError(
                f"{REPOSITORY_PROJECT}: annotation {annotation} is {value!r}, not a number: "
                "write the ids of Argo CD's GitHub App and of its installation (its settings "
                "page; docs/runbook.md, 'Before you start'), commit, and run again"
            )


def firestore_indexes_in(root: Path) -> IndexFile:
    """The indexes and TTL fields the platform declares for its database."""
    try:
        return parse_index_file(json.loads((root / FIRESTORE_INDEXES).read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, IndexFileError) as error:
        raise BootstrapError(f"{FIRESTORE_INDEXES}: {error}") from error


def environment_of(target: CloudProject, environments: Sequence[Environment]) -> Environment:
    """The environment whose overlay deploys to the target's project."""
    for environment in environments:
        if environment.target.project == target.project:
            if environment.target.region != target.region:
                raise BootstrapError(
                    f"overlays/{environment.name}/{ENVIRONMENT_FILE} puts {target.project} in "
                    f"{environment.target.region}, not {target.region}: pass --region "
                    f"{environment.target.region}"
                )
            return environment
    raise BootstrapError(
        f"no overlay deploys to {target.project}: add its overlay first (docs/architecture.md, "
        "'Adding a third environment'), or check --project"
    )


def read_output(argv: Sequence[str], cwd: Path) -> str:
    """What a read-only command prints, stripped; empty when it fails."""
    try:
        result = subprocess.run(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,  # stdin may carry a secret's value: reads never see it
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as error:
        raise BootstrapError(
            f"{argv[0]} is not installed: install the Google Cloud SDK (gcloud, kubectl)"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise BootstrapError(
            f"`{shlex.join(argv)}` did not answer within {error.timeout:.0f}s: check the "
            "network and `gcloud auth list`, then run again"
        ) from error
    return result.stdout.strip() if result.returncode == 0 else ""


@dataclass
class Observer:
    """Reads the project: runs checks, and lookups once each (their values do not change)."""

    read: Callable[[Sequence[str]], str]
    known: dict[tuple[str, ...], str] = field(default_factory=dict)

    def resolve(self, step: Step) -> tuple[Step, str | None]:
        """The step with its lookups filled in, or why one cannot be yet."""
        values = {}
        for lookup in step.lookups:
            value = self.known.get(lookup.argv) or self.read(lookup.argv)
            if not _WORD.fullmatch(value):
                return step, (
                    f"{lookup.placeholder} is not known yet: `{shlex.join(lookup.argv)}` "
                    f"printed {'nothing' if not value else 'more than one word'}"
                )
            self.known[lookup.argv] = value
            values[lookup.placeholder] = value
        return step.resolved(values), None

    def present(self, step: Step) -> bool:
        resolved, missing = self.resolve(step)
        # A resource that names one not there yet cannot exist either.
        return missing is None and bool(self.read(resolved.check))


def observe(all_steps: Sequence[Step], present: Callable[[Step], bool]) -> set[str]:
    """The keys of the steps whose resource already exists."""
    with ThreadPoolExecutor(max_workers=_CHECK_CONCURRENCY) as pool:
        found = list(pool.map(present, all_steps))
    return {step.key for step, exists in zip(all_steps, found, strict=True) if exists}


def read_secrets(needed: set[str], files: Mapping[str, str], stdin: BinaryIO) -> dict[str, bytes]:
    """The values of the secrets the plan will store, from their files or stdin."""
    from_stdin = [name for name in sorted(needed) if files.get(name) == "-"]
    if len(from_stdin) > 1:
        raise BootstrapError(
            f"only one secret can come from stdin, not {', '.join(from_stdin)}: "
            "give the others a file"
        )
    values: dict[str, bytes] = {}
    for name in sorted(needed):
        source = files.get(name)
        if source is None:
            raise BootstrapError(
                f"secret {name} has no value yet: pass {SECRET_OPTIONS[name]} PATH "
                "(or - to read it from stdin)"
            )
        try:
            raw = stdin.read() if source == "-" else Path(source).read_bytes()
        except OSError as error:
            raise BootstrapError(
                f"cannot read {SECRET_OPTIONS[name]} {source}: {error.strerror}"
            ) from error
        # A trailing newline comes from `echo` or an editor, never from the credential.
        value = raw.rstrip(b"\r\n")
        if not value:
            raise BootstrapError(f"the value given for secret {name} is empty")
        values[name] = value
    return values


def run(options: Options, stdin: BinaryIO, out: TextIO) -> int:
    """Dry-run: print the plan (exit 0). Apply: create what is missing (exit 1 if a step fails)."""
    try:
        environments = environments_in(options.root)
        all_steps = steps(
            environment_of(options.target, environments),
            triggers_in(options.root),
            indexes=firestore_indexes_in(options.root),
            environments=environments,
            iap_members=options.iap_members,
            delivery=options.delivery,
            repository=repository_in(options.root) if options.delivery else None,
        )
        observer = Observer(lambda argv: read_output(argv, options.root))
        planned = plan(all_steps, observe(all_steps, observer.present))
        if not options.apply:
            out.write(render(options.target, planned))
            out.write(
                "\nDry run: nothing changed. Run again with --apply to create what is missing.\n"
            )
            return 0
        creating = [p.step for p in planned if p.action is Action.CREATE]
        if any(step.key.startswith("argocd-repository/") for step in creating):
            check_repository_app(repository_in(options.root))
        needed = {secret for step in creating for secret in step.secrets}
        values = read_secrets(needed, options.secret_files, stdin)
        return _apply(planned, values, observer, options.root, out)
    except (BootstrapError, CloudNameError) as error:
        print(f"error: {error}", file=out)
        return 2


def _apply(
    planned: Sequence[PlannedStep],
    values: Mapping[str, bytes],
    observer: Observer,
    root: Path,
    out: TextIO,
) -> int:
    for item in planned:
        if item.action is Action.EXISTS:
            print(f"[exists] {item.step.summary}", file=out)
            continue
        # Resolved and checked again right before: a step may depend on an earlier one of this
        # run (kubectl needs the cluster's credentials) or exist by now.
        step, missing = observer.resolve(item.step)
        if missing is not None:
            print(f"error: {item.step.summary}: {missing}; create it, then run again", file=out)
            return 1
        if observer.read(step.check):
            print(f"[exists] {step.summary}", file=out)
            continue
        print(f"[create] {step.summary}", file=out)
        for command in step.apply:
            print(f"    $ {command}", file=out)
            out.flush()
            if not _execute(command, values, root, out):
                print(
                    f"error: `{shlex.join(command.argv)}` failed; fix the cause and run again: "
                    "steps that exist are skipped",
                    file=out,
                )
                return 1
    print("Bootstrap complete.", file=out)
    return 0


def _execute(command: Command, values: Mapping[str, bytes], root: Path, out: TextIO) -> bool:
    # Output goes straight to the terminal: creating a cluster takes minutes and says so.
    if command.stdin_secret:
        given: bytes | None = values[command.stdin_secret]
    elif command.document is not None:
        document = command.document
        if command.document_secret is not None:
            secret = _read_secret(command.document_secret.argv, root)
            if secret is None:
                print(
                    f"error: `{shlex.join(command.document_secret.argv)}` printed no value",
                    file=out,
                )
                return False
            document = document.replace(
                command.document_secret.placeholder, base64.b64encode(secret).decode()
            )
        given = document.encode()
    else:
        given = None
    result = subprocess.run(
        command.argv,
        cwd=root,
        input=given,
        stdin=None if given is not None else subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0


def _read_secret(argv: Sequence[str], root: Path) -> bytes | None:
    """A secret's value as a command prints it; its output is never shown, its error is."""
    result = subprocess.run(
        argv, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=False, timeout=120
    )
    value = result.stdout.rstrip(b"\r\n")
    return value if result.returncode == 0 and value else None

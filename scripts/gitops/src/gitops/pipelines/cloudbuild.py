"""Checks over Cloud Build files and trigger definitions, before Cloud Build sees them.

Cloud Build only reports a broken build file when a trigger fires; these checks fail the PR
instead. Each check is a pure function over the parsed YAML document.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.cloud.devtools.cloudbuild_v1.types import Build, BuildTrigger
from google.protobuf.json_format import ParseError  # type: ignore[import-untyped]

# Substitutions Cloud Build fills in itself; anything else must start with `_` and be defined.
# https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values
BUILT_IN_SUBSTITUTIONS = frozenset(
    {
        "PROJECT_ID",
        "PROJECT_NUMBER",
        "BUILD_ID",
        "LOCATION",
        "TRIGGER_NAME",
        "TRIGGER_BUILD_CONFIG_PATH",
        "SERVICE_ACCOUNT",
        "SERVICE_ACCOUNT_EMAIL",
        "COMMIT_SHA",
        "REVISION_ID",
        "SHORT_SHA",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
        # Set by pull-request triggers only.
        "_HEAD_BRANCH",
        "_BASE_BRANCH",
        "_HEAD_REPO_URL",
        "_PR_NUMBER",
    }
)

PULL_REQUEST_SUBSTITUTIONS = frozenset(
    {"_HEAD_BRANCH", "_BASE_BRANCH", "_HEAD_REPO_URL", "_PR_NUMBER"}
)

# The script that commits image pins back to git: a push trigger running it must ignore the
# paths it writes, or its own commit starts the next build.
PIN_SCRIPT = "pipelines/scripts/pin-dev.sh"
PINNED_PATHS = "overlays/**"
# What a pull request's build must not do: its code is not reviewed yet, so it neither pushes
# images or pins nor writes the tools image's build cache that main's builds import.
WRITING_SCRIPTS = (PIN_SCRIPT, "pipelines/scripts/build-image.sh")
PREPARE_SCRIPT = "pipelines/scripts/prepare.sh"
CACHE_EXPORT = "export"

REQUIRED_PLATFORM = "linux/amd64"
# The one step image not pulled from a registry: the prepare step builds it from
# pipelines/tools (whose own inputs are pinned) and loads it into the worker's Docker.
TOOLS_IMAGE = "gitops-tools"
DIGEST = "@sha256:"

_SUBSTITUTION = re.compile(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|CREDENTIAL|PRIVATE_KEY", re.I)
_SECRET_VALUE = re.compile(
    r"sk-ant-[A-Za-z0-9_-]{8,}"  # Anthropic
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_SHELL_SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", "\n"})


@dataclass(frozen=True)
class Finding:
    """One problem in one file: the rule that found it and how to fix it."""

    rule: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: [{self.rule}] {self.message}"


def check_build(doc: Mapping[str, Any], path: str) -> list[Finding]:
    """Every check that applies to one Cloud Build file."""
    findings = _schema_findings(Build, doc, path, "cloudbuild-schema")
    if findings:
        return findings
    return [
        *_substitution_findings(doc, path),
        *_wait_for_findings(doc, path),
        *_plain_secret_findings(doc, path),
        *_platform_findings(doc, path),
        *_image_pin_findings(doc, path),
    ]


def check_trigger(
    doc: Mapping[str, Any], path: str, builds: Mapping[str, Mapping[str, Any]]
) -> list[Finding]:
    """Checks for one trigger; `builds` maps repository-relative build file paths to documents."""
    findings = _schema_findings(BuildTrigger, doc, path, "trigger-schema")
    if findings:
        return findings
    filename = doc.get("filename") or (doc.get("gitFileSource") or {}).get("path")
    if filename is None:
        return [
            Finding(
                "trigger-build-file",
                path,
                "set `filename` (or `gitFileSource.path`) to the build file to run",
            )
        ]
    build = builds.get(str(filename))
    if build is None:
        known = ", ".join(sorted(builds)) or "none"
        return [
            Finding(
                "trigger-build-file",
                path,
                f"`filename: {filename}` is not a build file in this repository (known: {known})",
            )
        ]
    return [
        *_trigger_substitution_findings(doc, build, path),
        *_pin_loop_findings(doc, build, path),
        *_pull_request_write_findings(doc, build, path),
    ]


def check_script(text: str, path: str) -> list[Finding]:
    """The platform and image pin checks for a shell script that build steps run."""
    findings: list[Finding] = []
    for command in _shell_commands(text):
        if _is_docker_build(command) and not _names_platform(command):
            findings.append(
                Finding(
                    "cloudbuild-platform",
                    path,
                    f"`docker build` without `--platform {REQUIRED_PLATFORM}`: GKE nodes are amd64",
                )
            )
        if _starts_unpinned_buildkit(command):
            findings.append(
                Finding(
                    "cloudbuild-unpinned-image",
                    path,
                    "`docker buildx create --driver docker-container` runs BuildKit's image at "
                    "whatever its default tag is today: add `--driver-opt "
                    "image=moby/buildkit:vX.Y.Z@sha256:<digest>`",
                )
            )
    return findings


def is_build_document(doc: Mapping[str, Any]) -> bool:
    """A build file lists steps; a trigger definition does not."""
    return "steps" in doc


def _schema_findings(
    message_type: type[Build] | type[BuildTrigger],
    doc: Mapping[str, Any],
    path: str,
    rule: str,
) -> list[Finding]:
    try:
        message_type.from_json(json.dumps(doc, default=str), ignore_unknown_fields=False)
    except ParseError as error:
        first_line = str(error).splitlines()[0]
        return [Finding(rule, path, f"{first_line} (see the Cloud Build API reference)")]
    return []


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, Sequence):
        for item in node:
            yield from _strings(item)


def _references(text: str) -> Iterator[str]:
    """Substitution names used in `text`; `$$` is Cloud Build's escape for a literal `$`."""
    for match in _SUBSTITUTION.finditer(text):
        if match.group(0) == "$$":
            continue
        yield match.group(1) if match.group(1) is not None else match.group(2)


def _substitution_findings(doc: Mapping[str, Any], path: str) -> Iterator[Finding]:
    substitutions: Mapping[str, Any] = doc.get("substitutions") or {}
    options: Mapping[str, Any] = doc.get("options") or {}
    body = {key: value for key, value in doc.items() if key != "substitutions"}
    used: set[str] = set()
    for text in _strings(body):
        for name in _references(text):
            used.add(name)
            yield from _undefined(name, substitutions, path)
    for key, value in substitutions.items():
        if not key.startswith("_"):
            yield Finding(
                "cloudbuild-substitution",
                path,
                f"user substitution `{key}` must start with `_`",
            )
        for name in _references(str(value)):
            used.add(name)
            yield from _undefined(name, substitutions, path)
            if not options.get("dynamicSubstitutions"):
                yield Finding(
                    "cloudbuild-substitution",
                    path,
                    f"`{key}` refers to `${name}`: set `options.dynamicSubstitutions: true`",
                )
    if options.get("substitutionOption") != "ALLOW_LOOSE":
        for key in sorted(set(substitutions) - used):
            yield Finding(
                "cloudbuild-substitution",
                path,
                f"`{key}` is defined but never used: Cloud Build rejects the build; remove it",
            )


def _undefined(name: str, substitutions: Mapping[str, Any], path: str) -> Iterator[Finding]:
    if not _IDENTIFIER.fullmatch(name):
        yield Finding(
            "cloudbuild-substitution",
            path,
            f"`${{{name}}}` is not a substitution: write `$${{{name}}}` for the shell",
        )
    elif name not in substitutions and name not in BUILT_IN_SUBSTITUTIONS:
        hint = "define it under `substitutions`" if name.startswith("_") else "write `$$` for $"
        yield Finding(
            "cloudbuild-substitution",
            path,
            f"`${name}` is neither built in nor defined: {hint}",
        )


def _wait_for_findings(doc: Mapping[str, Any], path: str) -> Iterator[Finding]:
    seen: set[str] = set()
    for index, step in enumerate(doc.get("steps") or []):
        label = step.get("id") or f"steps[{index}]"
        for wanted in step.get("waitFor") or []:
            if wanted != "-" and wanted not in seen:
                yield Finding(
                    "cloudbuild-wait-for",
                    path,
                    f"step `{label}` waits for `{wanted}`, which is not the id of an earlier step",
                )
        step_id = step.get("id")
        if step_id is not None:
            if step_id in seen:
                yield Finding("cloudbuild-wait-for", path, f"step id `{step_id}` is not unique")
            seen.add(step_id)


def _plain_secret_findings(doc: Mapping[str, Any], path: str) -> Iterator[Finding]:
    available = {
        entry.get("env")
        for entry in ((doc.get("availableSecrets") or {}).get("secretManager") or [])
    }
    for index, step in enumerate(doc.get("steps") or []):
        label = step.get("id") or f"steps[{index}]"
        for entry in step.get("env") or []:
            name, _, value = str(entry).partition("=")
            if _SECRET_NAME.search(name) and value and not value.startswith("/"):
                yield Finding(
                    "cloudbuild-plain-secret",
                    path,
                    f"step `{label}` sets `{name}` in plain `env`: take it from Secret Manager "
                    "with `availableSecrets` and `secretEnv`",
                )
        for name in step.get("secretEnv") or []:
            if name not in available:
                yield Finding(
                    "cloudbuild-plain-secret",
                    path,
                    f"step `{label}` asks for secretEnv `{name}`, which `availableSecrets` "
                    "does not provide",
                )
    for text in _strings(doc):
        if _SECRET_VALUE.search(text):
            yield Finding(
                "cloudbuild-plain-secret",
                path,
                "a value looks like a credential: remove it, rotate it, and store it in "
                "Secret Manager",
            )


def _platform_findings(doc: Mapping[str, Any], path: str) -> Iterator[Finding]:
    for index, step in enumerate(doc.get("steps") or []):
        label = step.get("id") or f"steps[{index}]"
        for command in _step_commands(step):
            if _is_docker_build(command) and not _names_platform(command):
                yield Finding(
                    "cloudbuild-platform",
                    path,
                    f"step `{label}` runs `docker build` without `--platform "
                    f"{REQUIRED_PLATFORM}`: GKE nodes are amd64",
                )


def _image_pin_findings(doc: Mapping[str, Any], path: str) -> Iterator[Finding]:
    steps: Sequence[Mapping[str, Any]] = doc.get("steps") or []
    prepared = {
        index
        for index, step in enumerate(steps)
        if any(PREPARE_SCRIPT in text for text in _strings(step.get("args") or []))
    }
    for index, step in enumerate(steps):
        label = step.get("id") or f"steps[{index}]"
        image = str(step.get("name", ""))
        if DIGEST in image:
            continue
        if image == TOOLS_IMAGE:
            if prepared & _runs_after(steps, index):
                continue
            problem = (
                f"is built by {PREPARE_SCRIPT}, and no step this one waits for runs it: "
                "wait for the prepare step"
            )
        else:
            problem = (
                "has no digest, so the build runs whatever its tag points at today: pin it as "
                "`name:tag@sha256:<digest>`"
            )
        yield Finding(
            "cloudbuild-unpinned-image", path, f"step `{label}`: image `{image}` {problem}"
        )


def _runs_after(steps: Sequence[Mapping[str, Any]], index: int) -> set[int]:
    """Indexes of the steps that finish before step `index` starts, by Cloud Build's waitFor."""
    ids = {step.get("id"): position for position, step in enumerate(steps) if step.get("id")}
    done: set[int] = set()
    pending = [index]
    while pending:
        position = pending.pop()
        wait_for = steps[position].get("waitFor")
        if wait_for is None:  # no waitFor: every earlier step
            direct = set(range(position))
        else:  # `-` names no step: at once
            direct = {ids[name] for name in wait_for if name in ids}
        for earlier in direct - done:
            done.add(earlier)
            pending.append(earlier)
    return done


def _step_commands(step: Mapping[str, Any]) -> Iterator[list[str]]:
    """The argv of every command a step runs, whether given as args or as a shell script."""
    args = [str(arg) for arg in step.get("args") or []]
    entrypoint = str(step.get("entrypoint") or "")
    scripts = [str(step["script"])] if step.get("script") else []
    if entrypoint in {"bash", "sh", "/bin/bash", "/bin/sh"} and "-c" in args:
        scripts.extend(args[args.index("-c") + 1 :][:1])
    elif entrypoint in {"", "docker"} and "docker" in str(step.get("name", "")):
        yield ["docker", *args]
    for script in scripts:
        yield from _shell_commands(script)


def _shell_commands(script: str) -> Iterator[list[str]]:
    lexer = shlex.shlex(script.replace("\\\n", " "), posix=True, punctuation_chars=";&|()\n")
    lexer.whitespace = " \t\r"
    lexer.whitespace_split = True
    command: list[str] = []
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: bash refuses the script before any docker build
        return
    for token in tokens:
        if token in _SHELL_SEPARATORS or set(token) <= set(";&|()\n"):
            if command:
                yield command
            command = []
        else:
            command.append(token)
    if command:
        yield command


def _is_docker_build(command: list[str]) -> bool:
    if not command or command[0] != "docker":
        return False
    words = [word for word in command[1:] if not word.startswith("-")]
    return words[:1] == ["build"] or words[:2] in (["buildx", "build"], ["image", "build"])


def _starts_unpinned_buildkit(command: list[str]) -> bool:
    words = [word for word in command[1:] if not word.startswith("-")]
    if command[:1] != ["docker"] or words[:2] != ["buildx", "create"]:
        return False
    pairs = list(zip(command, [*command[1:], ""], strict=True))
    container = any(
        word == "--driver=docker-container"
        or (word == "--driver" and following == "docker-container")
        for word, following in pairs
    )
    options = [following for word, following in pairs if word == "--driver-opt"]
    options += [word.partition("=")[2] for word, _ in pairs if word.startswith("--driver-opt=")]
    pinned = any(option.startswith("image=") and DIGEST in option for option in options)
    return container and not pinned


def _names_platform(command: list[str]) -> bool:
    pairs = zip(command, [*command[1:], ""], strict=True)
    return any(
        word == f"--platform={REQUIRED_PLATFORM}"
        or (word == "--platform" and following == REQUIRED_PLATFORM)
        for word, following in pairs
    )


def _trigger_substitution_findings(
    trigger: Mapping[str, Any], build: Mapping[str, Any], path: str
) -> Iterator[Finding]:
    used = {name for text in _strings(build) for name in _references(text)}
    pull_request_only = sorted(used & PULL_REQUEST_SUBSTITUTIONS)
    if pull_request_only and not (trigger.get("github") or {}).get("pullRequest"):
        yield Finding(
            "trigger-build-file",
            path,
            f"the build uses {', '.join(pull_request_only)}, which only pull-request triggers "
            "set: run it from a `github.pullRequest` trigger",
        )
    defined = build.get("substitutions") or {}
    loose = (build.get("options") or {}).get("substitutionOption") == "ALLOW_LOOSE"
    for key in sorted(trigger.get("substitutions") or {}):
        if key not in defined and not loose:
            yield Finding(
                "trigger-build-file",
                path,
                f"trigger sets `{key}`, which its build file neither defines nor uses",
            )


def _pin_loop_findings(
    trigger: Mapping[str, Any], build: Mapping[str, Any], path: str
) -> Iterator[Finding]:
    pushes = bool((trigger.get("github") or {}).get("push"))
    pins = any(PIN_SCRIPT in text for text in _strings(build))
    if pushes and pins and PINNED_PATHS not in (trigger.get("ignoredFiles") or []):
        yield Finding(
            "trigger-pin-loop",
            path,
            f"this push trigger runs {PIN_SCRIPT}, which commits to `overlays/`: add "
            f"`{PINNED_PATHS}` to `ignoredFiles` or each pin starts another build",
        )


def _pull_request_write_findings(
    trigger: Mapping[str, Any], build: Mapping[str, Any], path: str
) -> Iterator[Finding]:
    if not (trigger.get("github") or {}).get("pullRequest"):
        return
    for index, step in enumerate(build.get("steps") or []):
        label = step.get("id") or f"steps[{index}]"
        args = [str(arg) for arg in step.get("args") or []]
        text = " ".join(args)
        for script in WRITING_SCRIPTS:
            if script in text:
                yield Finding(
                    "trigger-pull-request-writes",
                    path,
                    f"step `{label}` of a pull-request build runs {script}: unreviewed code must "
                    "not push images or pins; run it from the push trigger's build only",
                )
        if PREPARE_SCRIPT in text and CACHE_EXPORT in args:
            yield Finding(
                "trigger-pull-request-writes",
                path,
                f"step `{label}` of a pull-request build exports the build cache main's builds "
                "import: pass `import` to prepare.sh",
            )

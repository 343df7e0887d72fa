"""Static checks over Dockerfiles: what a reviewer would otherwise have to catch by eye.

No Docker engine is needed: the file is split into instructions the way the builder does
(continuation lines joined, comments dropped) and each rule reads the instructions.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

from gitops.pipelines.cloudbuild import Finding

_ROOT_USERS = frozenset({"root", "0"})
_URL = re.compile(r"^(https?|ftp)://|^git@", re.I)
_OPTIONS_WITH_VALUES = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url"}
)
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_DIRECTIVE = re.compile(r"^#\s*[a-z]+\s*=", re.I)
_SYNTAX = re.compile(r"^#\s*syntax\s*=\s*(\S+)", re.I)
DIGEST = "@sha256:"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the build stages of a Dockerfile."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in _instructions(text):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0] if words else "", name, instruction.line))
        elif stages:
            stages[-1].instructions.append(instruction)
        elif instruction.keyword == "ARG":
            key, _, default = instruction.arguments.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
    return global_args, stages


def check_dockerfile(
    text: str, path: str, build_contexts: frozenset[str] = frozenset()
) -> list[Finding]:
    """Every Dockerfile rule over one file."""
    global_args, stages = parse(text)
    if not stages:
        return [Finding("dockerfile-unpinned-base", path, "no FROM instruction")]
    return [
        *_syntax_findings(text, path),
        *_base_findings(global_args, stages, path),
        *_copy_from_findings(global_args, stages, path, build_contexts),
        *_user_findings(stages[-1], path),
        *_add_url_findings(stages, path),
        *_install_findings(stages, path),
    ]


def _instructions(text: str) -> Iterator[Instruction]:
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].rstrip())
            continue
        pending.append(stripped)
        logical = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = logical.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip(), start)
    if pending:
        logical = " ".join(pending)
        keyword, _, arguments = logical.partition(" ")
        yield Instruction(keyword.upper(), arguments.strip(), start)


def _expand(value: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda match: variables.get(match.group(1), match.group(0)), value)


def _syntax_findings(text: str, path: str) -> Iterator[Finding]:
    """The `# syntax=` frontend is an image BuildKit pulls and runs, so it is pinned like one."""
    # Parser directives only count before the first comment, blank line or instruction.
    for number, line in enumerate(text.splitlines(), start=1):
        if not _DIRECTIVE.match(line):
            return
        directive = _SYNTAX.match(line)
        if directive is not None and DIGEST not in directive.group(1):
            yield Finding(
                "dockerfile-unpinned-base",
                path,
                f"line {number}: the syntax frontend `{directive.group(1)}` has no digest: "
                f"pin it as `{directive.group(1)}@sha256:<digest>`",
            )


def _base_findings(
    global_args: dict[str, str], stages: list[Stage], path: str
) -> Iterator[Finding]:
    earlier: set[str] = set()
    for stage in stages:
        image = _expand(stage.base, global_args)
        if image not in earlier and image != "scratch":
            if "$" in image:
                problem = "names an ARG without a default"
            elif DIGEST not in image:
                problem = _unpinned_tag(image)
            else:
                problem = ""
            if problem:
                yield Finding(
                    "dockerfile-unpinned-base",
                    path,
                    f"line {stage.line}: base image `{image}` {problem}: pin it by digest, "
                    "`name:tag@sha256:<digest>`, so a rebuild starts from the reviewed image",
                )
        if stage.name:
            earlier.add(stage.name)


def _copy_from_findings(
    global_args: dict[str, str], stages: list[Stage], path: str, build_contexts: frozenset[str]
) -> Iterator[Finding]:
    # A named build context (`docker buildx build --build-context NAME=DIR`) takes precedence
    # over an image of that name, so `COPY --from=NAME` copies local files, not an image.
    names = {stage.name for stage in stages if stage.name} | build_contexts
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword != "COPY":
                continue
            for word in instruction.arguments.split():
                source = word.removeprefix("--from=")
                if source == word or source in names or source.isdigit():
                    continue
                image = _expand(source, global_args)
                if DIGEST not in image:
                    yield Finding(
                        "dockerfile-unpinned-base",
                        path,
                        f"line {instruction.line}: `COPY --from={image}` pulls an image that "
                        f"{_unpinned_tag(image)}: pin it as `name:tag@sha256:<digest>`",
                    )


def _unpinned_tag(image: str) -> str:
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag:
        return "has neither tag nor digest, so it means whatever `latest` is today"
    if tag == "latest":
        return "is `latest`"
    return "has a tag but no digest, and tags move"


def _user_findings(final: Stage, path: str) -> Iterator[Finding]:
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        yield Finding(
            "dockerfile-root-user",
            path,
            f"the final stage (line {final.line}) has no USER: add `USER 10001` so the "
            "container does not run as root",
        )
        return
    user = users[-1].arguments.split(":", 1)[0].strip()
    if user in _ROOT_USERS:
        yield Finding(
            "dockerfile-root-user",
            path,
            f"line {users[-1].line}: the final USER is root: switch to a numeric non-root "
            "user such as 10001",
        )


def _add_url_findings(stages: list[Stage], path: str) -> Iterator[Finding]:
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword != "ADD":
                continue
            sources = [w for w in shlex.split(instruction.arguments) if not w.startswith("--")]
            for source in sources[:-1]:
                if _URL.search(source):
                    yield Finding(
                        "dockerfile-add-url",
                        path,
                        f"line {instruction.line}: ADD fetches `{source}` at build time: "
                        "copy a pinned artifact from a build stage or a verified download",
                    )


def _install_findings(stages: list[Stage], path: str) -> Iterator[Finding]:
    for stage in stages:
        for instruction in stage.instructions:
            if instruction.keyword != "RUN":
                continue
            words = instruction.arguments.replace(";", " ; ").replace("&&", " && ").split()
            for index, word in enumerate(words):
                if word != "sync" or index == 0 or words[index - 1] != "uv":
                    continue
                command = _until_separator(words[index + 1 :])
                if not {"--frozen", "--locked"} & set(command):
                    yield _unfrozen(instruction, path, "`uv sync` without `--frozen`")
                if "--no-dev" not in command:
                    yield _unfrozen(instruction, path, "`uv sync` without `--no-dev`")
            yield from _pip_findings(words, instruction, path)
            yield from _apt_findings(words, instruction, path)


def _pip_findings(words: list[str], instruction: Instruction, path: str) -> Iterator[Finding]:
    for index, word in enumerate(words):
        if word != "install" or index == 0 or words[index - 1] != "pip":
            continue
        command = _until_separator(words[index + 1 :])
        packages = [
            word
            for position, word in enumerate(command)
            if not word.startswith("-")
            and (position == 0 or command[position - 1] not in _OPTIONS_WITH_VALUES)
        ]
        requirements = "-r" in command or "--requirement" in command
        if requirements and "--require-hashes" not in command:
            yield _unfrozen(instruction, path, "`pip install -r` without `--require-hashes`")
        for package in packages:
            if "==" not in package and "@" not in package and not package.startswith((".", "/")):
                yield _unfrozen(instruction, path, f"`pip install {package}` without `==`")


def _apt_findings(words: list[str], instruction: Instruction, path: str) -> Iterator[Finding]:
    for index, word in enumerate(words):
        if word != "install" or index == 0 or words[index - 1] not in {"apt-get", "apt"}:
            continue
        for package in _until_separator(words[index + 1 :]):
            if not package.startswith("-") and "=" not in package:
                yield _unfrozen(
                    instruction,
                    path,
                    f"`apt-get install {package}` without `={{version}}` (apt-cache policy "
                    f"{package} names the candidate)",
                )


def _until_separator(words: list[str]) -> list[str]:
    command: list[str] = []
    for word in words:
        if word in {";", "&&", "||", "|"}:
            break
        command.append(word)
    return command


def _unfrozen(instruction: Instruction, path: str, what: str) -> Finding:
    return Finding(
        "dockerfile-unfrozen-install",
        path,
        f"line {instruction.line}: {what}: install exactly what uv.lock (or a pinned version) says",
    )

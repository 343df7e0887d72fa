"""`gitops bootstrap`: observe the project with each step's check, print the plan, or apply it.

Checks and commands are real `gcloud`/`kubectl` processes. A secret's value is read once from
the file given for it (or stdin) and written only to the stdin of the command that stores it:
it never reaches an argument list, the plan or the output.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import yaml

from gitops.bootstrap import (
    ANTHROPIC_SECRET,
    GITHUB_SECRET,
    Action,
    Command,
    PlannedStep,
    Step,
    Target,
    Trigger,
    plan,
    render,
    steps,
)

# The command-line option that names where each secret's value comes from.
SECRET_OPTIONS: Mapping[str, str] = {
    ANTHROPIC_SECRET: "--anthropic-api-key-file",
    GITHUB_SECRET: "--github-token-file",
}

# Checks are independent reads, so they run side by side; gcloud spends its time waiting.
_CHECK_CONCURRENCY = 8


class BootstrapError(Exception):
    """The bootstrap cannot start: a missing tool, a missing or unreadable secret value."""


@dataclass(frozen=True)
class Options:
    target: Target
    root: Path
    apply: bool
    delivery: bool
    secret_files: Mapping[str, str]  # secret name -> path, or "-" for stdin


def triggers_in(root: Path) -> list[Trigger]:
    """The trigger definitions under pipelines/triggers, by the name each declares."""
    found = []
    for path in sorted((root / "pipelines" / "triggers").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.append(Trigger(str(doc.get("name", path.stem)), path.relative_to(root).as_posix()))
    return found


def is_present(check: Sequence[str], cwd: Path) -> bool:
    """A resource exists when its check succeeds and prints something."""
    try:
        result = subprocess.run(
            check,
            cwd=cwd,
            stdin=subprocess.DEVNULL,  # stdin may carry a secret's value: checks never see it
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as error:
        raise BootstrapError(
            f"{check[0]} is not installed: install the Google Cloud SDK (gcloud, kubectl)"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise BootstrapError(
            f"`{shlex.join(check)}` did not answer within {error.timeout:.0f}s: check the "
            "network and `gcloud auth list`, then run again"
        ) from error
    return result.returncode == 0 and bool(result.stdout.strip())


def observe(all_steps: Sequence[Step], present: Callable[[Sequence[str]], bool]) -> set[str]:
    """The keys of the steps whose resource already exists."""
    with ThreadPoolExecutor(max_workers=_CHECK_CONCURRENCY) as pool:
        found = list(pool.map(lambda step: present(step.check), all_steps))
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
    all_steps = steps(options.target, triggers_in(options.root), delivery=options.delivery)
    try:
        planned = plan(all_steps, observe(all_steps, lambda c: is_present(c, options.root)))
        if not options.apply:
            out.write(render(options.target, planned))
            out.write(
                "\nDry run: nothing changed. Run again with --apply to create what is missing.\n"
            )
            return 0
        needed = {s for p in planned if p.action is Action.CREATE for s in p.step.secrets}
        values = read_secrets(needed, options.secret_files, stdin)
        return _apply(planned, values, options.root, out)
    except BootstrapError as error:
        print(f"error: {error}", file=out)
        return 2


def _apply(
    planned: Sequence[PlannedStep], values: Mapping[str, bytes], root: Path, out: TextIO
) -> int:
    for item in planned:
        # Checked again right before: a step may depend on an earlier one of this run (kubectl
        # needs the cluster's credentials) or exist by now.
        if item.action is Action.EXISTS or is_present(item.step.check, root):
            print(f"[exists] {item.step.summary}", file=out)
            continue
        print(f"[create] {item.step.summary}", file=out)
        for command in item.step.apply:
            print(f"    $ {command}", file=out)
            out.flush()
            if not _execute(command, values, root):
                print(
                    f"error: `{command}` failed; fix the cause and run again: "
                    "steps that exist are skipped",
                    file=out,
                )
                return 1
    print("Bootstrap complete.", file=out)
    return 0


def _execute(command: Command, values: Mapping[str, bytes], root: Path) -> bool:
    # Output goes straight to the terminal: creating a cluster takes minutes and says so.
    secret = values[command.stdin_secret] if command.stdin_secret else None
    result = subprocess.run(
        command.argv,
        cwd=root,
        input=secret,
        stdin=None if secret is not None else subprocess.DEVNULL,
        check=False,
    )
    return result.returncode == 0

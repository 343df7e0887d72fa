"""The subcommands the delivery pipelines run: `pipelines check`, `bootstrap`, `pr-comment` and
`pr-open`. Registered in `gitops.cli.COMMANDS` like every other subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gitops import bootstrap_shell, pr_comment
from gitops.bootstrap import ANTHROPIC_SECRET, GITHUB_SECRET, Target, TargetError, iap_member
from gitops.config import find_root
from gitops.github import DEFAULT_API_URL, GitHub, GitHubError

CLEAN, TOOL_ERROR = 0, 2
TOKEN_VARIABLE = "GITHUB_TOKEN"  # noqa: S105 - the variable's name

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root).resolve() if args.root else find_root(Path.cwd())


# --- pipelines check ----------------------------------------------------------------------------


def run_pipelines_check(args: argparse.Namespace) -> int:
    # Imported here: the Cloud Build types take a second to load, which no other command needs.
    from gitops import pipelines_check

    return pipelines_check.run(_root(args), [Path(p) for p in args.paths], sys.stdout)


def add_pipelines(commands: Commands) -> None:
    parser = commands.add_parser("pipelines", help="check Cloud Build files, triggers, Dockerfiles")
    actions = parser.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check",
        help="parse build files and triggers into the Cloud Build types and check substitutions, "
        "step ids, secrets, platforms and Dockerfiles",
    )
    check.add_argument("paths", nargs="*", help="files to check (default: the repository's)")
    check.set_defaults(run=run_pipelines_check)


# --- bootstrap ----------------------------------------------------------------------------------


def run_bootstrap(args: argparse.Namespace) -> int:
    try:
        target = Target(args.project, args.region)
        members = [iap_member(member) for member in args.iap_member]
    except TargetError as error:
        print(f"gitops bootstrap: {error}", file=sys.stderr)
        return TOOL_ERROR
    files = {
        secret: value
        for secret, value in (
            (ANTHROPIC_SECRET, args.anthropic_api_key_file),
            (GITHUB_SECRET, args.github_token_file),
        )
        if value is not None
    }
    options = bootstrap_shell.Options(
        target=target,
        root=_root(args),
        apply=args.apply,
        delivery=not args.environment_only,
        secret_files=files,
        iap_members=members,
    )
    return bootstrap_shell.run(options, sys.stdin.buffer, sys.stdout)


def add_bootstrap(commands: Commands) -> None:
    parser = commands.add_parser(
        "bootstrap",
        help="set up a GCP project: print the plan (default) or create what is missing (--apply)",
    )
    parser.add_argument("--project", required=True, help="GCP project id")
    parser.add_argument("--region", required=True, help="GCP region, e.g. asia-northeast3")
    parser.add_argument("--apply", action="store_true", help="create what the plan says")
    parser.add_argument(
        "--environment-only",
        action="store_true",
        help="a further environment's project: no registry, pipelines or Argo CD",
    )
    parser.add_argument(
        "--iap-member",
        action="append",
        default=[],
        metavar="MEMBER",
        help="who IAP lets through to prod, e.g. group:team@example.com (repeatable)",
    )
    parser.add_argument(
        bootstrap_shell.SECRET_OPTIONS[ANTHROPIC_SECRET],
        metavar="PATH",
        help="file holding the Anthropic API key, or - for stdin (only read when it is missing)",
    )
    parser.add_argument(
        bootstrap_shell.SECRET_OPTIONS[GITHUB_SECRET],
        metavar="PATH",
        help="file holding the pipeline bot's GitHub token, or - for stdin",
    )
    parser.set_defaults(run=run_bootstrap)


# --- pr-comment / pr-open -----------------------------------------------------------------------


def _github(args: argparse.Namespace) -> GitHub | None:
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        print(
            f"gitops {args.command}: set {TOKEN_VARIABLE} (in Cloud Build: secretEnv from "
            "Secret Manager); tokens are never taken from the command line",
            file=sys.stderr,
        )
        return None
    try:
        return GitHub(args.api_url, args.repo, token)
    except ValueError as error:
        print(f"gitops {args.command}: {error}", file=sys.stderr)
        return None


def _body(args: argparse.Namespace) -> str:
    return Path(args.body_file).read_text(encoding="utf-8")


def run_pr_comment(args: argparse.Namespace) -> int:
    github = _github(args)
    if github is None:
        return TOOL_ERROR
    try:
        print(pr_comment.post(github, args.pr, _body(args), args.marker))
    except GitHubError as error:
        print(f"gitops pr-comment: {error}", file=sys.stderr)
        return TOOL_ERROR
    return CLEAN


def run_pr_open(args: argparse.Namespace) -> int:
    github = _github(args)
    if github is None:
        return TOOL_ERROR
    try:
        pull = github.open_pull_request(args.head, args.base, args.title, _body(args))
    except GitHubError as error:
        print(f"gitops pr-open: {error}", file=sys.stderr)
        return TOOL_ERROR
    print(f"#{pull.number} {pull.url}")
    return CLEAN


def _add_github_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-url", default=DEFAULT_API_URL, help="GitHub REST API base URL")
    parser.add_argument("--repo", required=True, help="owner/name")
    parser.add_argument("--body-file", required=True, help="Markdown file holding the text")


def add_pr_comment(commands: Commands) -> None:
    parser = commands.add_parser(
        "pr-comment", help="create the PR's comment, or update it in place (token: GITHUB_TOKEN)"
    )
    _add_github_arguments(parser)
    parser.add_argument("--pr", type=int, required=True, help="pull request number")
    parser.add_argument(
        "--marker",
        default=pr_comment.DEFAULT_MARKER,
        help="hidden text that identifies the comment to update",
    )
    parser.set_defaults(run=run_pr_comment)


def add_pr_open(commands: Commands) -> None:
    parser = commands.add_parser(
        "pr-open", help="open a pull request, or show the one open for --head (GITHUB_TOKEN)"
    )
    _add_github_arguments(parser)
    parser.add_argument("--head", required=True, help="branch with the change")
    parser.add_argument("--base", required=True, help="branch to merge into")
    parser.add_argument("--title", required=True)
    parser.set_defaults(run=run_pr_open)


COMMANDS: list[Callable[[Commands], None]] = [
    add_pipelines,
    add_bootstrap,
    add_pr_comment,
    add_pr_open,
]

"""The subcommands the delivery pipelines run: `pipelines check`, `pr-comment`, `pr-open` and
`github-token`, registered in `gitops.cli.COMMANDS` like every other subcommand."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gitops.config import root_given
from gitops.pipelines import github_app, pr_comment
from gitops.pipelines.github import DEFAULT_API_URL, GitHub

CLEAN, TOOL_ERROR = 0, 2
TOKEN_VARIABLE = "GITHUB_TOKEN"  # noqa: S105 - the variable's name
APP_KEY_VARIABLE = "GITHUB_APP_KEY"

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


# --- pipelines check ----------------------------------------------------------------------------


def run_pipelines_check(args: argparse.Namespace) -> int:
    # Imported here: the Cloud Build types take a second to load, which no other command needs.
    from gitops.pipelines import check

    return check.run(root_given(args.root), [Path(p) for p in args.paths], sys.stdout)


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
    print(pr_comment.post(github, args.pr, _body(args), args.marker))
    return CLEAN


def run_pr_open(args: argparse.Namespace) -> int:
    github = _github(args)
    if github is None:
        return TOOL_ERROR
    pull = github.open_pull_request(args.head, args.base, args.title, _body(args))
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


# --- github-token -------------------------------------------------------------------------------


def run_github_token(args: argparse.Namespace) -> int:
    key = os.environ.get(APP_KEY_VARIABLE)
    if not key:
        print(
            f"gitops github-token: set {APP_KEY_VARIABLE} to the GitHub App's private key (in "
            "Cloud Build: secretEnv from Secret Manager); keys are never taken from the command "
            "line",
            file=sys.stderr,
        )
        return TOOL_ERROR
    try:
        permissions = github_app.parse_permissions(args.permissions)
        token = github_app.installation_token(
            args.api_url,
            args.app_id,
            args.installation_id,
            key.encode(),
            args.repo,
            permissions,
            now=int(time.time()),
        )
    except ValueError as error:
        print(f"gitops github-token: {error}", file=sys.stderr)
        return TOOL_ERROR
    # Only ever read by `$(...)` in pipelines/scripts/as-app.sh, never printed to a log.
    print(token)
    return CLEAN


def add_github_token(commands: Commands) -> None:
    parser = commands.add_parser(
        "github-token",
        help="print a GitHub App installation token for one repository (key: GITHUB_APP_KEY)",
    )
    parser.add_argument("--api-url", default=DEFAULT_API_URL, help="GitHub REST API base URL")
    parser.add_argument("--app-id", required=True, help="the App's numeric id")
    parser.add_argument("--installation-id", required=True, help="its installation's id")
    parser.add_argument("--repo", required=True, help="owner/name: the only repository it may use")
    parser.add_argument("permissions", nargs="+", help="what the token may do, e.g. contents=write")
    parser.set_defaults(run=run_github_token)

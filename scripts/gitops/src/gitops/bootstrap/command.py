"""`gitops bootstrap`: its command-line options, turned into the shell's Options."""

from __future__ import annotations

import argparse
import sys

from gitops.bootstrap import shell
from gitops.bootstrap.plan import (
    ANTHROPIC_SECRET,
    ARGOCD_GITHUB_SECRET,
    GITHUB_SECRET,
    CloudProject,
    iap_member,
)
from gitops.config import root_given


def run_bootstrap(args: argparse.Namespace) -> int:
    # A CloudNameError reaches the CLI, which prints it and exits 2.
    target = CloudProject(args.project, args.region)
    members = [iap_member(member) for member in args.iap_member]
    files = {
        secret: value
        for secret, value in (
            (ANTHROPIC_SECRET, args.anthropic_api_key_file),
            (GITHUB_SECRET, args.github_app_key_file),
            (ARGOCD_GITHUB_SECRET, args.argocd_github_app_key_file),
        )
        if value is not None
    }
    options = shell.Options(
        target=target,
        root=root_given(args.root),
        apply=args.apply,
        delivery=not args.environment_only,
        secret_files=files,
        iap_members=members,
    )
    return shell.run(options, sys.stdin.buffer, sys.stdout)


def add_bootstrap(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        shell.SECRET_OPTIONS[ANTHROPIC_SECRET],
        metavar="PATH",
        help="file holding the Anthropic API key, or - for stdin (only read when it is missing)",
    )
    parser.add_argument(
        shell.SECRET_OPTIONS[GITHUB_SECRET],
        metavar="PATH",
        help="the pipeline GitHub App's private key file (.pem), or - for stdin",
    )
    parser.add_argument(
        shell.SECRET_OPTIONS[ARGOCD_GITHUB_SECRET],
        metavar="PATH",
        help="Argo CD's read-only GitHub App's private key file (.pem), or - for stdin",
    )
    parser.set_defaults(run=run_bootstrap)

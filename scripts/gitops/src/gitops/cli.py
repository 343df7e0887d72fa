"""The `gitops` command: one small function per subcommand, registered in COMMANDS.

Exit codes: 0 clean, 1 findings (or changes refused), 2 tool or usage error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from gitops import cost, diffing, kustomization_images, prices, secret_scan, snapshot
from gitops.bootstrap.command import add_bootstrap
from gitops.config import Config, ConfigError, load_config, root_given
from gitops.errors import GitopsError
from gitops.pipelines import commands as pipeline_commands
from gitops.policy import CATALOGUE
from gitops.render import Rendered, default_jobs, render_all
from gitops.reports import FORMATS
from gitops.targets import Target, discover, from_paths
from gitops.toolchain import find_tool
from gitops.validation import Tools, validate

CLEAN, FINDINGS, TOOL_ERROR = 0, 1, 2


# What means "the tool could not do its job": its own errors, each with a message saying what to
# do, and the file system's answer about a path the user gave (--output, --body-file).
TOOL_ERRORS = (GitopsError, OSError)


def _config(args: argparse.Namespace) -> Config:
    return load_config(root_given(args.root))


def _targets(config: Config, paths: Sequence[str]) -> list[Target]:
    return from_paths(config, [Path(p) for p in paths]) if paths else discover(config)


def _positive(text: str) -> int:
    """A count of at least one, for argparse: a usage error (exit 2) otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


# --- render -------------------------------------------------------------------------------------


def run_render(args: argparse.Namespace) -> int:
    config = _config(args)
    rendered = render_all(_targets(config, args.paths), find_tool("kustomize", config.root))
    failed = False
    for item in rendered:
        if item.error is not None:
            print(f"{item.target.name}: {item.error}", file=sys.stderr)
            failed = True
        elif args.output_dir:
            out = Path(args.output_dir) / f"{item.target.name.replace('/', '_')}.yaml"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(item.text, encoding="utf-8")
        else:
            sys.stdout.write(f"# target: {item.target.name}\n---\n{item.text}")
    return FINDINGS if failed else CLEAN


def add_render(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("render", help="render every overlay (or the paths named)")
    parser.add_argument("paths", nargs="*", help="kustomization directories or manifest files")
    parser.add_argument("--output-dir", help="write <target>.yaml files here instead of stdout")
    parser.set_defaults(run=run_render)


# --- validate -----------------------------------------------------------------------------------


def run_validate(args: argparse.Namespace) -> int:
    if args.list_rules:
        return run_rules(args)
    reports = [_report_option(spec) for spec in args.report]  # before the run, not after
    config = _config(args)
    tools = Tools(*(find_tool(name, config.root) for name in Tools.__dataclass_fields__))
    report = validate(
        config,
        _targets(config, args.paths),
        tools=tools,
        jobs=args.jobs,
        allow_remote=args.allow_remote_bases,
    )
    _emit(FORMATS[args.format](report), None)
    for kind, path in reports:
        _emit(FORMATS[kind](report), str(path))
    return CLEAN if report.clean else FINDINGS


def _report_option(spec: str) -> tuple[str, Path]:
    """FORMAT=PATH checked up front: a known format and a directory that can take the file."""
    kind, _, path = spec.partition("=")
    if kind not in FORMATS or not path:
        raise ConfigError(f"--report {spec!r}: use FORMAT=PATH with FORMAT in {sorted(FORMATS)}")
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--report {spec!r}: {path} is a directory; name a file")
    parent = target.parent
    if not parent.is_dir():
        raise ConfigError(f"--report {spec!r}: directory {parent} does not exist; create it")
    return kind, target


def add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "validate", help="render, then check schemas (kubeconform) and the policy catalogue"
    )
    parser.add_argument("paths", nargs="*", help="kustomization directories or manifest files")
    parser.add_argument("--format", choices=sorted(FORMATS), default="text")
    parser.add_argument(
        "--report",
        action="append",
        default=[],
        metavar="FORMAT=PATH",
        help="also write the report in FORMAT to PATH (repeatable), e.g. junit=report.xml",
    )
    parser.add_argument("--jobs", type=_positive, default=default_jobs(), help="parallel renders")
    parser.add_argument("--list-rules", action="store_true", help="print the rule catalogue")
    parser.add_argument(
        "--allow-remote-bases",
        action="store_true",
        help="let kustomize fetch remote bases pinned with ?ref=<commit> (refused otherwise)",
    )
    parser.set_defaults(run=run_validate)


# --- rules --------------------------------------------------------------------------------------


def run_rules(args: argparse.Namespace) -> int:
    for info in CATALOGUE:
        print(f"{info.id:<10} {info.severity.value:<8} {info.title}")
        print(f"{'':<20}{info.doc}")
        print(f"{'':<20}reads: {', '.join(info.reads)}")
        print(f"{'':<20}fix: {info.fix}")
    return CLEAN


def add_rules(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("rules", help="print the policy catalogue")
    parser.set_defaults(run=run_rules)


# --- diff ---------------------------------------------------------------------------------------


def run_diff(args: argparse.Namespace) -> int:
    config = _config(args)
    kustomize = find_tool("kustomize", config.root)
    with tempfile.TemporaryDirectory(prefix="gitops-diff-") as scratch:
        base_root = Path(scratch)
        snapshot.extract(config.root, args.base, base_root)
        try:
            base_config = load_config(base_root)
        except ConfigError:
            base_config = Config(root=base_root)
        head_targets = discover(config)
        base_targets = discover(base_config)
        rendered = render_all([*base_targets, *head_targets], kustomize, args.jobs)
    base, head = rendered[: len(base_targets)], rendered[len(base_targets) :]
    diffs = diffing.diff_targets(base, head)
    render = diffing.markdown if args.format == "markdown" else diffing.text
    _emit(render(diffs, _cost_changes(base, head)), args.output)
    return FINDINGS if any(d.broken for d in diffs) else CLEAN


def _cost_changes(base: Sequence[Rendered], head: Sequence[Rendered]) -> dict[str, str]:
    """Per environment, what it costs and what the change does to that: never fails the diff."""
    table = prices.load()
    before, after = _costs(base, table), _costs(head, table)
    changes = {}
    for name in {*before, *after}:
        old, new = before.get(name), after.get(name)
        if isinstance(new, str) or (new is None and isinstance(old, str)):
            changes[name] = f"**Cost**: not priced: {new or old}"
        else:
            changes[name] = cost.change(old if isinstance(old, cost.EnvironmentCost) else None, new)
    return changes


def _costs(
    rendered: Sequence[Rendered], table: prices.PriceTable
) -> dict[str, cost.EnvironmentCost | str]:
    """Each rendered environment's cost, or why it has none."""
    found: dict[str, cost.EnvironmentCost | str] = {}
    for item in rendered:
        if not item.target.is_environment or item.error is not None:
            continue
        try:
            found[item.target.name] = cost.environment_cost(item.target.name, item.resources, table)
        except cost.CostError as error:
            found[item.target.name] = str(error)
    return found


def add_diff(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("diff", help="what changes per environment against --base")
    parser.add_argument("--base", required=True, help="git revision to compare with")
    parser.add_argument("--format", choices=["text", "markdown"], default="text")
    parser.add_argument("--output", help="write to this file instead of stdout")
    parser.add_argument("--jobs", type=_positive, default=default_jobs())
    parser.set_defaults(run=run_diff)


# --- cost ---------------------------------------------------------------------------------------


def run_cost(args: argparse.Namespace) -> int:
    config = _config(args)
    environments = [target for target in discover(config) if target.is_environment]
    unknown = sorted(set(args.environments) - {target.name for target in environments})
    if unknown:
        known = ", ".join(target.name for target in environments)
        print(f"gitops cost: no environment {', '.join(unknown)} (known: {known})", file=sys.stderr)
        return TOOL_ERROR
    chosen = [t for t in environments if not args.environments or t.name in args.environments]
    table = prices.load()
    costs = []
    for item in render_all(chosen, find_tool("kustomize", config.root)):
        if item.error is not None:
            print(f"gitops cost: {item.target.name}: {item.error}", file=sys.stderr)
            return TOOL_ERROR
        costs.append(cost.environment_cost(item.target.name, item.resources, table))
    sys.stdout.write(cost.text(costs))
    return CLEAN


def add_cost(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "cost",
        help="each environment's month on Autopilot at rest and under load, and a run's hour",
    )
    parser.add_argument("environments", nargs="*", metavar="ENV", help="default: every overlay")
    parser.set_defaults(run=run_cost)


# --- set-image / promote ------------------------------------------------------------------------


def _overlay(config: Config, name: str) -> Path:
    path = Path(name)
    if not path.is_dir():
        path = config.root / config.overlays / name
    return path


def run_set_image(args: argparse.Namespace) -> int:
    config = _config(args)
    changes = [kustomization_images.parse_change(spec) for spec in args.images]
    written = kustomization_images.set_images(_overlay(config, args.overlay), changes)
    print(f"updated {written}")
    return CLEAN


def add_set_image(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "set-image", help="pin images in an overlay, like `kustomize edit set image`"
    )
    parser.add_argument("overlay", help="environment name (dev, prod) or overlay directory")
    parser.add_argument("images", nargs="+", metavar="NAME[=NEWNAME][:TAG][@DIGEST]")
    parser.set_defaults(run=run_set_image)


def run_promote(args: argparse.Namespace) -> int:
    config = _config(args)
    written, changes = kustomization_images.promote(
        _overlay(config, args.source), _overlay(config, args.destination)
    )
    for change in changes:
        print(f"{change.name} -> {change.digest}")
    print(f"updated {written}")
    return CLEAN


def add_promote(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("promote", help="copy one overlay's image digests to another")
    parser.add_argument("source", help="e.g. dev")
    parser.add_argument("destination", help="e.g. prod")
    parser.set_defaults(run=run_promote)


# --- scan-secrets -------------------------------------------------------------------------------


def run_scan_secrets(args: argparse.Namespace) -> int:
    config = _config(args)
    leaks = secret_scan.scan(
        config.root, snapshot.tracked_files(config.root), find_tool("gitleaks", config.root)
    )
    for leak in leaks:
        print(f"{leak.path}:{leak.line}: {leak.kind}: {leak.excerpt}")
    if leaks:
        print(
            f"{len(leaks)} secrets in tracked files: remove them, rotate the keys, and keep "
            "values in Secret Manager",
            file=sys.stderr,
        )
        return FINDINGS
    print("no secrets in tracked files")
    return CLEAN


def add_scan_secrets(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "scan-secrets", help="API keys, private keys and Secret data in tracked files"
    )
    parser.set_defaults(run=run_scan_secrets)


# --- registration -------------------------------------------------------------------------------

COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    add_render,
    add_validate,
    add_rules,
    add_diff,
    add_cost,
    add_set_image,
    add_promote,
    add_scan_secrets,
    pipeline_commands.add_pipelines,
    add_bootstrap,
    pipeline_commands.add_pr_comment,
    pipeline_commands.add_pr_open,
    pipeline_commands.add_github_token,
]


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="gitops", description=__doc__)
    root.add_argument("--root", help="repository root (default: nearest dir with gitops.yaml)")
    commands = root.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except TOOL_ERRORS as error:
        print(f"gitops {args.command}: {error}", file=sys.stderr)
        return TOOL_ERROR
    return code


if __name__ == "__main__":
    sys.exit(main())

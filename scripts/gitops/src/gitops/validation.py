"""`gitops validate`: render, check schemas, run the policies, apply suppressions."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gitops import schemas, suppressions
from gitops.config import Config
from gitops.manifests import Resource
from gitops.policy import Finding, Severity, evaluate
from gitops.policy.catalogue import RENDER, SCHEMA_BROKEN, SCHEMA_INVALID, SCHEMA_MISSING
from gitops.policy.model import RuleInfo
from gitops.render import Rendered, default_jobs, render_one
from gitops.targets import Target

# Rendered targets per kubeconform process: small enough to start checking while rendering.
CHUNK = 40


@dataclass(frozen=True)
class Report:
    targets: tuple[str, ...]
    findings: tuple[Finding, ...]
    unused_suppressions: tuple[str, ...] = ()

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None and f.severity is Severity.ERROR]

    @property
    def clean(self) -> bool:
        return not self.failing


def _repository_path(config: Config, target: Target) -> str:
    try:
        return target.path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(target.path)


def _finding(info: RuleInfo, target: str, resource: str, message: str) -> Finding:
    return Finding(info.id, info.severity, target, resource, message, info.fix)


def _schema_findings(
    problems: list[schemas.SchemaProblem], files: dict[str, Rendered]
) -> list[Finding]:
    findings = []
    for problem in problems:
        source = files.get(problem.filename)
        target = source.target.name if source else problem.filename
        namespace = next(
            (
                r.namespace
                for r in (source.resources if source else ())
                if r.kind == problem.kind and r.name == problem.name
            ),
            "",
        )
        where = f"{namespace}/{problem.name}" if namespace else problem.name
        resource = f"{problem.kind} {where}"
        if problem.missing:
            findings.append(
                _finding(
                    SCHEMA_MISSING,
                    target,
                    resource,
                    f"no schema for {problem.api_version} {problem.kind}",
                )
            )
        else:
            findings.append(_finding(SCHEMA_INVALID, target, resource, problem.message))
    return findings


def validate(
    config: Config,
    targets: Sequence[Target],
    *,
    kustomize: str,
    kubeconform: str,
    jobs: int | None = None,
) -> Report:
    """Everything `gitops validate` reports about `targets`.

    Renders run in parallel; every CHUNK rendered targets go to a kubeconform process at once,
    and the policies run on each render as it arrives, so the three stages overlap.
    """
    workers = jobs or default_jobs()
    kubernetes_dir = schemas.kubernetes_schemas(config.kubernetes_version)
    locations = schemas.schema_locations(kubernetes_dir, config.root / config.crd_schemas)
    findings: list[Finding] = []
    checkers: list[tuple[schemas.Kubeconform, dict[str, Rendered]]] = []
    with (
        tempfile.TemporaryDirectory(prefix="gitops-validate-") as scratch,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        pending = [pool.submit(render_one, target, kustomize) for target in targets]
        batch: dict[str, Rendered] = {}
        # Environments render before components, so apps/argocd sees what it will sync.
        renders: dict[str, tuple[Resource, ...]] = {}

        def check(files: dict[str, Rendered]) -> None:
            paths = [Path(p) for p in files]
            command = schemas.kubeconform_command(kubeconform, locations, paths, workers)
            checkers.append((schemas.Kubeconform(command), files))

        for index, future in enumerate(pending):
            item = future.result()
            if item.error is not None:
                findings.append(_finding(RENDER, item.target.name, item.target.name, item.error))
                continue
            renders[_repository_path(config, item.target)] = item.resources
            if item.resources:
                path = Path(scratch) / f"{index:05d}.yaml"
                path.write_text(item.text, encoding="utf-8")
                batch[str(path)] = item
                if len(batch) >= CHUNK:
                    check(batch)
                    batch = {}
            findings.extend(
                evaluate(
                    item.target.name,
                    item.resources,
                    config.policy,
                    is_environment=item.target.is_environment,
                    whole_render=not item.target.is_file,
                    renders=renders,
                )
            )
        if batch:
            check(batch)
        for checker, files in checkers:
            findings.extend(_schema_findings(checker.problems(), files))
    for broken in schemas.check_crd_schemas(config.root / config.crd_schemas):
        relative = broken.path.relative_to(config.root)
        findings.append(_finding(SCHEMA_BROKEN, "schemas", str(relative), broken.message))
    order = {name: index for index, name in enumerate(t.name for t in targets)}
    findings.sort(key=lambda f: (order.get(f.target, len(order)), f.resource, f.rule))
    applied = suppressions.apply(findings, config.suppressions)
    stale = suppressions.unused(applied, config.suppressions)
    return Report(
        targets=tuple(t.name for t in targets),
        findings=tuple(applied),
        unused_suppressions=tuple(f"{s.rule} {s.target} {s.resource}" for s in stale),
    )

"""`gitops validate`: render, check schemas, run the policies, apply suppressions."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from gitops import leaks, schemas, suppressions
from gitops.config import Config
from gitops.manifests import Resource
from gitops.policy import Finding, Severity, evaluate, pss
from gitops.policy.catalogue import (
    RENDER,
    SCHEMA_BROKEN,
    SCHEMA_INVALID,
    SCHEMA_MISSING,
    skipped_alone,
)
from gitops.policy.model import RuleInfo
from gitops.policy.secrets import LEAKED
from gitops.policy.workloads import workload_of
from gitops.render import Rendered, default_jobs, render_one
from gitops.targets import Target

# Rendered targets per kubeconform process: small enough to start checking while rendering.
CHUNK = 40
# Findings one run reports; past it the report says how many more there were. A hostile file
# can otherwise make millions of findings and a report of hundreds of megabytes.
MAX_FINDINGS = 5_000


@dataclass(frozen=True)
class Tools:
    """The binaries one validation runs."""

    kustomize: str
    kubeconform: str
    psa: str
    gitleaks: str


@dataclass(frozen=True)
class Report:
    targets: tuple[str, ...]
    findings: tuple[Finding, ...]
    unused_suppressions: tuple[str, ...] = ()
    # Per lone-file target, the rules that need an environment's render and were not run.
    skipped: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Findings left out past MAX_FINDINGS.
    truncated: int = 0

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed is None and f.severity is Severity.ERROR]

    @property
    def clean(self) -> bool:
        return not self.failing and not self.truncated

    def skipped_for(self, target: str) -> tuple[str, ...]:
        return next((rules for name, rules in self.skipped if name == target), ())


def _repository_path(config: Config, target: Target) -> str:
    try:
        return target.path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(target.path)


def _finding(
    info: RuleInfo, target: str, resource: str, message: str, source: Resource | None = None
) -> Finding:
    return Finding(
        info.id,
        info.severity,
        target,
        resource,
        message,
        info.fix,
        file=source.file if source else "",
        line=source.line if source else 0,
    )


def _schema_findings(
    problems: list[schemas.SchemaProblem], files: dict[str, Rendered]
) -> list[Finding]:
    findings = []
    for problem in problems:
        source = files.get(problem.filename)
        target = source.target.name if source else problem.filename
        # The objects went to kubeconform as JSON, so its names are the strings we hold.
        found = next(
            (
                r
                for r in (source.resources if source else ())
                if r.kind == problem.kind and r.name == problem.name
            ),
            None,
        )
        resource = found.ref if found else f"{problem.kind or '(no kind)'} {problem.name}"
        if problem.missing:
            message = f"no schema for {problem.api_version} {problem.kind}"
            findings.append(_finding(SCHEMA_MISSING, target, resource, message, found))
        else:
            findings.append(_finding(SCHEMA_INVALID, target, resource, problem.message, found))
    return findings


def _leak_findings(
    found: Sequence[Mapping[str, object]], files: dict[str, Rendered], scratch: Path
) -> list[Finding]:
    findings = []
    for item in found:
        source = files.get(str(scratch / str(item.get("File", ""))))
        if source is None:
            source = files.get(str(item.get("File", "")))
        if source is None:
            continue
        index = leaks.object_at(int(str(item.get("StartLine", 1))))
        if not 0 <= index < len(source.resources):
            continue
        resource = source.resources[index]
        message = f"{item.get('Description') or item.get('RuleID')} (gitleaks {item.get('RuleID')})"
        findings.append(_finding(LEAKED, source.target.name, resource.ref, message, resource))
    return findings


def validate(
    config: Config,
    targets: Sequence[Target],
    *,
    tools: Tools,
    jobs: int | None = None,
    allow_remote: bool = False,
) -> Report:
    """Everything `gitops validate` reports about `targets`.

    Renders run in parallel; every CHUNK rendered targets go to a kubeconform process at once,
    and the policies run on each render as it arrives, so the stages overlap. Pod Security and
    gitleaks then judge every pod and object of the run in one process each.
    """
    workers = jobs or default_jobs()
    settings = replace(config.policy, kubernetes_version=config.kubernetes_version)
    kubernetes_dir = schemas.kubernetes_schemas(config.kubernetes_version)
    locations = schemas.schema_locations(kubernetes_dir, config.root / config.crd_schemas)
    findings: list[Finding] = []
    skipped: list[tuple[str, tuple[str, ...]]] = []
    pods: list[pss.Pod] = []
    checkers: list[tuple[schemas.Kubeconform, dict[str, Rendered]]] = []
    files: dict[str, Rendered] = {}
    with (
        tempfile.TemporaryDirectory(prefix="gitops-validate-") as scratch,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        objects = Path(scratch) / "objects"
        objects.mkdir()
        pending = [
            pool.submit(
                render_one,
                target,
                tools.kustomize,
                origins=Path(scratch),
                root=config.root,
                allow_remote=allow_remote,
            )
            for target in targets
        ]
        batch: dict[str, Rendered] = {}
        # Environments render before components, so apps/argocd sees what it will sync.
        renders: dict[str, tuple[Resource, ...]] = {}

        def check(files: dict[str, Rendered]) -> None:
            paths = [Path(p) for p in files]
            command = schemas.kubeconform_command(tools.kubeconform, locations, paths, workers)
            checkers.append((schemas.Kubeconform(command), files))

        for index, future in enumerate(pending):
            item = future.result()
            if item.error is not None:
                findings.append(_finding(RENDER, item.target.name, item.target.name, item.error))
                continue
            renders[_repository_path(config, item.target)] = item.resources
            if item.resources:
                path = objects / f"{index:05d}.yaml"
                leaks.write_objects(path, item.resources)
                batch[str(path)] = item
                files[str(path)] = item
                if len(batch) >= CHUNK:
                    check(batch)
                    batch = {}
            alone = item.target.is_file
            if alone:
                skipped.append((item.target.name, skipped_alone()))
            findings.extend(
                evaluate(
                    item.target.name,
                    item.resources,
                    settings,
                    is_environment=item.target.is_environment,
                    whole_render=not alone,
                    renders=renders,
                )
            )
            pods.extend(
                pss.Pod(item.target.name, workload)
                for workload in map(workload_of, item.resources)
                if workload is not None
            )
        if batch:
            check(batch)
        leak_scan = pool.submit(leaks.scan, tools.gitleaks, objects, config.root)
        findings.extend(pss.evaluate(tools.psa, config.kubernetes_version, pods))
        for checker, checked in checkers:
            findings.extend(_schema_findings(checker.problems(), checked))
        findings.extend(_leak_findings(leak_scan.result(), files, objects))
    for broken in schemas.check_crd_schemas(config.root / config.crd_schemas):
        relative = broken.path.relative_to(config.root)
        findings.append(_finding(SCHEMA_BROKEN, "schemas", str(relative), broken.message))
    order = {name: index for index, name in enumerate(t.name for t in targets)}
    findings.sort(key=lambda f: (order.get(f.target, len(order)), f.resource, f.rule))
    applied = suppressions.apply(findings, config.suppressions)
    stale = suppressions.unused(applied, config.suppressions)
    truncated = max(0, len(applied) - MAX_FINDINGS)
    return Report(
        targets=tuple(t.name for t in targets),
        findings=tuple(applied[:MAX_FINDINGS]),
        unused_suppressions=tuple(f"{s.rule} {s.target} {s.resource}" for s in stale),
        skipped=tuple(skipped),
        truncated=truncated,
    )

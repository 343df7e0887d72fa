"""Every rule in one list, and the one function that runs them over a rendered target."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gitops.manifests import Resource
from gitops.policy import (
    architecture,
    argocd,
    autopilot,
    iap_clients,
    identity,
    images,
    network,
    probes,
    pss,
    references,
    sandbox,
    secrets,
)
from gitops.policy.model import Context, Finding, Rule, RuleInfo, Settings, Severity

POLICIES: tuple[Rule, ...] = (
    *autopilot.RULES,
    *identity.RULES,
    *architecture.RULES,
    *images.RULES,
    *sandbox.RULES,
    *references.RULES,
    *network.RULES,
    *probes.RULES,
    *secrets.RULES,
    *argocd.RULES,
    *iap_clients.RULES,
)

# Findings made by the stages before the policies: rendering and schema validation.
RENDER = RuleInfo(
    "RENDER001",
    Severity.ERROR,
    "the target renders",
    reads=("kustomization.yaml",),
    fix="run `bin/kustomize build <dir>` and fix what it reports",
    doc="A kustomization that does not build cannot be synced by Argo CD.",
)
SCHEMA_INVALID = RuleInfo(
    "SCHEMA001",
    Severity.ERROR,
    "objects match their schema",
    reads=("*",),
    fix="fix the field kubeconform names; unknown fields are errors (strict mode)",
    doc="The API server rejects what the Kubernetes or CRD schema rejects; strict mode also "
    "catches misspelt fields the server would silently drop.",
)
SCHEMA_MISSING = RuleInfo(
    "SCHEMA002",
    Severity.ERROR,
    "every kind has a schema",
    reads=("apiVersion", "kind"),
    fix="add the CRD's schema as schemas/crds/<group>/<kind>_<version>.json (lower-case kind, "
    "written from the upstream API reference), or fix apiVersion/kind",
    doc="A kind without a schema would go unchecked; that is an error, never a skip.",
)
SCHEMA_BROKEN = RuleInfo(
    "SCHEMA003",
    Severity.ERROR,
    "CRD schemas are valid JSON schemas",
    reads=("schemas/crds/**/*.json",),
    fix="fix the schema file so that it is a valid JSON schema (draft 4 to 2020-12)",
    doc="kubeconform treats an unparsable schema as missing, which would hide every error.",
)
STAGES: tuple[RuleInfo, ...] = (
    RENDER,
    SCHEMA_INVALID,
    SCHEMA_MISSING,
    SCHEMA_BROKEN,
    *pss.CHECKS,
    secrets.LEAKED,
)
CATALOGUE: tuple[RuleInfo, ...] = (*STAGES, *POLICIES)


def skipped_alone(rules: Iterable[Rule] = POLICIES) -> tuple[str, ...]:
    """Ids of the rules a lone manifest file cannot be judged by: they need an environment."""
    return tuple(rule.id for rule in rules if rule.whole_render)


def evaluate(
    target: str,
    resources: Iterable[Resource],
    settings: Settings,
    *,
    is_environment: bool = False,
    whole_render: bool = True,
    renders: Mapping[str, Sequence[Resource]] | None = None,
    rules: Iterable[Rule] = POLICIES,
) -> list[Finding]:
    """Every finding of `rules` over one rendered target, in catalogue order.

    A lone manifest file is not a whole render: rules that need an environment (its facts, the
    other targets' renders) skip it, and `skipped_alone` names them. Rules across objects still
    run among the objects the file holds.
    """
    ctx = Context.build(
        target,
        resources,
        settings,
        is_environment=is_environment,
        renders=renders,
        lone=not whole_render,
    )
    return [
        Finding(
            rule=rule.id,
            severity=rule.severity,
            target=target,
            resource=violation.resource.ref,
            message=violation.message,
            fix=rule.fix,
            file=violation.resource.file,
            line=violation.resource.line,
        )
        for rule in rules
        if whole_render or not rule.whole_render
        for violation in rule.check(ctx)
    ]

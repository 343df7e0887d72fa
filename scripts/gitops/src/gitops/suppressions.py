"""Accepted findings: matched by rule, target and resource, and always shown with the reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from fnmatch import fnmatchcase

from gitops.config import Suppression
from gitops.policy import Finding


def matches(suppression: Suppression, finding: Finding) -> bool:
    return (
        suppression.rule == finding.rule
        and fnmatchcase(finding.target, suppression.target)
        and fnmatchcase(finding.resource, suppression.resource)
    )


def apply(findings: Iterable[Finding], suppressions: Iterable[Suppression]) -> list[Finding]:
    """The findings, each suppressed one carrying its suppression's reason."""
    rules = list(suppressions)
    result = []
    for finding in findings:
        reason = next((s.reason for s in rules if matches(s, finding)), None)
        result.append(replace(finding, suppressed=reason) if reason else finding)
    return result


def unused(findings: Iterable[Finding], suppressions: Iterable[Suppression]) -> list[Suppression]:
    """Suppressions that matched nothing: stale, and worth deleting."""
    items = list(findings)
    return [s for s in suppressions if not any(matches(s, f) for f in items)]

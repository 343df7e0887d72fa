"""The policy catalogue: pure rules over rendered objects, each with an id and a fix."""

from gitops.policy.catalogue import CATALOGUE, POLICIES, evaluate
from gitops.policy.model import Context, Finding, Rule, RuleInfo, Settings, Severity

__all__ = [
    "CATALOGUE",
    "POLICIES",
    "Context",
    "Finding",
    "Rule",
    "RuleInfo",
    "Settings",
    "Severity",
    "evaluate",
]

"""Every policy rule breaks on its failing fixture and stays quiet on its passing one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gitops.manifests import parse
from gitops.policy import CATALOGUE, POLICIES, Settings, evaluate
from gitops.policy.catalogue import skipped_alone
from gitops.policy.pss import CHECKS

FIXTURES = Path(__file__).parent / "fixtures"
RULE_IDS = [rule.id for rule in POLICIES]
# Pod Security is judged by the upstream evaluator (tests/gitops/test_gitops_pod_security.py).
PSS_IDS = [check.id for check in CHECKS]


def _rules_found(path: Path) -> set[str]:
    """Rule ids in a fixture; `renders/<env>.yaml` beside it is what overlays/<env> renders."""
    resources = parse(path.read_text(), str(path))
    renders = {
        f"overlays/{other.stem}": parse(other.read_text(), str(other))
        for other in sorted((path.parent / "renders").glob("*.yaml"))
    }
    findings = evaluate("fixture", resources, Settings(), is_environment=True, renders=renders)
    return {finding.rule for finding in findings}


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_failing_fixture_breaks_the_rule(rule_id: str) -> None:
    assert rule_id in _rules_found(FIXTURES / rule_id / "fail.yaml")


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_passing_fixture_satisfies_the_rule(rule_id: str) -> None:
    assert rule_id not in _rules_found(FIXTURES / rule_id / "pass.yaml")


def test_every_fixture_directory_names_a_rule_in_the_catalogue() -> None:
    directories = {path.name for path in FIXTURES.iterdir() if path.is_dir()}
    assert directories == set(RULE_IDS) | set(PSS_IDS)


def test_every_rule_has_a_unique_id_a_fix_and_a_doc_line() -> None:
    ids = [info.id for info in CATALOGUE]
    assert len(ids) == len(set(ids))
    for info in CATALOGUE:
        assert re.fullmatch(r"[A-Z]+[0-9]{3}", info.id)
        assert info.fix, info.id
        assert info.doc, info.id
        assert info.reads, info.id
        assert info.title, info.id
        assert "\n" not in info.doc


def test_a_lone_manifest_file_is_checked_across_the_objects_it_holds() -> None:
    pod = (FIXTURES / "REF006" / "fail.yaml").read_text()
    other = (
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web, namespace: agent-platform}\n"
    )
    bundled = parse(f"{pod}---\n{other}", "file")
    alone = {f.rule for f in evaluate("file", bundled, Settings(), whole_render=False)}
    assert "REF006" in alone


def test_a_lone_file_of_one_object_is_not_blamed_for_objects_written_elsewhere() -> None:
    # One object per file is the usual layout: the ServiceAccount is in its own file.
    resources = parse((FIXTURES / "REF006" / "fail.yaml").read_text(), "file")
    alone = {f.rule for f in evaluate("file", resources, Settings(), whole_render=False)}
    assert "REF006" not in alone
    whole = {f.rule for f in evaluate("file", resources, Settings())}
    assert "REF006" in whole


def test_rules_that_need_an_environment_are_named_as_skipped_for_a_lone_file() -> None:
    resources = parse((FIXTURES / "IMG003" / "fail.yaml").read_text(), "file")
    alone = {f.rule for f in evaluate("prod", resources, Settings(), whole_render=False)}
    assert "IMG003" not in alone
    assert "IMG003" in skipped_alone()
    assert "REF001" not in skipped_alone()


def test_sysctls_follow_the_cluster_version() -> None:
    resources = parse((FIXTURES / "AP007" / "pass.yaml").read_text(), "file")
    old = {f.rule for f in evaluate("dev", resources, Settings(kubernetes_version="1.31"))}
    assert "AP007" in old


def test_digests_are_required_only_in_the_environments_the_settings_name() -> None:
    resources = parse((FIXTURES / "IMG003" / "fail.yaml").read_text(), "file")
    relaxed = Settings(digest_environments=frozenset({"staging"}))
    assert "IMG003" not in {f.rule for f in evaluate("prod", resources, relaxed)}


def test_a_finding_names_the_resource_and_says_how_to_fix_it() -> None:
    resources = parse((FIXTURES / "AP001" / "fail.yaml").read_text(), "file")
    finding = next(f for f in evaluate("dev", resources, Settings()) if f.rule == "AP001")
    assert finding.resource == "Pod agent-platform/builder"
    assert "container docker is privileged" in finding.message
    assert "privileged: true" in finding.fix


def test_a_warm_pool_template_is_held_to_the_runs_pod_rules() -> None:
    template = """\
apiVersion: extensions.agents.x-k8s.io/v1beta1
kind: SandboxTemplate
metadata: {name: agent-runner, namespace: agent-runs}
spec:
  networkPolicyManagement: Unmanaged
  podTemplate:
    spec:
      containers: [{name: runner, image: runner:1.0, securityContext: {privileged: true}}]
"""
    found = {f.rule for f in evaluate("prod", parse(template, "file"), Settings())}
    # gVisor, no token, read-only root: the sandbox's rules. Pod Security judges the same
    # template through the upstream evaluator (test_gitops_pod_security.py).
    assert {"SBX001", "SBX002", "SBX007"} <= found
    assert "SBX004" not in found  # the run's deadline is on its claim, not on a warm pod

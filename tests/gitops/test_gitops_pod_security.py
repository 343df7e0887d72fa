"""Pod Security "restricted" as admission judges it: the upstream evaluator over each fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitops.manifests import parse
from gitops.policy import Finding, pss
from gitops.policy.workloads import workload_of

FIXTURES = Path(__file__).parent / "fixtures"
IDS = [check.id for check in pss.CHECKS]


def _findings(psa: str, path: Path, version: str = "1.34") -> list[Finding]:
    pods = [
        pss.Pod("fixture", workload)
        for workload in map(workload_of, parse(path.read_text(), str(path)))
        if workload is not None
    ]
    return pss.evaluate(psa, version, pods)


@pytest.mark.parametrize("rule_id", IDS)
def test_failing_fixture_breaks_the_check(psa: str, rule_id: str) -> None:
    assert rule_id in {f.rule for f in _findings(psa, FIXTURES / rule_id / "fail.yaml")}


@pytest.mark.parametrize("rule_id", IDS)
def test_passing_fixture_satisfies_the_check(psa: str, rule_id: str) -> None:
    assert rule_id not in {f.rule for f in _findings(psa, FIXTURES / rule_id / "pass.yaml")}


def test_every_way_out_of_baseline_is_refused_for_each_pod(psa: str) -> None:
    findings = _findings(psa, FIXTURES / "PSS006" / "fail.yaml")
    refused = {f.resource: f.message for f in findings if f.rule == "PSS006"}
    assert set(refused) == {
        "Pod agent-platform/selinux",
        "Pod agent-platform/apparmor",
        "Pod agent-platform/procmount",
        "Pod agent-platform/probe-host",
    }
    assert "spc_t" in refused["Pod agent-platform/selinux"]
    assert "Unconfined" in refused["Pod agent-platform/apparmor"]
    assert "169.254.169.254" in refused["Pod agent-platform/probe-host"]


def test_a_pod_passing_restricted_has_no_finding(psa: str) -> None:
    assert _findings(psa, FIXTURES / "PSS006" / "pass.yaml") == []


def test_a_warm_pool_template_is_judged_like_a_pod(psa: str, tmp_path: Path) -> None:
    template = tmp_path / "template.yaml"
    template.write_text(
        """\
apiVersion: extensions.agents.x-k8s.io/v1beta1
kind: SandboxTemplate
metadata: {name: agent-runner, namespace: agent-runs}
spec:
  podTemplate:
    spec:
      containers: [{name: runner, image: runner:1.0, securityContext: {privileged: true}}]
"""
    )
    found = {f.rule for f in _findings(psa, template)}
    # Privileged (baseline) and each restricted requirement the container leaves unset.
    assert found == {"PSS001", "PSS002", "PSS003", "PSS004", "PSS006"}

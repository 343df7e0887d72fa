"""The platform's Role, applied from the rendered base, grants exactly what the Kubernetes executor
uses and nothing more. The executor's own tests run under the same identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from servers.control_plane import ControlPlane

pytestmark = pytest.mark.cluster

RUNS = "agent-runs"

# Every request the executor makes, as (verb, resource, namespace).
EXECUTOR_NEEDS = [
    ("get", "podtemplates/agent-runner", RUNS),
    ("create", "jobs.batch", RUNS),
    ("get", "jobs.batch", RUNS),
    ("list", "jobs.batch", RUNS),
    ("watch", "jobs.batch", RUNS),
    ("delete", "jobs.batch", RUNS),
    ("get", "pods", RUNS),
    ("list", "pods", RUNS),
    ("watch", "pods", RUNS),
    ("create", "secrets", RUNS),
]


def can_i(plane: ControlPlane, kubeconfig: Path, verb: str, resource: str, namespace: str) -> str:
    result = plane.kubectl(
        "auth", "can-i", verb, resource, "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    return result.stdout.strip()


@pytest.mark.parametrize(("verb", "resource", "namespace"), EXECUTOR_NEEDS)
def test_platform_may_do_what_the_executor_needs(
    control_plane: ControlPlane, platform_kubeconfig: Path, verb: str, resource: str, namespace: str
) -> None:
    assert can_i(control_plane, platform_kubeconfig, verb, resource, namespace) == "yes"


POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: intruder
spec:
  containers:
    - name: shell
      image: busybox
"""


@pytest.mark.parametrize("namespace", ["agent-platform", "default", RUNS, "kube-system"])
def test_platform_cannot_create_pods_anywhere(
    control_plane: ControlPlane, platform_kubeconfig: Path, namespace: str
) -> None:
    result = control_plane.kubectl(
        "create", "-n", namespace, "-f", "-", stdin=POD, kubeconfig=platform_kubeconfig, check=False
    )
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()


@pytest.mark.parametrize(
    "args",
    [
        ("get", "secret", "some-other-secret", "-n", RUNS),
        ("list", "secrets", "-n", RUNS),
        ("get", "secrets", "-n", "agent-platform"),
        ("get", "podtemplate", "another-template", "-n", RUNS),
        ("create", "job", "sneaky", "--image=busybox", "-n", "agent-platform"),
        ("get", "jobs", "-n", "default"),
        ("create", "namespace", "sneaky"),
    ],
    ids=lambda args: " ".join(args[:2]) + " in " + args[-1],
)
def test_platform_is_forbidden_everything_else(
    control_plane: ControlPlane, platform_kubeconfig: Path, args: tuple[str, ...]
) -> None:
    verb, *rest = args
    kubectl_args = ["get", *rest] if verb == "list" else [verb, *rest]
    result = control_plane.kubectl(*kubectl_args, kubeconfig=platform_kubeconfig, check=False)
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()


def test_platform_cannot_read_a_run_token_secret(
    control_plane: ControlPlane, platform_kubeconfig: Path
) -> None:
    control_plane.kubectl(
        "create", "secret", "generic", "run-probe-token", "-n", RUNS, "--from-literal=token=t0k3n"
    )
    try:
        result = control_plane.kubectl(
            "get", "secret", "run-probe-token", "-n", RUNS, "-o", "yaml",
            kubeconfig=platform_kubeconfig, check=False,
        )  # fmt: skip
        assert result.returncode != 0
        assert "forbidden" in result.stderr.lower()
        assert "t0k3n" not in result.stdout
    finally:
        control_plane.kubectl("delete", "secret", "run-probe-token", "-n", RUNS)

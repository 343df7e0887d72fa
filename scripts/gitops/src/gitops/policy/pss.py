"""Pod Security Standards, "restricted" profile, judged by the upstream admission evaluator.

The checks are not written here: `bin/psa` (tools/psa, built by `make tools`) runs
k8s.io/pod-security-admission at the cluster's Kubernetes version, the code the API server
runs when a namespace enforces the profile. Every pod template of a run goes through one
process; its answers are grouped under the rule ids below.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gitops.errors import GitopsError
from gitops.policy.model import Finding, RuleInfo, Severity
from gitops.policy.workloads import Workload

SEE = "https://kubernetes.io/docs/concepts/security/pod-security-standards/"
# Seconds the evaluator may take for a whole run (it checks thousands of pods a second).
TIMEOUT = 120.0


class PodSecurityError(GitopsError):
    """The Pod Security evaluator is missing or failed."""


def _check(id: str, title: str, reads: str, fix: str, doc: str) -> RuleInfo:
    return RuleInfo(id, Severity.ERROR, title, (reads,), fix, doc, see=SEE)


PRIVILEGE_ESCALATION = _check(
    "PSS001",
    "privilege escalation disabled",
    "spec.containers[].securityContext.allowPrivilegeEscalation",
    "set securityContext.allowPrivilegeEscalation: false on every container",
    "Pod Security restricted requires allowPrivilegeEscalation to be false.",
)
NON_ROOT = _check(
    "PSS002",
    "runs as non-root",
    "spec.securityContext.runAsNonRoot",
    "set securityContext.runAsNonRoot: true (and a non-zero runAsUser) on the pod",
    "Pod Security restricted requires runAsNonRoot and forbids runAsUser 0.",
)
SECCOMP = _check(
    "PSS003",
    "seccomp profile RuntimeDefault",
    "spec.securityContext.seccompProfile.type",
    "set securityContext.seccompProfile.type: RuntimeDefault on the pod",
    "Pod Security restricted requires a RuntimeDefault or Localhost seccomp profile.",
)
CAPABILITIES = _check(
    "PSS004",
    "all capabilities dropped",
    "spec.containers[].securityContext.capabilities",
    "set securityContext.capabilities.drop: [ALL]; add back at most NET_BIND_SERVICE",
    "Pod Security restricted requires dropping ALL and adding nothing but NET_BIND_SERVICE.",
)
VOLUMES = _check(
    "PSS005",
    "only restricted volume types",
    "spec.volumes[]",
    "use configMap, secret, emptyDir, projected, downwardAPI, persistentVolumeClaim, "
    "ephemeral or csi volumes; no hostPath",
    "Pod Security restricted forbids hostPath and other node-bound volume types.",
)
BASELINE = _check(
    "PSS006",
    "no host access or unconfined profiles (baseline)",
    "spec.securityContext, spec.containers[].securityContext, probes, hostNetwork",
    "remove the setting the finding names: privileged, host namespaces and ports, SELinux "
    "types other than container_t, AppArmor Unconfined, procMount Unmasked, unsafe sysctls, "
    "probe or lifecycle `host`",
    "Pod Security baseline (part of restricted) forbids every way out of the container's "
    "isolation.",
)
CHECKS: tuple[RuleInfo, ...] = (
    PRIVILEGE_ESCALATION,
    NON_ROOT,
    SECCOMP,
    CAPABILITIES,
    VOLUMES,
    BASELINE,
)
_BY_REASON = {
    "allowPrivilegeEscalation != false": PRIVILEGE_ESCALATION,
    "runAsNonRoot != true": NON_ROOT,
    "runAsUser=0": NON_ROOT,
    "seccompProfile": SECCOMP,
    "unrestricted capabilities": CAPABILITIES,
    "restricted volume types": VOLUMES,
}


@dataclass(frozen=True)
class Pod:
    """A pod template to judge, and the target whose render holds it."""

    target: str
    workload: Workload


def _line(index: int, pod: Pod) -> str:
    metadata = pod.workload.resource.metadata
    return json.dumps(
        {
            "id": str(index),
            "metadata": {"name": str(metadata.get("name") or ""), "namespace": ""},
            "spec": dict(pod.workload.spec),
        },
        default=str,
    )


def evaluate(psa: str, kubernetes_version: str, pods: Sequence[Pod]) -> list[Finding]:
    """Findings of the upstream Pod Security "restricted" evaluator for every pod in `pods`."""
    if not pods:
        return []
    stdin = "\n".join(_line(index, pod) for index, pod in enumerate(pods)) + "\n"
    try:
        done = subprocess.run(
            [psa, "-level", "restricted", "-version", f"v{kubernetes_version.removeprefix('v')}"],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        raise PodSecurityError(f"{psa} took more than {TIMEOUT:.0f} s") from error
    if done.returncode != 0:
        raise PodSecurityError(f"{psa} failed: {done.stderr.strip()}; rebuild it with `make tools`")
    return list(_findings(done.stdout.splitlines(), pods))


def _findings(lines: Iterable[str], pods: Sequence[Pod]) -> Iterable[Finding]:
    for text in lines:
        verdict = json.loads(text)
        if verdict.get("error"):
            continue  # a spec the Go types cannot hold is a schema finding already
        pod = pods[int(verdict["id"])]
        resource = pod.workload.resource
        for violation in verdict["violations"]:
            info = _BY_REASON.get(violation["reason"], BASELINE)
            yield Finding(
                rule=info.id,
                severity=info.severity,
                target=pod.target,
                resource=resource.ref,
                message=f"{violation['reason']}: {violation['detail']}",
                fix=info.fix,
                file=resource.file,
                line=resource.line,
            )

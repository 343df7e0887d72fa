"""Secrets stay out of git: in Secret Manager, mounted through the CSI driver."""

from __future__ import annotations

from collections.abc import Iterator

from gitops.credentials import find_credentials
from gitops.manifests import mapping, sequence
from gitops.policy.model import Context, RuleInfo, Severity, Violation, each_container, rule
from gitops.policy.workloads import container_name


@rule(
    "SEC001",
    Severity.ERROR,
    "no Secret with data in git",
    reads=("Secret.data", "Secret.stringData"),
    fix="keep the value in Secret Manager and mount it with a SecretProviderClass "
    "(secrets-store-gke.csi.k8s.io); delete the Secret from the kustomization",
    doc="Anything committed is readable by everyone with the repository, forever.",
)
def secret_data(ctx: Context) -> Iterator[Violation]:
    for secret in ctx.kind("Secret"):
        keys = [*mapping(secret.body.get("data")), *mapping(secret.body.get("stringData"))]
        if keys:
            yield Violation(secret, f"holds values for {', '.join(sorted(map(str, keys)))}")


@rule(
    "SEC002",
    Severity.ERROR,
    "no credentials in plain env values",
    reads=("spec.containers[].env[].value",),
    fix="move the value to Secret Manager and read it from a mounted file; rotate the key now",
    doc="A key in a pod spec is in git, in Argo CD's UI and in every `kubectl get -o yaml`; "
    "even a placeholder there shows the key is meant to be pasted in.",
)
def env_credentials(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        for env in (mapping(e) for e in sequence(container.get("env"))):
            for credential in find_credentials(str(env.get("value", "")), include_fakes=True):
                yield Violation(
                    workload.resource,
                    f"container {container_name(container)} env {env.get('name')} holds "
                    f"an {credential.kind}",
                )


RULES = (secret_data, env_credentials)

# Found by gitleaks over the rendered objects (every kind, ConfigMaps included), with its
# maintained rule set and the repository's own rules in .gitleaks.toml.
LEAKED = RuleInfo(
    "SEC003",
    Severity.ERROR,
    "no credentials in rendered objects",
    reads=("*",),
    fix="move the value to Secret Manager and mount it with a SecretProviderClass; rotate the "
    "credential now, it is in git history",
    doc="gitleaks finds API keys, tokens, webhook URLs and passwords in any field of any object.",
    see="https://github.com/gitleaks/gitleaks#configuration",
)

"""IAP in front of the API lets programmatic clients through, not only browsers."""

from __future__ import annotations

from collections.abc import Iterator

from gitops.manifests import mapping
from gitops.policy.model import Context, Severity, Violation, rule


@rule(
    "IAP001",
    Severity.ERROR,
    "IAP admits programmatic clients",
    reads=("BackendConfig.spec.iap",),
    fix="set spec.iap.oauthclientCredentials.secretName to the Secret holding the custom OAuth "
    "client (client_id, client_secret) whose IAP settings list the CLI's OAuth client under "
    "programmaticClients (docs/runbook.md, 'Programmatic access to prod')",
    doc="With Google's managed OAuth client IAP admits only browser sign-ins of the "
    "organisation's users: the CLI and API tokens are shut out.",
)
def programmatic_clients(ctx: Context) -> Iterator[Violation]:
    for config in ctx.kind("BackendConfig"):
        iap = mapping(mapping(config.body.get("spec")).get("iap"))
        client = mapping(iap.get("oauthclientCredentials")).get("secretName")
        if iap.get("enabled") is True and not client:
            yield Violation(
                config,
                "enables IAP with Google's managed OAuth client, which admits browser sign-ins "
                "only",
            )


RULES = (programmatic_clients,)

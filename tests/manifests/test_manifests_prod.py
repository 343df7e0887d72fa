"""What prod adds to the bases: digests, more replicas, IAP and Cloud Armor."""

from __future__ import annotations

import re
from typing import Any

from manifests.rendering import Rendering

DIGEST = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+@sha256:[0-9a-f]{64}$")


def images(rendering: Rendering) -> list[str]:
    specs: list[dict[str, Any]] = [
        d["spec"]["template"]["spec"] for d in rendering.of_kind("Deployment")
    ] + [t["template"]["spec"] for t in rendering.of_kind("PodTemplate")]
    return [
        c["image"] for spec in specs for c in spec["containers"] + spec.get("initContainers", [])
    ]


def test_prod_images_are_digests(environments: dict[str, Rendering]) -> None:
    found = images(environments["prod"])
    assert len(found) == 2
    for image in found:
        assert DIGEST.match(image), image


def test_every_environment_pins_both_images_in_a_registry(environment: Rendering) -> None:
    found = images(environment)
    assert {image.split("@")[0].split(":")[0].rsplit("/", 1)[-1] for image in found} == {
        "agent-platform",
        "agent-runner",
    }
    assert all("/" in image for image in found), "an image name was left unpinned"


def test_prod_puts_iap_and_cloud_armor_in_front_of_the_api(
    environments: dict[str, Rendering],
) -> None:
    backend = environments["prod"].get("BackendConfig", "agent-platform", "agent-platform")
    # A custom OAuth client, so that API tokens and the CLI pass IAP as well as browsers.
    assert backend["spec"]["iap"] == {
        "enabled": True,
        "oauthclientCredentials": {"secretName": "iap-oauth-client"},
    }
    assert backend["spec"]["securityPolicy"]["name"]


def test_dev_has_neither_iap_nor_cloud_armor(environments: dict[str, Rendering]) -> None:
    backend = environments["dev"].get("BackendConfig", "agent-platform", "agent-platform")
    assert "iap" not in backend["spec"]
    assert "securityPolicy" not in backend["spec"]


def test_prod_keeps_at_least_two_api_pods(environments: dict[str, Rendering]) -> None:
    prod = environments["prod"]
    dev = environments["dev"]
    hpa = prod.get("HorizontalPodAutoscaler", "agent-platform", "agent-platform")["spec"]
    dev_hpa = dev.get("HorizontalPodAutoscaler", "agent-platform", "agent-platform")["spec"]
    assert hpa["minReplicas"] >= 2
    assert hpa["maxReplicas"] > dev_hpa["maxReplicas"]
    budget = prod.get("PodDisruptionBudget", "agent-platform", "agent-platform")["spec"]
    assert budget["minAvailable"] == 1
    assert "maxUnavailable" not in budget


def _api_env(rendering: Rendering) -> dict[str, Any]:
    deployment = rendering.get("Deployment", "agent-platform", "agent-platform")
    (api,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "api"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in api["env"]}


def test_prod_checks_iaps_header_for_the_audience_its_environment_states(
    environments: dict[str, Rendering],
) -> None:
    prod = environments["prod"]
    audience = prod.environment()["IAP_AUDIENCE"]
    assert _api_env(prod)["AGENT_PLATFORM_IAP_AUDIENCE"] == audience
    assert audience == "" or re.fullmatch(
        r"/projects/[0-9]+/global/backendServices/[0-9]+", audience
    )
    assert "AGENT_PLATFORM_IAP_AUDIENCE" not in _api_env(environments["dev"])

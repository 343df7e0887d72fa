"""GKE Autopilot's list prices per region, from the dated table shipped with the tooling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from gitops.errors import GitopsError

TABLE = "autopilot-prices.yaml"
_FIGURES = ("vcpu_hour", "memory_gib_hour", "ephemeral_storage_gib_hour")


class PriceError(GitopsError):
    """The price table is malformed, or has no prices for a region."""


@dataclass(frozen=True)
class RegionPrices:
    """What an hour of one vCPU, one GiB of memory and one GiB of ephemeral storage costs."""

    region: str
    vcpu_hour: float
    memory_gib_hour: float
    ephemeral_storage_gib_hour: float
    as_of: str
    # The region whose figures these are, when `region` has none of its own yet.
    priced_as: str | None = None

    def describe(self) -> str:
        if self.priced_as:
            return (
                f"{self.region} at {self.priced_as}'s list prices of {self.as_of}, standing in "
                f"until {TABLE} has {self.region}'s"
            )
        return f"{self.region} list prices of {self.as_of}"


@dataclass(frozen=True)
class PriceTable:
    source: str
    hours_per_month: float
    cluster_fee_per_hour: float
    regions: Mapping[str, Mapping[str, Any]]

    def for_region(self, region: str) -> RegionPrices:
        entry = self.regions.get(region)
        if entry is None:
            known = ", ".join(sorted(self.regions)) or "none"
            raise PriceError(
                f"no Autopilot prices for {region} in {TABLE} (known: {known}): add the region's "
                f"general-purpose Pod prices from {self.source}"
            )
        stand_in = entry.get("priced_as")
        if stand_in is not None:
            own = self.regions.get(str(stand_in))
            if own is None or "priced_as" in own:
                raise PriceError(
                    f"{TABLE}: {region} is priced as {stand_in}, which has no figures of its own"
                )
            return RegionPrices(region, *_figures(own, str(stand_in)), priced_as=str(stand_in))
        return RegionPrices(region, *_figures(entry, region))


def load(text: str | None = None) -> PriceTable:
    """The shipped table, or one given as YAML text."""
    if text is None:
        text = resources.files("gitops").joinpath(TABLE).read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise PriceError(f"{TABLE} is not YAML: {error}") from error
    if not isinstance(doc, dict) or not isinstance(doc.get("regions"), dict):
        raise PriceError(f"{TABLE} needs `source`, `hours_per_month` and a `regions` mapping")
    try:
        return PriceTable(
            source=str(doc["source"]),
            hours_per_month=float(doc["hours_per_month"]),
            cluster_fee_per_hour=float(doc["cluster_fee_per_hour"]),
            regions=doc["regions"],
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PriceError(f"{TABLE}: missing or non-numeric {error}") from error


def _figures(entry: Mapping[str, Any], region: str) -> tuple[float, float, float, str]:
    try:
        vcpu, memory, storage = (float(entry[name]) for name in _FIGURES)
        return vcpu, memory, storage, str(entry["as_of"])
    except (KeyError, TypeError, ValueError) as error:
        raise PriceError(
            f"{TABLE}: {region} needs as_of and numbers for {', '.join(_FIGURES)} ({error})"
        ) from error
